//! The command envelope every command shares: its id, which is its
//! idempotency key, and the acknowledgement that answers it.

use steplab_platform::FieldViolation;
use steplab_platform::idempotency::IdempotencyKey;
use steplab_proto::steplab::common::v1 as common;

pub(crate) fn command_key(command_id: &str) -> Result<IdempotencyKey, FieldViolation> {
    IdempotencyKey::command("command_id", command_id)
}

pub fn ack(command_id: &str, duplicate: bool) -> common::CommandAck {
    common::CommandAck { command_id: command_id.to_owned(), duplicate }
}
