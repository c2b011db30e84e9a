//! The dated facts a participant's history is made of. Status and every
//! other answer "as of a date" is a fold over these (see `view`), so a
//! backdated fact or a future-dated one needs no timer.

use super::{Enrolment, ParticipantKind};
use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

/// What happened. Stored as JSON in the event's payload column, so adding a
/// variant needs no migration.
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
    },
    /// On an ECT: from its effective date this is their mentor (M1, M2, M3).
    MentorAssigned {
        mentor_id: String,
        interim: bool,
        replaced_mentor_id: Option<String>,
    },
    /// On a mentor (or an interim IC): an ECT was assigned to them.
    MenteeAssigned { ect_id: String },
    /// On a mentor: an ECT moved to another mentor (M2).
    MenteeUnassigned { ect_id: String },
}

impl EventKind {
    /// The stable name stored in the `event_type` column and shown in history.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::Registered { .. } => "registered",
            EventKind::MentorAssigned { .. } => "mentor_assigned",
            EventKind::MenteeAssigned { .. } => "mentee_assigned",
            EventKind::MenteeUnassigned { .. } => "mentee_unassigned",
        }
    }

    /// A plain-English account for the history.
    pub fn summary(&self) -> String {
        match self {
            EventKind::Registered {
                kind, enrolment, ..
            } => match enrolment {
                Some(e) => format!(
                    "registered as {} on the {} schedule, cohort {}, release from {}",
                    kind.describe(),
                    e.schedule.schedule_id(),
                    e.cohort,
                    e.release_start
                ),
                None => format!("registered as {}", kind.describe()),
            },
            EventKind::MentorAssigned {
                mentor_id,
                interim: true,
                ..
            } => {
                format!("induction coordinator {mentor_id} assigned as interim mentor")
            }
            EventKind::MentorAssigned {
                mentor_id,
                replaced_mentor_id: Some(old),
                ..
            } => {
                format!("mentor {mentor_id} assigned, replacing {old}")
            }
            EventKind::MentorAssigned { mentor_id, .. } => format!("mentor {mentor_id} assigned"),
            EventKind::MenteeAssigned { ect_id } => format!("now mentors ECT {ect_id}"),
            EventKind::MenteeUnassigned { ect_id } => format!("no longer mentors ECT {ect_id}"),
        }
    }
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
