//! The acknowledgement that answers a command (its envelope is read by the
//! platform's `envelope` module).

use steplab_proto::steplab::common::v1 as common;

pub fn ack(command_id: &str, duplicate: bool) -> common::CommandAck {
    common::CommandAck { idempotency_key: command_id.to_owned(), duplicate }
}
