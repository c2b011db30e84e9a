//! Storing a decision: its events, the commands for the peers, the
//! notifications, and what it changes for the mentors around it (P1, D9).

use super::{actor, load, load_all};
use crate::convert;
use crate::domain::ParticipantKind;
use crate::domain::events::Actor;
use crate::domain::handover;
use crate::domain::lifecycle::{self, Decision};
use crate::domain::mentoring;
use crate::domain::records::Notification;
use crate::domain::view::ParticipantRecord;
use crate::store;
use chrono::{NaiveDate, NaiveDateTime};
use steplab_platform::Caller;
use steplab_platform::db::DbConn;
use steplab_platform::error::ServiceError;
use steplab_platform::observability;
use steplab_platform::outbox::NewCommand;

/// Writes the commands of a decision to the outbox, each with a fresh id and
/// the request id of the call that caused it (sent on as `x-request-id`).
pub(super) fn enqueue(
    conn: &mut DbConn,
    commands: Vec<lifecycle::Command>,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    let request_id = observability::current_request_id();
    let rows = commands
        .into_iter()
        .map(|command| {
            let mut row: NewCommand = crate::commands::to_outbox(command, convert::new_id());
            row.request_id.clone_from(&request_id);
            row
        })
        .collect();
    store::journal::enqueue(conn, rows, now)
}

/// Stores everything one decision made, in the caller's transaction: the
/// events of every participant touched (version-checked), the commands for
/// content release and payments, and the notifications; then the mentors'
/// deferrals derived from what changed (D9). Answers the mentors whose
/// derived deferral changed.
pub(super) fn apply(
    conn: &mut DbConn,
    caller: &Caller,
    touched: &[ParticipantRecord],
    decision: Decision,
    now: NaiveDateTime,
    today: NaiveDate,
) -> Result<Vec<String>, ServiceError> {
    let mut unique: Vec<&ParticipantRecord> = Vec::new();
    for record in touched {
        if !unique.iter().any(|r| r.id == record.id) {
            unique.push(record);
        }
    }
    let changed: Vec<&ParticipantRecord> =
        unique.iter().copied().filter(|r| decision.events.iter().any(|e| e.participant_id == r.id)).collect();
    let cause = touched.first().map(|r| r.id.clone());
    let mut mentors: Vec<String> = Vec::new();
    // A mentor's own withdrawal or reinstatement bounds their derived deferral too.
    for record in changed.iter().filter(|r| r.kind == ParticipantKind::Mentor) {
        mentors.push(record.id.clone());
    }
    let ect_ids: Vec<String> =
        changed.iter().filter(|r| r.kind == ParticipantKind::Ect).map(|r| r.id.clone()).collect();
    // Every row this unit of work may write (the participants it read, a
    // newly assigned mentor among them, and the mentors re-derived below),
    // locked in one order before any write.
    let mut writes: Vec<String> = unique.iter().map(|r| r.id.clone()).collect();
    for record in changed.iter().filter(|r| r.kind == ParticipantKind::Ect) {
        writes.extend(mentoring::mentors_of_record(record));
    }
    store::lock_participants(conn, &writes)?;
    store::append_events(conn, &unique, &decision.events, &actor(caller), now, today)?;
    enqueue(conn, decision.commands, now)?;
    store_notifications(conn, decision.notifications, now)?;
    end_mentor_pauses_beyond(conn, &actor(caller), &ect_ids, now, today)?;
    for ect_id in ect_ids {
        for id in mentoring::mentors_of_record(&load(conn, &ect_id)?) {
            if !mentors.contains(&id) {
                mentors.push(id);
            }
        }
    }
    rederive(conn, &actor(caller), &mentors, cause.as_deref(), now, today)
}

/// P1: after a change to these ECTs, the pause of a mentor paused alongside
/// one of them ends no later than the ECT's (P4, P8, W4).
fn end_mentor_pauses_beyond(
    conn: &mut DbConn,
    actor: &Actor,
    ect_ids: &[String],
    now: NaiveDateTime,
    today: NaiveDate,
) -> Result<(), ServiceError> {
    for ect_id in ect_ids {
        let ect = load(conn, ect_id)?;
        for mentor_id in mentoring::mentors_of_record(&ect) {
            let mentor = load(conn, &mentor_id)?;
            let decision = handover::end_pauses_beyond_ect(&mentor, &ect);
            if decision.events.is_empty() {
                continue;
            }
            store::append_events(conn, &[&mentor], &decision.events, actor, now, today)?;
            enqueue(conn, decision.commands, now)?;
        }
    }
    Ok(())
}

/// D9: the mentors' deferrals derived again from their ECTs; the difference
/// from what each mentor's history holds is recorded and sent. Answers the
/// mentors that changed.
fn rederive(
    conn: &mut DbConn,
    actor: &Actor,
    mentor_ids: &[String],
    cause: Option<&str>,
    now: NaiveDateTime,
    today: NaiveDate,
) -> Result<Vec<String>, ServiceError> {
    let mut changed = Vec::new();
    for mentor_id in mentor_ids {
        let mentor = load(conn, mentor_id)?;
        if mentor.kind != ParticipantKind::Mentor {
            continue;
        }
        let ects = load_all(conn, mentoring::ever_mentored(&mentor).iter())?;
        let desired = mentoring::derived_deferrals(&mentor, &ects);
        let caused_by = cause.filter(|c| *c != mentor.id);
        let decision = mentoring::reconcile(&mentor, &desired, caused_by, today);
        if decision.events.is_empty() && decision.commands.is_empty() {
            continue;
        }
        store::append_events(conn, &[&mentor], &decision.events, actor, now, today)?;
        enqueue(conn, decision.commands, now)?;
        changed.push(mentor.id);
    }
    Ok(changed)
}

fn store_notifications(
    conn: &mut DbConn,
    notifications: Vec<lifecycle::NewNotification>,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    for n in notifications {
        let notification = Notification {
            id: convert::new_id(),
            kind: n.kind,
            delivery_partner_id: n.delivery_partner_id,
            school_id: n.school_id,
            message: n.message,
            created_at: now,
        };
        store::insert_notification(conn, &notification)?;
    }
    Ok(())
}
