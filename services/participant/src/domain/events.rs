//! The dated facts a participant's history is made of. Status and every
//! other answer "as of a date" is a fold over these (see `view`), so a
//! backdated fact or a future-dated one needs no timer.

use super::{Enrolment, ParticipantKind};
use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

/// Why a participant is deferred (D3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeferralReason {
    Bereavement,
    LongTermSickness,
    ParentalLeave,
    CareerBreak,
    Other,
}

/// Why a participant is withdrawn (W3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WithdrawalReason {
    LeftTeachingProfession,
    MovedSchool,
    MentorNoLongerBeingMentor,
    SwitchedToSchoolLed,
    NotEligible,
    LeftRole,
    Other,
}

impl DeferralReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeferralReason::Bereavement => "bereavement",
            DeferralReason::LongTermSickness => "long-term-sickness",
            DeferralReason::ParentalLeave => "parental-leave",
            DeferralReason::CareerBreak => "career-break",
            DeferralReason::Other => "other",
        }
    }
}

impl WithdrawalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            WithdrawalReason::LeftTeachingProfession => "left-teaching-profession",
            WithdrawalReason::MovedSchool => "moved-school",
            WithdrawalReason::MentorNoLongerBeingMentor => "mentor-no-longer-being-mentor",
            WithdrawalReason::SwitchedToSchoolLed => "switched-to-school-led",
            WithdrawalReason::NotEligible => "not-eligible",
            WithdrawalReason::LeftRole => "left-role",
            WithdrawalReason::Other => "other",
        }
    }
}

/// What happened. Stored as JSON in the event's payload column, so adding a
/// variant needs no migration. Intervals carry their own dates, so the order
/// facts were recorded in decides how they combine (a changed return date
/// replaces the earlier one), whatever their effective dates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    Registered {
        kind: ParticipantKind,
        school_id: String,
        delivery_partner_id: String,
        /// Absent for induction coordinators, who receive no programme.
        enrolment: Option<Enrolment>,
        previous_pilot_mentor: bool,
        /// S2: whether the school lies in an area the lead provider covers.
        #[serde(default = "covered")]
        area_covered: bool,
    },
    /// On an ECT: from its effective date this is their mentor (M1, M2, M3).
    MentorAssigned { mentor_id: String, interim: bool, replaced_mentor_id: Option<String> },
    /// M2: on an ECT, `mentor_id` coaches them from the effective date until
    /// `until`, when they go back to their mentor of record, who stays their
    /// mentor of record meanwhile (M5).
    TemporaryMentorAssigned { mentor_id: String, mentor_of_record_id: Option<String>, until: NaiveDate },
    /// M2, M3: on an ECT, the cover by `mentor_id` (an interim IC or a
    /// temporary replacement) ends on the effective date and the mentor of
    /// record coaches again.
    MentorCoverEnded { mentor_id: String },
    /// On a mentor (or an interim IC): an ECT was assigned to them.
    MenteeAssigned { ect_id: String },
    /// On a mentor: an ECT moved to another mentor (M2).
    MenteeUnassigned { ect_id: String },
    /// S1: from `moved_on` the participant belongs to another school.
    SchoolMoved { school_id: String, delivery_partner_id: String, area_covered: bool },
    /// P1-P3: a short absence `[start, expected_end)`.
    Paused { pause_id: String, start: NaiveDate, expected_end: NaiveDate, note: String },
    /// P1: on a mentor, a pause `[start, expected_end)` alongside their
    /// paused ECT `ect_id`; it never outlasts the ECT's pause.
    PausedAlongside { pause_id: String, start: NaiveDate, expected_end: NaiveDate, note: String, ect_id: String },
    /// S1: on a moved ECT, their mentoring (mentor of record and any cover)
    /// ends on the effective date; `mentor_id` was their mentor of record.
    MentoringEnded { mentor_id: Option<String> },
    /// P4: a later expected end for the pause.
    PauseExtended { pause_id: String, expected_end: NaiveDate },
    /// P4, P8: the pause ended on `end` (early, or on a deferral's date).
    PauseEnded { pause_id: String, end: NaiveDate },
    /// D1-D3, D8, D9: a long absence `[deferral_date, expected_return)`.
    Deferred {
        deferral_id: String,
        reason: DeferralReason,
        deferral_date: NaiveDate,
        expected_return: NaiveDate,
        note: String,
        /// D9: the ECT whose deferral this mentor's follows.
        cascaded_from: Option<String>,
    },
    /// D6: a new expected return date.
    ReturnDateChanged { deferral_id: String, expected_return: NaiveDate },
    /// D7: an earlier return, recorded.
    Returned { deferral_id: String, return_date: NaiveDate },
    /// W1-W6: withdrawn from `withdrawal_date`; any pause or deferral ends then (W4).
    Withdrawn {
        reason: WithdrawalReason,
        withdrawal_date: NaiveDate,
        note: String,
        /// W6: the ECT whose withdrawal withdrew this mentor.
        cascaded_from: Option<String>,
    },
    /// W9: reinstated from `reinstated_on` after a DPL's approval.
    Reinstated { reinstated_on: NaiveDate, request_id: String },
    /// C2: a new release start, approved by a DPL.
    ReleaseStartChanged { release_start: NaiveDate, request_id: String },
}

impl EventKind {
    /// The stable name stored in the `event_type` column and shown in history.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::Registered { .. } => "registered",
            EventKind::MentorAssigned { .. } => "mentor_assigned",
            EventKind::TemporaryMentorAssigned { .. } => "temporary_mentor_assigned",
            EventKind::MentorCoverEnded { .. } => "mentor_cover_ended",
            EventKind::MenteeAssigned { .. } => "mentee_assigned",
            EventKind::MenteeUnassigned { .. } => "mentee_unassigned",
            EventKind::SchoolMoved { .. } => "school_moved",
            EventKind::Paused { .. } => "paused",
            EventKind::PausedAlongside { .. } => "paused_alongside",
            EventKind::MentoringEnded { .. } => "mentoring_ended",
            EventKind::PauseExtended { .. } => "pause_extended",
            EventKind::PauseEnded { .. } => "pause_ended",
            EventKind::Deferred { .. } => "deferred",
            EventKind::ReturnDateChanged { .. } => "return_date_changed",
            EventKind::Returned { .. } => "returned",
            EventKind::Withdrawn { .. } => "withdrawn",
            EventKind::Reinstated { .. } => "reinstated",
            EventKind::ReleaseStartChanged { .. } => "release_start_changed",
        }
    }

    /// A plain-English account for the history.
    pub fn summary(&self) -> String {
        match self {
            EventKind::Registered { kind, enrolment, .. } => match enrolment {
                Some(e) => format!(
                    "registered as {} on the {} schedule, cohort {}, release from {}",
                    kind.describe(),
                    e.schedule.schedule_id(),
                    e.cohort,
                    e.release_start
                ),
                None => format!("registered as {}", kind.describe()),
            },
            EventKind::MentorAssigned { mentor_id, interim: true, .. } => {
                format!("induction coordinator {mentor_id} assigned as interim mentor")
            }
            EventKind::MentorAssigned { mentor_id, replaced_mentor_id: Some(old), .. } => {
                format!("mentor {mentor_id} assigned, replacing {old}")
            }
            EventKind::MentorAssigned { mentor_id, .. } => format!("mentor {mentor_id} assigned"),
            EventKind::TemporaryMentorAssigned { mentor_id, until, .. } => {
                format!("mentor {mentor_id} assigned as a temporary replacement until {until}")
            }
            EventKind::MentorCoverEnded { mentor_id } => {
                format!("cover by {mentor_id} ended: the mentor of record coaches again")
            }
            EventKind::MenteeAssigned { ect_id } => format!("now mentors ECT {ect_id}"),
            EventKind::MenteeUnassigned { ect_id } => format!("no longer mentors ECT {ect_id}"),
            EventKind::SchoolMoved { school_id, area_covered, .. } => {
                let area = if *area_covered { "" } else { " (an area the lead provider does not cover)" };
                format!("moved to school {school_id}{area}")
            }
            EventKind::Paused { start, expected_end, .. } => {
                format!("paused from {start}, expected back {expected_end}")
            }
            EventKind::PausedAlongside { start, expected_end, ect_id, .. } => {
                format!("paused from {start}, expected back {expected_end}, alongside their ECT {ect_id}")
            }
            EventKind::MentoringEnded { mentor_id: Some(m) } => format!("mentoring by {m} ended with the move"),
            EventKind::MentoringEnded { mentor_id: None } => "mentoring ended with the move".to_owned(),
            EventKind::PauseExtended { expected_end, .. } => format!("pause extended, expected back {expected_end}"),
            EventKind::PauseEnded { end, .. } => format!("pause ended on {end}"),
            EventKind::Deferred { reason, deferral_date, expected_return, cascaded_from, .. } => {
                let cascade = cascaded_from.as_ref().map(|e| format!(" with their ECT {e}")).unwrap_or_default();
                format!(
                    "deferred ({}) from {deferral_date}, expected return {expected_return}{cascade}",
                    reason.as_str()
                )
            }
            EventKind::ReturnDateChanged { expected_return, .. } => {
                format!("expected return date changed to {expected_return}")
            }
            EventKind::Returned { return_date, .. } => format!("returned on {return_date}"),
            EventKind::Withdrawn { reason, withdrawal_date, cascaded_from, .. } => {
                let cascade = cascaded_from.as_ref().map(|e| format!(" with their ECT {e}")).unwrap_or_default();
                format!("withdrawn ({}) from {withdrawal_date}{cascade}", reason.as_str())
            }
            EventKind::Reinstated { reinstated_on, .. } => {
                format!("reinstated from {reinstated_on} after a DPL's approval")
            }
            EventKind::ReleaseStartChanged { release_start, .. } => {
                format!("release start changed to {release_start} after a DPL's approval")
            }
        }
    }

    /// D12, W10: the facts the DfE reporting feed carries.
    pub fn is_reportable(&self) -> bool {
        matches!(
            self,
            EventKind::Deferred { .. }
                | EventKind::ReturnDateChanged { .. }
                | EventKind::Returned { .. }
                | EventKind::Withdrawn { .. }
                | EventKind::Reinstated { .. }
        )
    }
}

fn covered() -> bool {
    true
}

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub sub: String,
    pub role: String,
}

/// A fact decided by the domain, not yet stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub participant_id: String,
    pub effective_date: NaiveDate,
    pub kind: EventKind,
    /// Set when another participant's change caused this one (cascades).
    pub caused_by: Option<String>,
}

/// A stored fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Global, increasing: the WatchEvents cursor.
    pub cursor: i64,
    pub participant_id: String,
    /// 1, 2, 3... per participant.
    pub sequence: i64,
    pub effective_date: NaiveDate,
    pub recorded_at: NaiveDateTime,
    pub actor: Actor,
    pub caused_by: Option<String>,
    pub kind: EventKind,
}
