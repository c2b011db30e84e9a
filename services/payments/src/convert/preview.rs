//! PreviewCommands: the list's limits and the date the outlook is read on.
//! Each command in the list is read by the converter its own RPC uses (see
//! `service::preview`); here its violations get the path of the command in
//! the list, so `until` of the fourth command is `commands[3].suspend_accrual.until`.

use chrono::NaiveDate;
use steplab_platform::date;
use steplab_platform::{FieldViolation, FieldViolations};
use steplab_proto::steplab::payments::v1 as pb;

/// The most commands one preview takes: enough for any participant
/// service change with its cascades (the same limit as content release), few enough for one transaction.
pub const MAX_PREVIEW_COMMANDS: usize = 100;

/// A validated PreviewCommands, apart from its commands.
#[derive(Debug, Clone)]
pub struct PreviewQuery {
    /// `None`: today.
    pub as_of: Option<NaiveDate>,
}

pub fn preview_commands(req: &pb::PreviewCommandsRequest) -> Result<PreviewQuery, FieldViolations> {
    let mut v = FieldViolations::default();
    match req.commands.len() {
        0 => v.push(FieldViolation::new("commands", "is empty: name at least one command to preview")),
        n if n > MAX_PREVIEW_COMMANDS => v.push(FieldViolation::new(
            "commands",
            format!("has {n} commands: at most {MAX_PREVIEW_COMMANDS} are previewed at once"),
        )),
        _ => {}
    }
    let as_of = v.check(date::optional("as_of", req.as_of.as_ref()));
    v.finish(|| Some(PreviewQuery { as_of: as_of? }))
}

/// The violations of one command's request, as paths from the preview's
/// request: `commands[<index>].<oneof_field>.<field>`.
pub fn within_command(index: usize, oneof_field: &str, violations: FieldViolations) -> FieldViolations {
    FieldViolations(
        violations
            .0
            .into_iter()
            .map(|v| FieldViolation { field: format!("commands[{index}].{oneof_field}.{}", v.field), ..v })
            .collect(),
    )
}

/// A command with none of the oneof set.
pub fn missing_command(index: usize) -> FieldViolation {
    FieldViolation::new(
        format!("commands[{index}].command"),
        "is empty: set one of enrol_payee, suspend_accrual, resume_accrual, end_accrual, reopen_accrual, \
         set_area_covered, set_participant_scope, record_declaration_state",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::fixtures::fields;
    use steplab_proto::google::r#type::Date;

    fn date(year: i32, month: i32, day: i32) -> Option<Date> {
        Some(Date { year, month, day })
    }

    #[test]
    fn a_preview_names_between_one_and_a_hundred_commands() {
        let req =
            |n: usize| pb::PreviewCommandsRequest { commands: vec![pb::AccrualCommand::default(); n], as_of: None };
        assert_eq!(fields(preview_commands(&req(0)).expect_err("empty")), ["commands"]);
        assert_eq!(fields(preview_commands(&req(101)).expect_err("too many")), ["commands"]);
        assert!(preview_commands(&req(100)).is_ok());
        let bad_date = pb::PreviewCommandsRequest { as_of: date(2026, 2, 30), ..req(1) };
        assert_eq!(fields(preview_commands(&bad_date).expect_err("bad date")), ["as_of"]);
    }

    #[test]
    fn a_commands_violations_are_named_by_its_place_in_the_list() {
        let violations = FieldViolations(vec![FieldViolation::new("until", "is required")]);
        assert_eq!(fields(within_command(3, "suspend_accrual", violations)), ["commands[3].suspend_accrual.until"]);
        assert_eq!(fields(missing_command(2).into()), ["commands[2].command"]);
    }
}
