//! What the service keeps besides participants' histories: delivery
//! partners, schools, the approval requests a DPL decides and the
//! notifications an ECF Lead reads. Plain values: the store reads and writes
//! them, the adapter shows them, and neither knows the other's shapes.

use super::lifecycle::NotificationKind;
use super::requests::{RequestKind, RequestStatus};
use chrono::{NaiveDate, NaiveDateTime};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPartner {
    pub id: String,
    pub name: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct School {
    pub id: String,
    pub urn: String,
    pub name: String,
    pub delivery_partner_id: String,
    pub area_covered: bool,
    pub created_at: NaiveDateTime,
}

/// The change an ECF Lead asks a DPL for, with the date it names: each kind
/// carries exactly what its approval needs, so none is ever missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestedChange {
    /// W9: `with_mentor` reinstates the mentor withdrawn with the ECT too.
    Reinstatement { with_mentor: bool },
    /// C2.
    ReleaseStartChange { release_start: NaiveDate },
    /// W6.
    KeepMentor,
    /// D3: a deferral may last up to `latest_return`.
    LongDeferral { latest_return: NaiveDate },
}

impl RequestedChange {
    pub fn kind(self) -> RequestKind {
        match self {
            RequestedChange::Reinstatement { .. } => RequestKind::Reinstatement,
            RequestedChange::ReleaseStartChange { .. } => RequestKind::ReleaseStartChange,
            RequestedChange::KeepMentor => RequestKind::KeepMentor,
            RequestedChange::LongDeferral { .. } => RequestKind::LongDeferral,
        }
    }

    pub fn with_mentor(self) -> bool {
        matches!(self, RequestedChange::Reinstatement { with_mentor: true })
    }

    pub fn release_start(self) -> Option<NaiveDate> {
        match self {
            RequestedChange::ReleaseStartChange { release_start } => Some(release_start),
            _ => None,
        }
    }

    pub fn latest_return(self) -> Option<NaiveDate> {
        match self {
            RequestedChange::LongDeferral { latest_return } => Some(latest_return),
            _ => None,
        }
    }
}

/// A DPL's decision on an approval request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestDecision {
    pub decided_by: String,
    pub note: String,
    pub decided_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    pub id: String,
    pub change: RequestedChange,
    pub status: RequestStatus,
    pub participant_id: String,
    pub delivery_partner_id: String,
    pub note: String,
    pub requested_by: String,
    pub created_at: NaiveDateTime,
    /// `None` while pending.
    pub decision: Option<RequestDecision>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: String,
    pub kind: NotificationKind,
    pub delivery_partner_id: String,
    pub school_id: String,
    pub message: String,
    pub created_at: NaiveDateTime,
}
