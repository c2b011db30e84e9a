//! What every lifecycle action decides: the events to record, the commands
//! content release and payments must receive, and the notifications raised.

use crate::domain::ParticipantKind;
use crate::domain::events::{EventKind, NewEvent};
use chrono::NaiveDate;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldKind {
    Pause,
    Deferral,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Programme {
    Ect,
    Mentor,
}

/// What content release and payments must be told (CONTRACT.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    EnrolLearner {
        participant_id: String,
        programme: Programme,
        release_start: NaiveDate,
        school_id: String,
        delivery_partner_id: String,
    },
    EnrolPayee {
        participant_id: String,
        kind: ParticipantKind,
        delivery_partner_id: String,
        school_id: String,
        schedule: String,
        cohort: i32,
        funding_eligible: bool,
    },
    PlaceHold {
        participant_id: String,
        hold_id: String,
        kind: HoldKind,
        from: NaiveDate,
        until: NaiveDate,
    },
    LiftHold {
        participant_id: String,
        hold_id: String,
        on: NaiveDate,
    },
    SuspendAccrual {
        participant_id: String,
        suspension_id: String,
        from: NaiveDate,
        until: NaiveDate,
    },
    ResumeAccrual {
        participant_id: String,
        suspension_id: String,
        on: NaiveDate,
    },
    RevokeAccess {
        participant_id: String,
        on: NaiveDate,
    },
    RestoreAccess {
        participant_id: String,
        on: NaiveDate,
    },
    EndAccrual {
        participant_id: String,
        on: NaiveDate,
    },
    ReopenAccrual {
        participant_id: String,
        on: NaiveDate,
    },
    SetReleaseStart {
        participant_id: String,
        release_start: NaiveDate,
    },
    SetAreaCovered {
        participant_id: String,
        covered: bool,
        from: NaiveDate,
    },
    ContentScope {
        participant_id: String,
        school_id: String,
        delivery_partner_id: String,
        from: NaiveDate,
    },
    PaymentsScope {
        participant_id: String,
        school_id: String,
        delivery_partner_id: String,
        from: NaiveDate,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationKind {
    /// W7.
    SchoolWithoutParticipants,
    /// W8.
    InductionCoordinatorNeeded,
    /// M2: a mentor replaced for good has no ECT left.
    MentorWithoutEct,
    /// W9: an ECT reinstated without a current mentor.
    EctWithoutMentor,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub kind: NotificationKind,
    pub delivery_partner_id: String,
    pub school_id: String,
    pub message: String,
}

/// Everything one action decides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub events: Vec<NewEvent>,
    pub commands: Vec<Command>,
    pub notifications: Vec<NewNotification>,
}

impl Decision {
    pub(super) fn event(
        &mut self,
        participant_id: &str,
        effective_date: NaiveDate,
        kind: EventKind,
        caused_by: Option<&str>,
    ) {
        self.events.push(NewEvent {
            participant_id: participant_id.to_owned(),
            effective_date,
            kind,
            caused_by: caused_by.map(str::to_owned),
        });
    }

    /// Participants changed as a consequence of the main one (cascades).
    pub fn cascaded(&self, main: &str) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for e in &self.events {
            if e.participant_id != main && e.caused_by.as_deref() == Some(main) && !ids.contains(&e.participant_id) {
                ids.push(e.participant_id.clone());
            }
        }
        ids
    }

    pub(super) fn merge(&mut self, other: Decision) {
        self.events.extend(other.events);
        self.commands.extend(other.commands);
        self.notifications.extend(other.notifications);
    }
}
