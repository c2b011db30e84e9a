//! Holds on release and revoked access (P4, P5, P6, D4, D6, D9, W5, W9):
//! what a hold and a revocation are, and the decisions PlaceHold, LiftHold
//! and RestoreAccess make on them, with their refusals.

use super::{Refusal, RuleViolation};
use chrono::NaiveDate;
use steplab_platform::error::Missing;

/// Why new module release is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldKind {
    /// P5, P6: modules due during it come at its end, optional; nothing moves.
    Pause,
    /// D4, D5, D8: the schedule stops during it and moves later by its length.
    Deferral,
}

impl HoldKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldKind::Pause => "pause",
            HoldKind::Deferral => "deferral",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [HoldKind::Pause, HoldKind::Deferral].into_iter().find(|k| k.as_str() == s)
    }
}

/// A hold on new module release over the half-open days `[from, until)`.
/// `until` is the first day no longer held (after a LiftHold, the lift date);
/// a hold with `until <= from` was cancelled and holds nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub hold_id: String,
    pub kind: HoldKind,
    pub from: NaiveDate,
    pub until: NaiveDate,
}

impl Hold {
    /// In effect on `day` (`from <= day < until`).
    pub fn is_active_on(&self, day: NaiveDate) -> bool {
        self.from <= day && day < self.until
    }

    /// The date a LiftHold on `on` leaves as `until`: an earlier end takes
    /// effect (on or before `from` it cancels the hold); a later one changes
    /// nothing because the hold already ends by then.
    pub fn until_after_lift(&self, on: NaiveDate) -> NaiveDate {
        self.until.min(on)
    }
}

/// Access revoked from `revoked_from` (inclusive, W5) until `restored_on`
/// (the first day with access again, W9), or for good while `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    pub revoked_from: NaiveDate,
    pub restored_on: Option<NaiveDate>,
}

/// The holds in effect on `as_of`, ordered by `from`.
pub fn active_holds(holds: &[Hold], as_of: NaiveDate) -> Vec<&Hold> {
    let mut active: Vec<&Hold> = holds.iter().filter(|h| h.is_active_on(as_of)).collect();
    active.sort_by(|a, b| (a.from, &a.hold_id).cmp(&(b.from, &b.hold_id)));
    active
}

/// What PlaceHold does with a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// A hold_id not seen before: a new hold.
    New,
    /// The same hold_id again: a changed end (P4, D6) or dates (D9).
    NewDates,
}

/// PlaceHold: a hold keeps its kind for good, so a pause is never turned
/// into a deferral under the same hold_id (P8 places a new one).
pub fn place(holds: &[Hold], hold: &Hold) -> Result<Placement, RuleViolation> {
    match holds.iter().find(|h| h.hold_id == hold.hold_id) {
        Some(existing) if existing.kind != hold.kind => Err(RuleViolation::new(
            "HOLD_KIND_MISMATCH",
            format!(
                "hold {} is a {} and cannot become a {}: place a new hold with its own hold_id",
                hold.hold_id,
                existing.kind.as_str(),
                hold.kind.as_str()
            ),
        )
        .with("hold_id", &hold.hold_id)
        .with("kind", existing.kind.as_str())
        .with("requested_kind", hold.kind.as_str())),
        Some(_) => Ok(Placement::NewDates),
        None => Ok(Placement::New),
    }
}

/// LiftHold on `on`: the hold with its new end, or `None` when it already
/// ends by then and nothing changes.
pub fn lift(participant_id: &str, holds: Vec<Hold>, hold_id: &str, on: NaiveDate) -> Result<Option<Hold>, Refusal> {
    let mut hold = holds.into_iter().find(|h| h.hold_id == hold_id).ok_or_else(|| {
        Refusal::NotFound(Missing::new(
            "hold",
            hold_id,
            format!("participant {participant_id} has no hold {hold_id}: lift a hold_id given to PlaceHold"),
        ))
    })?;
    let until = hold.until_after_lift(on);
    if until == hold.until {
        return Ok(None);
    }
    hold.until = until;
    Ok(Some(hold))
}

/// W9: RestoreAccess on `on` of access revoked from `revoked_from`.
pub fn restore(revoked_from: NaiveDate, on: NaiveDate) -> Result<(), RuleViolation> {
    if on < revoked_from {
        return Err(RuleViolation::new(
            "RESTORE_BEFORE_REVOCATION",
            format!(
                "access was revoked from {revoked_from}, so it cannot come back on {on}: restore on or after the revocation date"
            ),
        ).with("revoked_from", revoked_from).with("restore_on", on));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::release::{ReleaseFacts, schedule};
    use crate::domain::{Curriculum, Programme};

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    fn hold(id: &str, kind: HoldKind, from: &str, until: &str) -> Hold {
        Hold { hold_id: id.into(), kind, from: d(from), until: d(until) }
    }

    #[test]
    fn p4_a_cancelled_hold_holds_nothing() {
        let c = Curriculum::built_in().expect("built-in curriculum");
        let ect = c.programme(Programme::Ect);
        let facts = |holds| ReleaseFacts { release_start: d("2026-09-01"), holds, revocations: &[] };
        let mut pause = hold("p", HoldKind::Pause, "2026-10-12", "2026-11-02");
        pause.until = pause.until_after_lift(d("2026-10-01"));
        assert_eq!(schedule(ect, facts(&[pause.clone()])), schedule(ect, facts(&[])));
        assert!(active_holds(&[pause], d("2026-10-10")).is_empty());
    }

    #[test]
    fn r2_active_holds_are_those_in_effect_on_the_day_ordered_by_start() {
        let holds = [
            hold("late", HoldKind::Deferral, "2026-10-10", "2026-12-01"),
            hold("early", HoldKind::Pause, "2026-10-01", "2026-10-20"),
            hold("done", HoldKind::Pause, "2026-09-01", "2026-09-10"),
        ];
        let ids: Vec<&str> = active_holds(&holds, d("2026-10-15")).into_iter().map(|h| h.hold_id.as_str()).collect();
        assert_eq!(ids, ["early", "late"]);
        assert!(active_holds(&holds, d("2026-12-01")).is_empty(), "until is not held");
    }

    #[test]
    fn p4_d9_the_same_hold_id_again_changes_its_dates_but_never_its_kind() {
        let placed = [hold("h", HoldKind::Pause, "2026-10-12", "2026-11-02")];
        let longer = hold("h", HoldKind::Pause, "2026-10-12", "2026-12-01");
        assert_eq!(place(&placed, &longer), Ok(Placement::NewDates));
        assert_eq!(place(&placed, &hold("other", HoldKind::Deferral, "2026-10-12", "2026-12-01")), Ok(Placement::New));
        let turned = hold("h", HoldKind::Deferral, "2026-10-12", "2026-12-01");
        assert_eq!(place(&placed, &turned).map_err(|r| r.reason), Err("HOLD_KIND_MISMATCH"));
    }

    #[test]
    fn p4_a_lift_ends_a_hold_early_and_a_later_lift_changes_nothing() {
        let placed = || vec![hold("h", HoldKind::Pause, "2026-10-12", "2026-11-02")];
        let lifted = lift("p1", placed(), "h", d("2026-10-20")).expect("known hold").expect("earlier end");
        assert_eq!(lifted.until, d("2026-10-20"));
        assert_eq!(lift("p1", placed(), "h", d("2026-12-01")), Ok(None));
        assert!(matches!(lift("p1", placed(), "other", d("2026-10-20")), Err(Refusal::NotFound(_))));
    }

    #[test]
    fn w9_access_comes_back_on_or_after_the_revocation_date() {
        assert_eq!(restore(d("2026-11-10"), d("2026-11-10")), Ok(()));
        assert_eq!(restore(d("2026-11-10"), d("2026-11-09")).map_err(|r| r.reason), Err("RESTORE_BEFORE_REVOCATION"));
    }
}
