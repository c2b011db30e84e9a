//! Pause, defer, return, withdraw, reinstate, move school and change the
//! release start: each a pure decision over the participants it touches,
//! returning the events to record (with their cascades, D9 and W6), the
//! commands content release and payments must receive (D4, W5, W9, S2), and
//! the notifications it raises (W7, W8). Refusals name a rule and say what to
//! do instead.

mod circles;
mod decision;
mod deferral;
mod pause;
mod registration;
mod reinstatement;
mod returns;
mod school_move;
mod withdrawal;

#[cfg(test)]
pub(crate) mod tests;

pub use circles::{MentorCircle, mentor_left_without_ect, mentor_without_ect};
pub use decision::{Command, Decision, HoldKind, NewNotification, NotificationKind, Programme};
pub use deferral::{
    Deferral, MAX_DEFERRAL_MONTHS, MIN_DEFERRAL_DAYS, check_long_deferral_request, defer, defer_within,
};
pub use pause::{MAX_PAUSE_DAYS, end_pause, extend_pause, pause};
pub use registration::{change_release_start, check_release_start_request, enrol};
pub use reinstatement::reinstate;
pub use returns::{change_return_date, change_return_date_within, due_returns, record_return};
pub use school_move::{Destination, move_school};
pub use withdrawal::{SchoolCircle, Withdrawal, withdraw};

use crate::domain::view::{ParticipantRecord, ParticipantView};
use crate::domain::{ParticipantKind, RuleViolation, TrainingStatus};
use chrono::NaiveDate;

fn has_programme(kind: ParticipantKind) -> bool {
    matches!(kind, ParticipantKind::Ect | ParticipantKind::Mentor)
}

fn not_yet_registered(p: &ParticipantRecord, date: NaiveDate) -> RuleViolation {
    RuleViolation::new(
        "BEFORE_REGISTRATION",
        format!("participant {} was registered on {}: {date} is before that", p.id, p.registered_on),
    )
    .with("participant_id", &p.id)
    .with("date", date)
    .with("registered_on", p.registered_on)
}

fn view(p: &ParticipantRecord, date: NaiveDate) -> Result<ParticipantView, RuleViolation> {
    p.as_of(date).ok_or_else(|| not_yet_registered(p, date))
}

fn overlap(from: NaiveDate, until: NaiveDate) -> RuleViolation {
    RuleViolation::new(
        "OVERLAPS_ANOTHER_ABSENCE",
        format!(
            "another pause, deferral or withdrawal already falls between {from} and {until}: change that one instead"
        ),
    )
    .with("from", from)
    .with("until", until)
}

fn withdrawn(date: NaiveDate) -> RuleViolation {
    RuleViolation::new(
        "PARTICIPANT_WITHDRAWN",
        format!(
            "the participant is withdrawn on {date}: the ECF Lead can request a reinstatement (RequestReinstatement) for a DPL to approve"
        ),
    ).with("status", TrainingStatus::Withdrawn.name()).with("date", date)
}
