//! What content release's and payments' `PreviewCommands` (AIP-163 dry runs
//! of a list of commands) share: the list's limits and the date the outlook
//! is read on, the path of a command's violations in the list (`until` of the
//! fourth command is `commands[3].place_hold.until`), and a command's refusal
//! named by its place in the list. Each service reads and runs the commands
//! themselves with its own RPCs' code.

use crate::date;
use crate::error::{FieldViolation, FieldViolations, ServiceError};
use crate::rules::{Denied, Missing};
use chrono::NaiveDate;
use steplab_proto::google::r#type::Date;

/// The most commands one preview takes: enough for any participant
/// service change with its cascades, few enough for one transaction.
pub const MAX_PREVIEW_COMMANDS: usize = 100;

/// Checks a preview's list of `count` commands and reads the date its outlook
/// is read on (`None`: today).
pub fn read_list(count: usize, as_of: Option<&Date>) -> Result<Option<NaiveDate>, FieldViolations> {
    let mut v = FieldViolations::default();
    match count {
        0 => v.push(FieldViolation::new("commands", "is empty: name at least one command to preview")),
        n if n > MAX_PREVIEW_COMMANDS => v.push(FieldViolation::new(
            "commands",
            format!("has {n} commands: at most {MAX_PREVIEW_COMMANDS} are previewed at once"),
        )),
        _ => {}
    }
    let as_of = v.check(date::optional("as_of", as_of));
    v.finish(|| as_of)
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

/// A command with none of the oneof set; `choices` lists the oneof's fields.
pub fn missing_command(index: usize, choices: &str) -> FieldViolation {
    FieldViolation::new(format!("commands[{index}].command"), format!("is empty: set one of {choices}"))
}

/// A command's refusal, as the preview's: the same code and ErrorInfo,
/// its message naming the command's place in the list.
pub fn at_command(index: usize, rpc: &str, error: ServiceError) -> ServiceError {
    let named = |message: String| format!("commands[{index}] ({rpc}): {message}");
    match error {
        ServiceError::InvalidArgument(v) => ServiceError::InvalidArgument(FieldViolations(
            v.0.into_iter().map(|v| FieldViolation { field: format!("commands[{index}].{}", v.field), ..v }).collect(),
        )),
        ServiceError::PermissionDenied(d) => ServiceError::PermissionDenied(Denied { message: named(d.message), ..d }),
        ServiceError::NotFound(m) => ServiceError::NotFound(named(m)),
        ServiceError::Missing(m) => ServiceError::Missing(Missing { message: named(m.message), ..m }),
        ServiceError::AlreadyExists(m) => ServiceError::AlreadyExists(named(m)),
        ServiceError::Rule { domain, reason, message, metadata } => {
            ServiceError::Rule { domain, reason, message: named(message), metadata }
        }
        ServiceError::Aborted(m) => ServiceError::Aborted(named(m)),
        // Faults of the service, not of a command: answered as they are.
        e @ (ServiceError::Unavailable(_)
        | ServiceError::PeerUnavailable(_)
        | ServiceError::StorageFull(_)
        | ServiceError::DeliveryBacklog { .. }
        | ServiceError::Internal(_)) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(v: FieldViolations) -> Vec<String> {
        v.0.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn a_preview_names_between_one_and_a_hundred_commands() {
        assert_eq!(fields(read_list(0, None).expect_err("empty")), ["commands"]);
        assert_eq!(fields(read_list(101, None).expect_err("too many")), ["commands"]);
        assert_eq!(read_list(100, None), Ok(None));
        let bad = Date { year: 2026, month: 2, day: 30 };
        assert_eq!(fields(read_list(1, Some(&bad)).expect_err("bad date")), ["as_of"]);
    }

    #[test]
    fn a_commands_violations_and_refusals_are_named_by_its_place_in_the_list() {
        let violations = FieldViolations(vec![FieldViolation::new("until", "is required")]);
        assert_eq!(fields(within_command(3, "place_hold", violations)), ["commands[3].place_hold.until"]);
        assert_eq!(missing_command(2, "a, b").field, "commands[2].command");
        let refused = at_command(1, "PlaceHold", ServiceError::NotFound("hold h-1 does not exist".into()));
        assert!(
            matches!(refused, ServiceError::NotFound(m) if m == "commands[1] (PlaceHold): hold h-1 does not exist")
        );
    }
}
