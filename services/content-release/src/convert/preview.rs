//! PreviewCommands: the list's limits and the date the outlook is read on
//! (`steplab_platform::preview`, shared with the other service that previews
//! its commands). Each command in the list is read by the converter its own
//! RPC uses (see `service::preview`), its violations named by its place in the
//! list, so `until` of the fourth command is `commands[3].place_hold.until`.

use chrono::NaiveDate;
use steplab_platform::preview;
use steplab_platform::{FieldViolation, FieldViolations};
use steplab_proto::steplab::content::v1 as pb;

pub use steplab_platform::preview::{MAX_PREVIEW_COMMANDS, within_command};

/// A validated PreviewCommands, apart from its commands.
#[derive(Debug, Clone)]
pub struct PreviewQuery {
    /// `None`: today.
    pub as_of: Option<NaiveDate>,
}

pub fn preview_commands(req: &pb::PreviewCommandsRequest) -> Result<PreviewQuery, FieldViolations> {
    Ok(PreviewQuery { as_of: preview::read_list(req.commands.len(), req.as_of.as_ref())? })
}

/// A command with none of the oneof set.
pub fn missing_command(index: usize) -> FieldViolation {
    preview::missing_command(
        index,
        "enrol_learner, place_hold, lift_hold, revoke_access, restore_access, set_release_start, set_participant_scope",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::test_support::{date, fields};

    #[test]
    fn a_preview_names_between_one_and_a_hundred_commands() {
        let req =
            |n: usize| pb::PreviewCommandsRequest { commands: vec![pb::ReleaseCommand::default(); n], as_of: None };
        assert_eq!(fields(preview_commands(&req(0)).expect_err("empty")), ["commands"]);
        assert_eq!(fields(preview_commands(&req(101)).expect_err("too many")), ["commands"]);
        assert!(preview_commands(&req(100)).is_ok());
        let bad_date = pb::PreviewCommandsRequest { as_of: date(2026, 2, 30), ..req(1) };
        assert_eq!(fields(preview_commands(&bad_date).expect_err("bad date")), ["as_of"]);
    }

    #[test]
    fn a_commands_violations_are_named_by_its_place_in_the_list() {
        let violations = FieldViolations(vec![FieldViolation::new("until", "is required")]);
        assert_eq!(fields(within_command(3, "place_hold", violations)), ["commands[3].place_hold.until"]);
        assert_eq!(fields(missing_command(2).into()), ["commands[2].command"]);
    }
}
