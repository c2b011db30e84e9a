//! What a participant is on a given date: a pure fold over their dated events.

use super::events::{DeferralReason, Event, EventKind, WithdrawalReason};
use super::{Enrolment, ParticipantKind, ScheduleStart};
use chrono::{NaiveDate, NaiveDateTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainingStatus {
    Active,
    Paused,
    Deferred,
    Withdrawn,
}

impl TrainingStatus {
    /// The status as the proto's enum names it (without its prefix), for
    /// the ErrorInfo metadata of a refusal: `"status": "WITHDRAWN"`.
    pub fn name(self) -> &'static str {
        match self {
            TrainingStatus::Active => "ACTIVE",
            TrainingStatus::Paused => "PAUSED",
            TrainingStatus::Deferred => "DEFERRED",
            TrainingStatus::Withdrawn => "WITHDRAWN",
        }
    }
}

/// The stored participant: who they are and their whole history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantRecord {
    pub id: String,
    pub kind: ParticipantKind,
    pub full_name: String,
    pub trn: Option<String>,
    pub registered_on: NaiveDate,
    pub previous_pilot_mentor: bool,
    /// The number of events: the optimistic-concurrency version.
    pub version: i64,
    pub created_at: NaiveDateTime,
    /// In sequence order.
    pub events: Vec<Event>,
}

/// A pause `[start, end)`: the end date is the first day back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PauseSpan {
    pub id: String,
    pub start: NaiveDate,
    pub expected_end: NaiveDate,
    /// Ended early (P4), on a deferral's date (P8) or by a withdrawal (W4).
    pub ended_on: Option<NaiveDate>,
    pub note: String,
    /// P1: a mentor's pause, alongside this ECT's.
    pub alongside: Option<String>,
}

impl PauseSpan {
    pub fn end(&self) -> NaiveDate {
        self.ended_on.unwrap_or(self.expected_end)
    }

    pub fn covers(&self, date: NaiveDate) -> bool {
        self.start <= date && date < self.end()
    }
}

/// A deferral `[from, return)`: the return date is the first day active again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeferralSpan {
    pub id: String,
    pub reason: DeferralReason,
    pub from: NaiveDate,
    pub expected_return: NaiveDate,
    /// An earlier return (D7) or the withdrawal date (W4).
    pub returned_on: Option<NaiveDate>,
    pub note: String,
    pub cascaded_from: Option<String>,
}

impl DeferralSpan {
    pub fn end(&self) -> NaiveDate {
        self.returned_on.unwrap_or(self.expected_return)
    }

    pub fn covers(&self, date: NaiveDate) -> bool {
        self.from <= date && date < self.end()
    }
}

/// A withdrawal from `date` until a reinstatement, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawalSpan {
    pub reason: WithdrawalReason,
    pub date: NaiveDate,
    pub reinstated_on: Option<NaiveDate>,
    pub cascaded_from: Option<String>,
}

impl WithdrawalSpan {
    pub fn covers(&self, date: NaiveDate) -> bool {
        self.date <= date && self.reinstated_on.is_none_or(|r| date < r)
    }
}

/// A value that changes on dated facts: (effective date, sequence, value).
type Dated<T> = Vec<(NaiveDate, i64, T)>;

/// How an ECT's mentoring changes on a date (M1-M3, M5).
#[derive(Debug, Clone, PartialEq, Eq)]
enum MentorChange {
    /// A mentor of record (a registered mentor assigned for good).
    OfRecord(String),
    /// A cover (an interim IC, M3, or a temporary replacement, M2): the
    /// mentor of record stays theirs.
    Cover { mentor_id: String, interim: bool },
    /// The cover by this participant ends: the mentor of record coaches again.
    CoverEnded(String),
    /// S1: all mentoring ends (a move without keeping the mentor).
    Ended,
}

/// Who mentors an ECT on a date.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MentorsOn {
    /// Who coaches them, and whether they are an interim IC (M3).
    pub acting: Option<(String, bool)>,
    /// M5: whose ECT they are for the D9 and W6 relations.
    pub of_record: Option<String>,
}

fn value_on<T: Clone>(values: &Dated<T>, date: NaiveDate) -> Option<T> {
    values.iter().filter(|(d, _, _)| *d <= date).max_by_key(|(d, seq, _)| (*d, *seq)).map(|(_, _, v)| v.clone())
}

/// Everything dated about a participant, built by folding the events in the
/// order they were recorded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Timeline {
    pub pauses: Vec<PauseSpan>,
    pub deferrals: Vec<DeferralSpan>,
    pub withdrawals: Vec<WithdrawalSpan>,
    schools: Dated<(String, String, bool)>,
    mentor_changes: Dated<MentorChange>,
    mentees: Dated<(String, bool)>,
    enrolment: Option<Enrolment>,
}

impl Timeline {
    pub fn status_on(&self, date: NaiveDate) -> TrainingStatus {
        if self.withdrawals.iter().any(|w| w.covers(date)) {
            TrainingStatus::Withdrawn
        } else if self.deferrals.iter().any(|d| d.covers(date)) {
            TrainingStatus::Deferred
        } else if self.pauses.iter().any(|p| p.covers(date)) {
            TrainingStatus::Paused
        } else {
            TrainingStatus::Active
        }
    }

    /// Who mentors the ECT on `date`: the changes up to it, in date then
    /// recorded order.
    pub fn mentors_on(&self, date: NaiveDate) -> MentorsOn {
        let mut changes: Vec<&(NaiveDate, i64, MentorChange)> =
            self.mentor_changes.iter().filter(|(d, _, _)| *d <= date).collect();
        changes.sort_by_key(|(d, seq, _)| (*d, *seq));
        let mut on = MentorsOn::default();
        for (_, _, change) in changes {
            match change {
                MentorChange::OfRecord(id) => {
                    on.acting = Some((id.clone(), false));
                    on.of_record = Some(id.clone());
                }
                MentorChange::Cover { mentor_id, interim } => on.acting = Some((mentor_id.clone(), *interim)),
                MentorChange::CoverEnded(id) => {
                    if on.acting.as_ref().is_some_and(|(acting, _)| acting == id) {
                        on.acting = on.of_record.clone().map(|m| (m, false));
                    }
                }
                MentorChange::Ended => on = MentorsOn::default(),
            }
        }
        on
    }

    /// The programme's start and first schedule (C1, with C2's changes).
    pub fn enrolment(&self) -> Option<Enrolment> {
        self.enrolment
    }

    /// The dates on which who mentors the ECT may change.
    pub fn mentor_change_dates(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.mentor_changes.iter().map(|(d, _, _)| *d)
    }

    /// The pause not yet over on `date`: the one in force, else the next
    /// planned. Spans never overlap, so the earliest start is the right one
    /// whichever was recorded last.
    pub fn open_pause(&self, date: NaiveDate) -> Option<&PauseSpan> {
        self.pauses.iter().filter(|p| p.end() > date && p.end() > p.start).min_by_key(|p| p.start)
    }

    /// The deferral not yet over on `date`: the one in force, else the next
    /// planned (see [`Timeline::open_pause`]).
    pub fn open_deferral(&self, date: NaiveDate) -> Option<&DeferralSpan> {
        self.deferrals.iter().filter(|d| d.end() > date && d.end() > d.from).min_by_key(|d| d.from)
    }

    /// The withdrawal in force on `date`.
    pub fn withdrawal_on(&self, date: NaiveDate) -> Option<&WithdrawalSpan> {
        self.withdrawals.iter().rev().find(|w| w.covers(date))
    }

    /// Whether a pause, deferral or withdrawal touches `[from, until)`.
    pub fn busy_between(&self, from: NaiveDate, until: NaiveDate) -> bool {
        let overlaps = |start: NaiveDate, end: NaiveDate| start < until && from < end;
        self.pauses.iter().any(|p| overlaps(p.start, p.end()))
            || self.deferrals.iter().any(|d| overlaps(d.from, d.end()))
            || self.withdrawals.iter().any(|w| overlaps(w.date, w.reinstated_on.unwrap_or(NaiveDate::MAX)))
    }

    fn close_intervals_on(&mut self, date: NaiveDate) {
        for pause in &mut self.pauses {
            if pause.end() > date {
                pause.ended_on = Some(date.max(pause.start));
            }
        }
        for deferral in &mut self.deferrals {
            if deferral.end() > date {
                deferral.returned_on = Some(date.max(deferral.from));
            }
        }
    }

    fn apply(&mut self, event: &Event) {
        let (date, seq) = (event.effective_date, event.sequence);
        match &event.kind {
            EventKind::Registered { school_id, delivery_partner_id, enrolment, area_covered, .. } => {
                self.schools.push((date, seq, (school_id.clone(), delivery_partner_id.clone(), *area_covered)));
                self.enrolment = *enrolment;
            }
            EventKind::MentorAssigned { mentor_id, interim: false, .. } => {
                self.mentor_changes.push((date, seq, MentorChange::OfRecord(mentor_id.clone())))
            }
            EventKind::MentorAssigned { mentor_id, interim: true, .. } => self.mentor_changes.push((
                date,
                seq,
                MentorChange::Cover { mentor_id: mentor_id.clone(), interim: true },
            )),
            EventKind::TemporaryMentorAssigned { mentor_id, until, .. } => {
                self.mentor_changes.push((
                    date,
                    seq,
                    MentorChange::Cover { mentor_id: mentor_id.clone(), interim: false },
                ));
                self.mentor_changes.push((*until, seq, MentorChange::CoverEnded(mentor_id.clone())));
            }
            EventKind::MentorCoverEnded { mentor_id } => {
                self.mentor_changes.push((date, seq, MentorChange::CoverEnded(mentor_id.clone())))
            }
            EventKind::MenteeAssigned { ect_id } => self.mentees.push((date, seq, (ect_id.clone(), true))),
            EventKind::MenteeUnassigned { ect_id } => self.mentees.push((date, seq, (ect_id.clone(), false))),
            EventKind::SchoolMoved { school_id, delivery_partner_id, area_covered } => {
                self.schools.push((date, seq, (school_id.clone(), delivery_partner_id.clone(), *area_covered)));
            }
            EventKind::Paused { pause_id, start, expected_end, note } => self.pauses.push(PauseSpan {
                id: pause_id.clone(),
                start: *start,
                expected_end: *expected_end,
                ended_on: None,
                note: note.clone(),
                alongside: None,
            }),
            EventKind::PausedAlongside { pause_id, start, expected_end, note, ect_id } => self.pauses.push(PauseSpan {
                id: pause_id.clone(),
                start: *start,
                expected_end: *expected_end,
                ended_on: None,
                note: note.clone(),
                alongside: Some(ect_id.clone()),
            }),
            EventKind::MentoringEnded { .. } => self.mentor_changes.push((date, seq, MentorChange::Ended)),
            EventKind::PauseExtended { pause_id, expected_end } => {
                if let Some(p) = self.pauses.iter_mut().find(|p| &p.id == pause_id) {
                    p.expected_end = *expected_end;
                }
            }
            EventKind::PauseEnded { pause_id, end } => {
                if let Some(p) = self.pauses.iter_mut().find(|p| &p.id == pause_id) {
                    p.ended_on = Some(*end);
                }
            }
            EventKind::Deferred { deferral_id, reason, deferral_date, expected_return, note, cascaded_from } => {
                self.deferrals.push(DeferralSpan {
                    id: deferral_id.clone(),
                    reason: *reason,
                    from: *deferral_date,
                    expected_return: *expected_return,
                    returned_on: None,
                    note: note.clone(),
                    cascaded_from: cascaded_from.clone(),
                });
            }
            EventKind::ReturnDateChanged { deferral_id, expected_return } => {
                // A later change supersedes an earlier end: a mentor's derived
                // deferral (D9) can lengthen again after it ended.
                if let Some(d) = self.deferrals.iter_mut().find(|d| &d.id == deferral_id) {
                    d.expected_return = *expected_return;
                    d.returned_on = None;
                }
            }
            EventKind::Returned { deferral_id, return_date } => {
                if let Some(d) = self.deferrals.iter_mut().find(|d| &d.id == deferral_id) {
                    d.returned_on = Some(*return_date);
                }
            }
            EventKind::Withdrawn { reason, withdrawal_date, cascaded_from, .. } => {
                self.close_intervals_on(*withdrawal_date);
                self.withdrawals.push(WithdrawalSpan {
                    reason: *reason,
                    date: *withdrawal_date,
                    reinstated_on: None,
                    cascaded_from: cascaded_from.clone(),
                });
            }
            EventKind::Reinstated { reinstated_on, .. } => {
                if let Some(w) = self.withdrawals.iter_mut().rev().find(|w| w.reinstated_on.is_none()) {
                    w.reinstated_on = Some(*reinstated_on);
                }
            }
            EventKind::ReleaseStartChanged { release_start, .. } => {
                if let Some(e) = self.enrolment.as_mut() {
                    e.release_start = *release_start;
                }
            }
        }
    }
}

/// A participant as of one date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantView {
    pub id: String,
    pub kind: ParticipantKind,
    pub status: TrainingStatus,
    pub school_id: String,
    pub delivery_partner_id: String,
    /// S2: whether the school on this date lies in a covered area.
    pub area_covered: bool,
    pub full_name: String,
    pub trn: Option<String>,
    pub registered_on: NaiveDate,
    pub enrolment: Option<Enrolment>,
    /// D5, W9: the schedule in force on this date and the return or
    /// reinstatement it applies from (`None`: the enrolment's since the start).
    pub schedule: Option<(ScheduleStart, Option<NaiveDate>)>,
    pub previous_pilot_mentor: bool,
    /// The ECT's mentor and whether they are an interim IC (M1, M3).
    pub mentor: Option<(String, bool)>,
    /// M5: the ECT's mentor of record (the same as `mentor` unless covered).
    pub mentor_of_record: Option<String>,
    /// The ECTs a mentor (or interim IC) mentors on this date.
    pub mentees: Vec<String>,
    pub pause: Option<PauseSpan>,
    pub deferral: Option<DeferralSpan>,
    pub withdrawal: Option<WithdrawalSpan>,
    pub as_of: NaiveDate,
    pub version: i64,
    pub created_at: NaiveDateTime,
}

impl ParticipantView {
    /// M4: a previous pilot mentor is never funded; induction coordinators
    /// are not paid participants.
    pub fn funding_eligible(&self) -> bool {
        match self.kind {
            ParticipantKind::Ect => true,
            ParticipantKind::Mentor => !self.previous_pilot_mentor,
            ParticipantKind::InductionCoordinator => false,
        }
    }
}

impl ParticipantRecord {
    /// Every dated fact, folded in recorded order.
    pub fn timeline(&self) -> Timeline {
        let mut timeline = Timeline::default();
        for event in &self.events {
            timeline.apply(event);
        }
        timeline
    }

    /// The participant as of `as_of`; `None` before they were registered.
    pub fn as_of(&self, as_of: NaiveDate) -> Option<ParticipantView> {
        if as_of < self.registered_on {
            return None;
        }
        let timeline = self.timeline();
        let (school_id, delivery_partner_id, area_covered) = value_on(&timeline.schools, as_of).unwrap_or_default();
        let mentors = timeline.mentors_on(as_of);
        let mut mentees: Vec<(NaiveDate, i64, (String, bool))> =
            timeline.mentees.iter().filter(|(d, _, _)| *d <= as_of).cloned().collect();
        mentees.sort_by_key(|(d, seq, _)| (*d, *seq));
        let mut current_mentees: Vec<String> = Vec::new();
        for (_, _, (ect, assigned)) in mentees {
            current_mentees.retain(|m| m != &ect);
            if assigned {
                current_mentees.push(ect);
            }
        }
        Some(ParticipantView {
            id: self.id.clone(),
            kind: self.kind,
            status: timeline.status_on(as_of),
            school_id,
            delivery_partner_id,
            area_covered,
            full_name: self.full_name.clone(),
            trn: self.trn.clone(),
            registered_on: self.registered_on,
            enrolment: timeline.enrolment,
            schedule: super::restart::schedule_on(&timeline, as_of),
            previous_pilot_mentor: self.previous_pilot_mentor,
            mentor: mentors.acting,
            mentor_of_record: mentors.of_record,
            mentees: current_mentees,
            pause: timeline.pauses.iter().rev().find(|p| p.covers(as_of)).cloned(),
            deferral: timeline.deferrals.iter().rev().find(|d| d.covers(as_of)).cloned(),
            withdrawal: timeline.withdrawal_on(as_of).cloned(),
            as_of,
            version: self.version,
            created_at: self.created_at,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::events::Actor;

    pub fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    pub fn event(sequence: i64, effective: &str, kind: EventKind) -> Event {
        Event {
            cursor: sequence,
            participant_id: "p1".into(),
            sequence,
            effective_date: d(effective),
            recorded_at: d("2026-11-28").and_hms_opt(12, 0, 0).expect("time"),
            actor: Actor { sub: "t".into(), role: "admin".into() },
            caused_by: None,
            kind,
        }
    }

    pub fn ect(registered: &str) -> ParticipantRecord {
        ParticipantRecord {
            id: "p1".into(),
            kind: ParticipantKind::Ect,
            full_name: "Ada".into(),
            trn: Some("1234567".into()),
            registered_on: d(registered),
            previous_pilot_mentor: false,
            version: 1,
            created_at: d(registered).and_hms_opt(9, 0, 0).expect("time"),
            events: vec![event(
                1,
                registered,
                EventKind::Registered {
                    kind: ParticipantKind::Ect,
                    school_id: "s1".into(),
                    delivery_partner_id: "dp1".into(),
                    enrolment: Some(Enrolment::default_for(d(registered))),
                    previous_pilot_mentor: false,
                    area_covered: true,
                },
            )],
        }
    }

    #[test]
    fn a_participant_is_active_from_registration_and_unknown_before_it() {
        let p = ect("2026-09-10");
        assert_eq!(p.as_of(d("2026-09-09")), None);
        let v = p.as_of(d("2026-09-10")).expect("registered");
        assert_eq!(v.status, TrainingStatus::Active);
        assert_eq!(v.school_id, "s1");
    }

    #[test]
    fn m1_history_keeps_each_mentor_and_the_view_shows_the_one_on_the_date() {
        let mut p = ect("2026-09-01");
        p.events.push(event(
            2,
            "2026-09-05",
            EventKind::MentorAssigned { mentor_id: "m1".into(), interim: false, replaced_mentor_id: None },
        ));
        p.events.push(event(
            3,
            "2026-10-01",
            EventKind::MentorAssigned { mentor_id: "m2".into(), interim: false, replaced_mentor_id: Some("m1".into()) },
        ));
        assert_eq!(p.as_of(d("2026-09-04")).expect("v").mentor, None);
        assert_eq!(p.as_of(d("2026-09-20")).expect("v").mentor, Some(("m1".into(), false)));
        assert_eq!(p.as_of(d("2026-10-01")).expect("v").mentor, Some(("m2".into(), false)));
    }

    #[test]
    fn a_backdated_fact_recorded_later_applies_from_its_effective_date() {
        let mut p = ect("2026-09-01");
        p.events.push(event(
            2,
            "2026-10-01",
            EventKind::MentorAssigned { mentor_id: "m2".into(), interim: false, replaced_mentor_id: None },
        ));
        // Recorded after, effective before: m1 first, then m2 from October.
        p.events.push(event(
            3,
            "2026-09-02",
            EventKind::MentorAssigned { mentor_id: "m1".into(), interim: false, replaced_mentor_id: None },
        ));
        assert_eq!(p.as_of(d("2026-09-15")).expect("v").mentor, Some(("m1".into(), false)));
        assert_eq!(p.as_of(d("2026-10-15")).expect("v").mentor, Some(("m2".into(), false)));
    }

    #[test]
    fn m4_a_previous_pilot_mentor_is_not_funding_eligible() {
        let mut p = ect("2026-09-01");
        p.kind = ParticipantKind::Mentor;
        p.previous_pilot_mentor = true;
        assert!(!p.as_of(d("2026-09-01")).expect("v").funding_eligible());
        p.previous_pilot_mentor = false;
        assert!(p.as_of(d("2026-09-01")).expect("v").funding_eligible());
    }
}
