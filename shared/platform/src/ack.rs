//! A command's answer carries its acknowledgement; a repeat of a command
//! answers with the first answer, marked as a duplicate. The command
//! responses are named here, beside the trait, as Rust's orphan rule asks.

use crate::idempotency::Ran;
use steplab_proto::steplab::common::v1::CommandAck;
use steplab_proto::steplab::{dfe::v1 as dfe, payments::v1 as payments};

/// A command's answer: it carries the command's acknowledgement.
pub trait Acked: prost::Message + Default + Send + 'static {
    fn acked(ack: CommandAck) -> Self;
    fn ack_mut(&mut self) -> &mut Option<CommandAck>;
}

/// Implements [`Acked`] for command responses whose one field is `ack`.
macro_rules! acked_responses {
    ($($response:ty),* $(,)?) => {$(
        impl Acked for $response {
            fn acked(ack: CommandAck) -> Self {
                Self { ack: Some(ack) }
            }
            fn ack_mut(&mut self) -> &mut Option<CommandAck> {
                &mut self.ack
            }
        }
    )*};
}

acked_responses!(
    payments::EnrolPayeeResponse,
    payments::SuspendAccrualResponse,
    payments::ResumeAccrualResponse,
    payments::EndAccrualResponse,
    payments::ReopenAccrualResponse,
    payments::SetAreaCoveredResponse,
    payments::SetParticipantScopeResponse,
    payments::RecordDeclarationStateResponse,
    dfe::TrackParticipantResponse,
    dfe::ReportStatusChangeResponse,
    dfe::DeclareMilestoneResponse,
    dfe::VoidMilestoneResponse,
);

/// The answer of a command: a repeat's stored first answer is marked as a
/// duplicate.
pub fn acked<Resp: Acked>(ran: Ran<Resp>) -> Resp {
    match ran {
        Ran::Applied(response) => response,
        Ran::Replayed(mut response) => {
            if let Some(ack) = response.ack_mut() {
                ack.duplicate = true;
            }
            response
        }
    }
}
