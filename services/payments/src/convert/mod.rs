//! Wire <-> domain. Requests become typed commands and queries that cannot
//! be invalid (every malformed field is reported at once as a field
//! violation, ids arrive as typed ids); domain answers become response
//! messages. The command envelope (command id, acknowledgement) is parsed
//! in [`envelope`], apart, so it can move to the platform.

mod commands;
pub mod envelope;
mod preview;
mod queries;
mod responses;

pub use commands::{
    Coverage, Dated, DeclarationState, Engagement, Enrol, Move, Resume, Suspend, coverage, declaration_state, end,
    engagement, enrol, placement, reopen, resume, suspend,
};
pub use envelope::ack;
pub use preview::{MAX_PREVIEW_COMMANDS, PreviewQuery, missing_command, preview_commands, within_command};
pub use queries::{AccrualQuery, StatementQuery, accrual_query, schedules_query, statement_query, statement_token};
pub use responses::{accrual, reason, schedule, statement_page};

/// Statement pages: 0 means this many; more than [`MAX_STATEMENT_PAGE`] is capped.
pub const DEFAULT_STATEMENT_PAGE: i64 = 500;
pub const MAX_STATEMENT_PAGE: i64 = 1000;
pub const MAX_NOTE_CHARS: usize = 2000;

/// A required id: the participant service issues UUIDs, so anything else
/// cannot name a participant, school or delivery partner.
pub use steplab_platform::ids::required as id;

#[cfg(test)]
pub(crate) mod fixtures {
    use steplab_platform::FieldViolations;

    pub fn fields(err: FieldViolations) -> Vec<String> {
        err.0.into_iter().map(|v| v.field).collect()
    }
}
