//! Approval requests a DPL decides and the notifications an ECF Lead reads.
//! Rows hold kinds and statuses as text; they are read back into domain
//! values here, so a row this service did not write is an INTERNAL error,
//! never a half-read request.

use super::schema::{approval_requests, notifications};
use crate::domain::lifecycle::NotificationKind;
use crate::domain::policy::ListScope;
use crate::domain::records::{ApprovalRequest, Notification, RequestDecision, RequestedChange};
use crate::domain::requests::{RequestKind, RequestStatus};
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use steplab_platform::db::DbConn;
use steplab_platform::error::ServiceError;
use steplab_platform::paging;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = approval_requests)]
struct RequestRow {
    id: String,
    kind: String,
    status: String,
    participant_id: String,
    delivery_partner_id: String,
    release_start: Option<NaiveDate>,
    note: String,
    requested_by: String,
    created_at: NaiveDateTime,
    decided_by: Option<String>,
    decision_note: Option<String>,
    decided_at: Option<NaiveDateTime>,
    /// D3: a `long_deferral` request's latest return date.
    latest_return_date: Option<NaiveDate>,
    /// W9: the approval reinstates the mentor withdrawn with the ECT too.
    with_mentor: bool,
}

fn request_row(request: &ApprovalRequest) -> RequestRow {
    let decision = request.decision.as_ref();
    RequestRow {
        id: request.id.clone(),
        kind: request.change.kind().as_str().to_owned(),
        status: request.status.as_str().to_owned(),
        participant_id: request.participant_id.clone(),
        delivery_partner_id: request.delivery_partner_id.clone(),
        release_start: request.change.release_start(),
        note: request.note.clone(),
        requested_by: request.requested_by.clone(),
        created_at: request.created_at,
        decided_by: decision.map(|d| d.decided_by.clone()),
        decision_note: decision.map(|d| d.note.clone()),
        decided_at: decision.map(|d| d.decided_at),
        latest_return_date: request.change.latest_return(),
        with_mentor: request.change.with_mentor(),
    }
}

fn request_from_row(row: RequestRow) -> Result<ApprovalRequest, ServiceError> {
    let id = &row.id;
    let unreadable = |what: &str| ServiceError::Internal(format!("request {id} has {what}"));
    let change = match RequestKind::parse(&row.kind) {
        Some(RequestKind::Reinstatement) => RequestedChange::Reinstatement { with_mentor: row.with_mentor },
        Some(RequestKind::ReleaseStartChange) => RequestedChange::ReleaseStartChange {
            release_start: row.release_start.ok_or_else(|| unreadable("no release start"))?,
        },
        Some(RequestKind::KeepMentor) => RequestedChange::KeepMentor,
        Some(RequestKind::LongDeferral) => RequestedChange::LongDeferral {
            latest_return: row.latest_return_date.ok_or_else(|| unreadable("no latest return date"))?,
        },
        None => return Err(unreadable(&format!("unknown kind {}", row.kind))),
    };
    let status =
        RequestStatus::parse(&row.status).ok_or_else(|| unreadable(&format!("unknown status {}", row.status)))?;
    let decision = match (row.decided_by, row.decided_at) {
        (Some(decided_by), Some(decided_at)) => {
            Some(RequestDecision { decided_by, note: row.decision_note.unwrap_or_default(), decided_at })
        }
        _ => None,
    };
    Ok(ApprovalRequest {
        id: row.id,
        change,
        status,
        participant_id: row.participant_id,
        delivery_partner_id: row.delivery_partner_id,
        note: row.note,
        requested_by: row.requested_by,
        created_at: row.created_at,
        decision,
    })
}

pub fn insert_request(conn: &mut DbConn, request: &ApprovalRequest) -> Result<(), ServiceError> {
    diesel::insert_into(approval_requests::table).values(&request_row(request)).execute(conn)?;
    Ok(())
}

pub fn find_request(conn: &mut DbConn, id: &str) -> Result<Option<ApprovalRequest>, ServiceError> {
    let row: Option<RequestRow> =
        approval_requests::table.find(id).select(RequestRow::as_select()).first(conn).optional()?;
    row.map(request_from_row).transpose()
}

/// The requests of one participant and kind with a status.
pub fn requests_for(
    conn: &mut DbConn,
    participant_id: &str,
    kind: RequestKind,
    status: RequestStatus,
) -> Result<Vec<ApprovalRequest>, ServiceError> {
    approval_requests::table
        .filter(approval_requests::participant_id.eq(participant_id))
        .filter(approval_requests::kind.eq(kind.as_str()))
        .filter(approval_requests::status.eq(status.as_str()))
        .select(RequestRow::as_select())
        .load(conn)?
        .into_iter()
        .map(request_from_row)
        .collect()
}

/// Whether a request of this kind and status exists for the participant.
pub fn has_request(
    conn: &mut DbConn,
    participant_id: &str,
    kind: RequestKind,
    status: RequestStatus,
) -> Result<bool, ServiceError> {
    Ok(!requests_for(conn, participant_id, kind, status)?.is_empty())
}

/// D3: the latest return date a DPL approved for the participant's
/// deferrals (`long_deferral` requests), the latest if several.
pub fn approved_latest_return(conn: &mut DbConn, participant_id: &str) -> Result<Option<NaiveDate>, ServiceError> {
    let approved = requests_for(conn, participant_id, RequestKind::LongDeferral, RequestStatus::Approved)?;
    Ok(approved.into_iter().filter_map(|r| r.change.latest_return()).max())
}

pub fn decide_request(
    conn: &mut DbConn,
    id: &str,
    status: RequestStatus,
    decided_by: &str,
    note: &str,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    let pending = approval_requests::status.eq(RequestStatus::Pending.as_str());
    let updated = diesel::update(approval_requests::table.find(id).filter(pending))
        .set((
            approval_requests::status.eq(status.as_str()),
            approval_requests::decided_by.eq(decided_by),
            approval_requests::decision_note.eq(note),
            approval_requests::decided_at.eq(now),
        ))
        .execute(conn)?;
    if updated == 0 {
        return Err(ServiceError::Aborted(format!(
            "request {id} was decided by someone else at the same time: read it again"
        )));
    }
    Ok(())
}

pub fn list_requests(
    conn: &mut DbConn,
    scope: &ListScope,
    status: Option<RequestStatus>,
    after: Option<String>,
    limit: i64,
) -> Result<(Vec<ApprovalRequest>, Option<String>), ServiceError> {
    let mut query = approval_requests::table.select(RequestRow::as_select()).order(approval_requests::id).into_boxed();
    match scope {
        ListScope::Everything => {}
        ListScope::School(_) => return Ok((Vec::new(), None)),
        ListScope::DeliveryPartners(dps) => {
            query = query.filter(approval_requests::delivery_partner_id.eq_any(dps.clone()))
        }
    }
    if let Some(status) = status {
        query = query.filter(approval_requests::status.eq(status.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(approval_requests::id.gt(after));
    }
    let mut rows = query.limit(limit + 1).load(conn)?;
    let next = paging::take_page(&mut rows, limit, |r| r.id.clone());
    let requests = rows.into_iter().map(request_from_row).collect::<Result<_, _>>()?;
    Ok((requests, next))
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = notifications)]
struct NotificationRow {
    id: String,
    kind: String,
    delivery_partner_id: String,
    school_id: String,
    message: String,
    created_at: NaiveDateTime,
}

const NOTIFICATION_KINDS: [(NotificationKind, &str); 4] = [
    (NotificationKind::SchoolWithoutParticipants, "school_without_participants"),
    (NotificationKind::InductionCoordinatorNeeded, "induction_coordinator_needed"),
    (NotificationKind::MentorWithoutEct, "mentor_without_ect"),
    (NotificationKind::EctWithoutMentor, "ect_without_mentor"),
];

fn notification_kind_name(kind: NotificationKind) -> &'static str {
    NOTIFICATION_KINDS.iter().find(|(k, _)| *k == kind).map_or("", |(_, name)| name)
}

pub fn insert_notification(conn: &mut DbConn, notification: &Notification) -> Result<(), ServiceError> {
    let row = NotificationRow {
        id: notification.id.clone(),
        kind: notification_kind_name(notification.kind).to_owned(),
        delivery_partner_id: notification.delivery_partner_id.clone(),
        school_id: notification.school_id.clone(),
        message: notification.message.clone(),
        created_at: notification.created_at,
    };
    diesel::insert_into(notifications::table).values(&row).execute(conn)?;
    Ok(())
}

fn notification_from_row(row: NotificationRow) -> Result<Notification, ServiceError> {
    let kind = NOTIFICATION_KINDS
        .iter()
        .find(|(_, name)| *name == row.kind)
        .map(|(k, _)| *k)
        .ok_or_else(|| ServiceError::Internal(format!("notification {} has unknown kind {}", row.id, row.kind)))?;
    Ok(Notification {
        id: row.id,
        kind,
        delivery_partner_id: row.delivery_partner_id,
        school_id: row.school_id,
        message: row.message,
        created_at: row.created_at,
    })
}

pub fn list_notifications(
    conn: &mut DbConn,
    scope: &ListScope,
    after: Option<String>,
    limit: i64,
) -> Result<(Vec<Notification>, Option<String>), ServiceError> {
    let mut query = notifications::table.select(NotificationRow::as_select()).order(notifications::id).into_boxed();
    match scope {
        ListScope::Everything => {}
        ListScope::School(_) => return Ok((Vec::new(), None)),
        ListScope::DeliveryPartners(dps) => {
            query = query.filter(notifications::delivery_partner_id.eq_any(dps.clone()))
        }
    }
    if let Some(after) = after {
        query = query.filter(notifications::id.gt(after));
    }
    let mut rows = query.limit(limit + 1).load(conn)?;
    let next = paging::take_page(&mut rows, limit, |r| r.id.clone());
    let notifications = rows.into_iter().map(notification_from_row).collect::<Result<_, _>>()?;
    Ok((notifications, next))
}
