//! The participant service's use cases: each validates, checks permission,
//! and runs the domain decision and its storage in one unit of work. Public
//! mutating calls with a `request_id` store their answer in the same
//! transaction, so a repeat returns it and changes nothing.

use crate::convert;
use crate::domain::events::Actor;
use crate::domain::handover;
use crate::domain::lifecycle::{self, Decision, Destination, MentorCircle, SchoolCircle, Withdrawal};
use crate::domain::mentoring;
use crate::domain::policy::{self, Place};
use crate::domain::registry::{self, Assignment, SchoolRef};
use crate::domain::requests::{RequestKind, RequestStatus};
use crate::domain::view::ParticipantRecord;
use crate::domain::{ParticipantKind, TrainingStatus};
use crate::domain::{ParticipantRules, ParticipantView, RuleViolation};
use crate::peers::CheckError;
use crate::store::{self, DeliveryPartnerRow, ListFilter, NotificationRow, RequestRow, SchoolRow};
use chrono::NaiveDate;
use chrono::NaiveDateTime;
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use steplab_platform::db::{Database, DbConn};
use steplab_platform::error::ServiceError;
use steplab_platform::idempotency::{self, IdempotencyKey, Ran};
use steplab_platform::observability;
use steplab_platform::outbox::{self, NewCommand};
use steplab_platform::{Caller, Clock, FieldViolations, date};
use steplab_proto::steplab::participant::v1 as pb;
use tokio::sync::Notify;

/// Participants the consistency check reads from the peers at once (two
/// calls each, one per peer).
const PARTICIPANTS_CHECKED_AT_ONCE: usize = 8;

#[derive(Clone)]
pub struct Registry {
    db: Database,
    clock: Clock,
    /// Wakes the outbox relay after a change with commands commits.
    relay: Arc<Notify>,
    /// Wakes WatchEvents streams after any change commits.
    feed: Arc<Notify>,
    /// Content release and payments, for the consistency check.
    peers: Option<crate::peers::Peers>,
}

/// Writes the commands of a decision to the outbox, each with a fresh id and
/// the request id of the call that caused it (sent on as `x-request-id`).
fn enqueue(conn: &mut DbConn, commands: Vec<lifecycle::Command>, now: NaiveDateTime) -> Result<(), ServiceError> {
    let request_id = observability::current_request_id();
    for command in commands {
        let mut row: NewCommand = crate::commands::to_outbox(command, convert::new_id());
        row.request_id.clone_from(&request_id);
        outbox::enqueue(conn, &row, now)?;
    }
    Ok(())
}

/// Stores everything one decision made, in the caller's transaction: the
/// events of every participant touched (version-checked), the commands for
/// content release and payments, and the notifications; then the mentors'
/// deferrals derived from what changed (D9). Answers the mentors whose
/// derived deferral changed.
fn apply(
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

/// W9: a participant as shown: a withdrawn mentor is never an ECT's
/// current mentor (nor mentor of record) on the view's date.
fn shown(conn: &mut DbConn, view: ParticipantView) -> Result<pb::Participant, ServiceError> {
    let participant = shown_with(conn, view, &mut HashMap::new())?;
    with_dfe_id(conn, participant)
}

/// [`shown`], remembering whether each mentor is withdrawn on a date (a
/// list page names the same mentors again and again).
fn shown_with(
    conn: &mut DbConn,
    mut view: ParticipantView,
    withdrawn: &mut HashMap<(String, NaiveDate), bool>,
) -> Result<pb::Participant, ServiceError> {
    if view.kind == ParticipantKind::Ect {
        let as_of = view.as_of;
        let named: Vec<String> =
            view.mentor.iter().map(|(id, _)| id.clone()).chain(view.mentor_of_record.clone()).collect();
        for id in named {
            if let std::collections::hash_map::Entry::Vacant(slot) = withdrawn.entry((id, as_of)) {
                let gone = store::load_participant(conn, &slot.key().0)?
                    .is_some_and(|m| m.timeline().status_on(as_of) == TrainingStatus::Withdrawn);
                slot.insert(gone);
            }
        }
        handover::hide_withdrawn_mentors(&mut view, |id| {
            withdrawn.get(&(id.to_owned(), as_of)).copied().unwrap_or(false)
        });
    }
    Ok(convert::participant(view))
}

/// The ECT's mentor of record today, if any (W9).
fn mentor_of_record_now(
    conn: &mut DbConn,
    p: &ParticipantRecord,
    today: NaiveDate,
) -> Result<Option<ParticipantRecord>, ServiceError> {
    match p.as_of(today.max(p.registered_on)).and_then(|v| v.mentor_of_record) {
        Some(id) => Ok(Some(load(conn, &id)?)),
        None => Ok(None),
    }
}

/// D9: the mentors' deferrals derived again from their ECTs; the difference
/// from what each mentor's history holds is recorded and sent. Answers the
/// mentors that changed.
pub(crate) fn rederive(
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
        let ects = mentoring::ever_mentored(&mentor).iter().map(|id| load(conn, id)).collect::<Result<Vec<_>, _>>()?;
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
        let kind = match n.kind {
            lifecycle::NotificationKind::SchoolWithoutParticipants => "school_without_participants",
            lifecycle::NotificationKind::InductionCoordinatorNeeded => "induction_coordinator_needed",
            lifecycle::NotificationKind::MentorWithoutEct => "mentor_without_ect",
            lifecycle::NotificationKind::EctWithoutMentor => "ect_without_mentor",
        };
        store::insert_notification(
            conn,
            &NotificationRow {
                id: convert::new_id(),
                kind: kind.to_owned(),
                delivery_partner_id: n.delivery_partner_id,
                school_id: n.school_id,
                message: n.message,
                created_at: now,
            },
        )?;
    }
    Ok(())
}

/// A mentor, the ECTs they were ever assigned, and whether a DPL approved keeping them.
fn mentor_circle(conn: &mut DbConn, mentor: ParticipantRecord) -> Result<MentorCircle, ServiceError> {
    let other_ects =
        mentoring::ever_mentored(&mentor).iter().map(|id| load(conn, id)).collect::<Result<Vec<_>, _>>()?;
    let keep_approved =
        !store::requests_for(conn, &mentor.id, RequestKind::KeepMentor.as_str(), RequestStatus::Approved.as_str())?
            .is_empty();
    Ok(MentorCircle { mentor, other_ects, keep_approved })
}

/// The ECT's mentor of record on `date` (M5), with their circle.
fn mentor_of(
    conn: &mut DbConn,
    ect: &ParticipantRecord,
    date: NaiveDate,
) -> Result<Option<MentorCircle>, ServiceError> {
    let Some(mentor_id) = ect.as_of(date).and_then(|v| v.mentor_of_record) else {
        return Ok(None);
    };
    let mentor = load(conn, &mentor_id)?;
    Ok(Some(mentor_circle(conn, mentor)?))
}

/// X1: the participant message with their DfE id, kept beside the history.
fn with_dfe_id(conn: &mut DbConn, mut participant: pb::Participant) -> Result<pb::Participant, ServiceError> {
    let ids = store::dfe_participant_ids(conn, std::slice::from_ref(&participant.participant_id))?;
    participant.dfe_participant_id = ids.get(&participant.participant_id).cloned().unwrap_or_default();
    Ok(participant)
}

/// X1: a DfE participant id is a UUID (canonical lower-case form).
fn dfe_participant_id(value: &str, required: bool) -> Result<Option<String>, ServiceError> {
    if value.is_empty() && !required {
        return Ok(None);
    }
    uuid::Uuid::parse_str(value).map(|u| Some(u.hyphenated().to_string())).map_err(|_| {
        FieldViolations::from(steplab_platform::FieldViolation::new(
            "dfe_participant_id",
            "must be the DfE's participant id, a UUID (e.g. 3452b1a6-cbaa-422f-9ca9-40afa28583a2)",
        ))
        .into()
    })
}

/// X1: stores the DfE id of an ECT or mentor and tells the gateway, which
/// then sends the calls that waited for it.
fn set_dfe_id(
    conn: &mut DbConn,
    record: &ParticipantRecord,
    dfe_id: &str,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    let Some(track) = crate::domain::dfe::track(record, Some(dfe_id.to_owned())) else {
        return Err(FieldViolations::from(steplab_platform::FieldViolation::new(
            "dfe_participant_id",
            "induction coordinators are not reported to the DfE: leave it empty",
        ))
        .into());
    };
    store::set_dfe_participant_id(conn, &record.id, dfe_id)?;
    store::enqueue_for_dfe(conn, vec![track], now)
}

/// The participant after a change, with those its cascades touched.
fn changed(
    conn: &mut DbConn,
    id: &str,
    cascaded: Vec<String>,
    today: NaiveDate,
) -> Result<(pb::Participant, Vec<String>), ServiceError> {
    let record = load(conn, id)?;
    let view = current(&record, today)?;
    Ok((shown(conn, view)?, cascaded))
}

/// Who calls which RPC with what, for the shared paths of the use cases.
struct Call<'a, Req> {
    caller: Caller,
    rpc: &'static str,
    request: &'a Req,
    /// The caller's optional idempotency key.
    request_id: &'a str,
}

fn actor(caller: &Caller) -> Actor {
    Actor { sub: caller.sub.clone(), role: caller.role().as_str().to_owned() }
}

fn place(view: &ParticipantView) -> Place<'_> {
    Place { school_id: &view.school_id, delivery_partner_id: &view.delivery_partner_id }
}

fn school_place(row: &SchoolRow) -> Place<'_> {
    Place { school_id: &row.id, delivery_partner_id: &row.delivery_partner_id }
}

fn idempotency_key(caller: &Caller, request_id: &str) -> Result<Option<IdempotencyKey>, ServiceError> {
    IdempotencyKey::parse("request_id", &caller.sub, request_id).map_err(|v| ServiceError::InvalidArgument(v.into()))
}

fn load(conn: &mut DbConn, id: &str) -> Result<ParticipantRecord, ServiceError> {
    // The first participant a call loads is the one its log line names.
    observability::note_participant(id);
    store::load_participant(conn, id)?.ok_or_else(|| ServiceError::NotFound(format!("participant {id} does not exist")))
}

/// AIP-211: what a caller learns about a `what` it names by id. One its
/// scope covers is returned. To anyone but an admin, one outside their scope
/// and one that does not exist get the same PERMISSION_DENIED, so ids cannot
/// be probed across delivery partners; an admin sees everything, so hears
/// NOT_FOUND.
fn within_reach<T>(
    caller: &Caller,
    found: Option<T>,
    reaches: impl FnOnce(&T) -> bool,
    what: &str,
    id: &str,
) -> Result<T, ServiceError> {
    match found {
        Some(thing) if reaches(&thing) => Ok(thing),
        None if policy::sees_everything(caller) => Err(ServiceError::NotFound(format!("{what} {id} does not exist"))),
        _ => Err(policy::unreachable(caller, what).into()),
    }
}

/// A participant the caller's scope covers, with their view today.
fn load_in_reach(
    conn: &mut DbConn,
    caller: &Caller,
    id: &str,
    today: NaiveDate,
) -> Result<(ParticipantRecord, ParticipantView), ServiceError> {
    observability::note_participant(id);
    let found = match store::load_participant(conn, id)? {
        Some(record) => {
            let view = current(&record, today)?;
            Some((record, view))
        }
        None => None,
    };
    within_reach(caller, found, |(_, view)| policy::reaches(caller, place(view)), "participant", id)
}

/// A school the caller's scope covers.
fn school_in_reach(conn: &mut DbConn, caller: &Caller, id: &str) -> Result<SchoolRow, ServiceError> {
    let found = store::find_school(conn, id)?;
    within_reach(caller, found, |school| policy::reaches(caller, school_place(school)), "school", id)
}

/// ALREADY_EXISTS for a TRN already registered: the holder is named only to
/// a caller whose scope covers them, so a TRN reveals nothing about another
/// delivery partner's participants beyond being taken.
fn trn_taken(
    conn: &mut DbConn,
    caller: &Caller,
    new: &registry::NewParticipant,
    trn: &str,
    holder: &str,
    today: NaiveDate,
) -> Result<ServiceError, ServiceError> {
    let what = new.kind.describe();
    let record = load(conn, holder)?;
    Ok(ServiceError::AlreadyExists(if policy::reaches(caller, place(&current(&record, today)?)) {
        format!("{what} with TRN {trn} is already registered as participant {holder}")
    } else {
        format!("{what} with TRN {trn} is already registered")
    }))
}

/// The participant now: today, or their registration date while that is
/// still ahead (never the case for a registration, kept total for safety).
fn current(record: &ParticipantRecord, today: NaiveDate) -> Result<ParticipantView, ServiceError> {
    record
        .as_of(today.max(record.registered_on))
        .ok_or_else(|| ServiceError::Internal(format!("participant {} has no current view", record.id)))
}

impl Registry {
    pub fn new(db: Database, clock: Clock, relay: Arc<Notify>, feed: Arc<Notify>) -> Self {
        Self { db, clock, relay, feed, peers: None }
    }

    /// Lets the consistency check read content release and payments.
    pub fn with_peers(mut self, peers: crate::peers::Peers) -> Self {
        self.peers = Some(peers);
        self
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    pub fn feed(&self) -> Arc<Notify> {
        self.feed.clone()
    }

    /// Runs a mutation in one write transaction, honouring `request_id`.
    async fn mutate<Req, Resp>(
        &self,
        key: Option<IdempotencyKey>,
        rpc: &'static str,
        request: &Req,
        f: impl FnOnce(&mut DbConn) -> Result<Resp, ServiceError> + Send + 'static,
    ) -> Result<Resp, ServiceError>
    where
        Req: prost::Message,
        Resp: prost::Message + Default + Send + 'static,
    {
        let request_bytes = request.encode_to_vec();
        let now = self.clock.now();
        let answer = self
            .db
            .write(move |conn| {
                idempotency::once::<ParticipantRules, _>(conn, key.as_ref(), rpc, &request_bytes, now, f)
                    .map(Ran::into_inner)
            })
            .await;
        if answer.is_ok() {
            // Committed: the relay and the feed have work.
            self.relay.notify_one();
            self.feed.notify_waiters();
        }
        answer
    }

    /// D7, D12: records every return that has happened by itself and is not
    /// yet in a history, dated its return date, so the history and the
    /// reporting feed show it without anyone calling an RPC. Run at start-up
    /// and periodically: a durable catch-up, not a timer a restart could
    /// miss. One transaction per participant; one that loses a race is
    /// picked up by the next sweep. Answers how many returns were recorded.
    pub async fn record_due_returns(&self) -> Result<usize, ServiceError> {
        let ids = self.db.read(store::ever_deferred).await?;
        let system = Actor { sub: "steplab-participant".into(), role: "service".into() };
        let mut recorded = 0;
        for id in ids {
            let (today, now, system) = (self.clock.today(), self.clock.now(), system.clone());
            let outcome = self
                .db
                .write(move |conn| {
                    let p = load(conn, &id)?;
                    let due = lifecycle::due_returns(&p, today);
                    if !due.is_empty() {
                        store::append_events(conn, &[&p], &due, &system, now, today)?;
                    }
                    Ok::<_, ServiceError>(due.len())
                })
                .await;
            match outcome {
                Ok(n) => recorded += n,
                Err(ServiceError::Aborted(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if recorded > 0 {
            self.feed.notify_waiters();
        }
        Ok(recorded)
    }

    pub async fn create_delivery_partner(
        &self,
        caller: Caller,
        req: pb::CreateDeliveryPartnerRequest,
    ) -> Result<pb::CreateDeliveryPartnerResponse, ServiceError> {
        policy::may_create_delivery_partner(&caller)?;
        let name = convert::name("name", &req.name).map_err(FieldViolations::from)?;
        let key = idempotency_key(&caller, &req.request_id)?;
        let row = DeliveryPartnerRow { id: convert::new_id(), name, created_at: self.clock.now() };
        self.mutate(key, "CreateDeliveryPartner", &req, move |conn| {
            store::insert_delivery_partner(conn, &row)?;
            Ok(pb::CreateDeliveryPartnerResponse { delivery_partner: Some(convert::delivery_partner(row)) })
        })
        .await
    }

    pub async fn create_school(
        &self,
        caller: Caller,
        req: pb::CreateSchoolRequest,
    ) -> Result<pb::CreateSchoolResponse, ServiceError> {
        policy::may_create_school(&caller)?;
        let new = convert::create_school(&req)?;
        let key = idempotency_key(&caller, &req.request_id)?;
        let row = SchoolRow {
            id: convert::new_id(),
            urn: new.urn,
            name: new.name,
            delivery_partner_id: new.delivery_partner_id,
            area_covered: new.area_covered,
            created_at: self.clock.now(),
        };
        self.mutate(key, "CreateSchool", &req, move |conn| {
            if store::find_delivery_partner(conn, &row.delivery_partner_id)?.is_none() {
                return Err(ServiceError::NotFound(format!(
                    "delivery partner {} does not exist: create it first",
                    row.delivery_partner_id
                )));
            }
            store::insert_school(conn, &row)?;
            Ok(pb::CreateSchoolResponse { school: Some(convert::school(row)) })
        })
        .await
    }

    pub async fn register(
        &self,
        caller: Caller,
        req: pb::RegisterParticipantRequest,
    ) -> Result<pb::RegisterParticipantResponse, ServiceError> {
        policy::may_register_somewhere(&caller)?;
        let registration = convert::register(&req)?;
        let dfe_id = dfe_participant_id(&req.dfe_participant_id, false)?;
        let key = idempotency_key(&caller, &req.request_id)?;
        let (today, now) = (self.clock.today(), self.clock.now());
        self.mutate(key, "RegisterParticipant", &req, move |conn| {
            let school = school_in_reach(conn, &caller, &registration.school_id)?;
            policy::may_register(&caller, school_place(&school))?;
            let school = SchoolRef {
                id: school.id,
                delivery_partner_id: school.delivery_partner_id,
                area_covered: school.area_covered,
            };
            let new = registry::register(convert::new_id(), registration, &school, today)?;
            if let Some(trn) = &new.trn
                && let Some(holder) = store::trn_holder(conn, trn, new.kind)?
            {
                return Err(trn_taken(conn, &caller, &new, trn, &holder, today)?);
            }
            let record = store::insert_participant(conn, &new, &actor(&caller), now, today)?;
            observability::note_participant(&record.id);
            // C1: content release and payments enrol the participant.
            enqueue(conn, lifecycle::enrol(&record)?.commands, now)?;
            // X1: the DfE id given at registration, and the gateway told of it.
            if let Some(dfe_id) = &dfe_id {
                set_dfe_id(conn, &record, dfe_id, now)?;
            }
            let participant = convert::participant(current(&record, today)?);
            Ok(pb::RegisterParticipantResponse { participant: Some(with_dfe_id(conn, participant)?) })
        })
        .await
    }

    /// X1: an admin records an ECT's or mentor's DfE participant id.
    pub async fn set_dfe_participant_id(
        &self,
        caller: Caller,
        req: pb::SetDfeParticipantIdRequest,
    ) -> Result<pb::SetDfeParticipantIdResponse, ServiceError> {
        policy::may_set_dfe_participant_id(&caller)?;
        let mut v = FieldViolations::default();
        let id = v.check(convert::id("participant_id", &req.participant_id));
        let id = v.finish(|| id)?;
        let dfe_id = dfe_participant_id(&req.dfe_participant_id, true)?.unwrap_or_default();
        let (today, now) = (self.clock.today(), self.clock.now());
        self.db
            .write(move |conn| {
                let record = load(conn, &id)?;
                if record.kind == ParticipantKind::InductionCoordinator {
                    return Err(RuleViolation::new(
                        "NOT_REPORTED_TO_DFE",
                        "induction coordinators are not reported to the DfE: only ECTs and mentors have a DfE id",
                    )
                    .into());
                }
                store::lock_participants(conn, std::slice::from_ref(&record.id))?;
                set_dfe_id(conn, &record, &dfe_id, now)?;
                let participant = convert::participant(current(&record, today)?);
                Ok(pb::SetDfeParticipantIdResponse { participant: Some(with_dfe_id(conn, participant)?) })
            })
            .await
            .inspect(|_| self.relay.notify_one())
    }

    pub async fn get(
        &self,
        caller: Caller,
        req: pb::GetParticipantRequest,
    ) -> Result<pb::GetParticipantResponse, ServiceError> {
        let mut v = FieldViolations::default();
        let id = v.check(convert::id("participant_id", &req.participant_id));
        let as_of = v.check(date::optional("as_of", req.as_of.as_ref()));
        let (id, as_of) = v.finish(|| Some((id?, as_of?)))?;
        let today = self.clock.today();
        self.db
            .read(move |conn| {
                let (record, view_today) = load_in_reach(conn, &caller, &id, today)?;
                policy::may_read(&caller, place(&view_today))?;
                let as_of = as_of.unwrap_or(today);
                let view = record.as_of(as_of).ok_or_else(|| {
                    RuleViolation::new(
                        "BEFORE_REGISTRATION",
                        format!(
                            "participant {id} was registered on {}: ask for a date on or after it",
                            record.registered_on
                        ),
                    )
                })?;
                Ok(pb::GetParticipantResponse { participant: Some(shown(conn, view)?) })
            })
            .await
    }

    pub async fn list(
        &self,
        caller: Caller,
        req: pb::ListParticipantsRequest,
    ) -> Result<pb::ListParticipantsResponse, ServiceError> {
        let query = convert::list(&req)?;
        let today = self.clock.today();
        self.db
            .read(move |conn| {
                let school_filter = match &query.school_id {
                    None => None,
                    Some(id) => Some(school_in_reach(conn, &caller, id)?),
                };
                let scope = policy::list_scope(
                    &caller,
                    school_filter.as_ref().map(|s| (s.id.as_str(), s.delivery_partner_id.as_str())),
                    query.delivery_partner_id.as_deref(),
                )?;
                let filter = ListFilter {
                    scope,
                    school_id: query.school_id,
                    delivery_partner_id: query.delivery_partner_id,
                    kind: query.kind,
                    status: query.status,
                    as_of: today,
                };
                let (records, next) = store::list_participants(conn, &filter, query.after, query.page_size)?;
                let mut withdrawn = HashMap::new();
                // X1: the page's DfE ids in one read.
                let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
                let dfe_ids = store::dfe_participant_ids(conn, &ids)?;
                let participants = records
                    .iter()
                    .map(|r| {
                        let mut shown = shown_with(conn, current(r, today)?, &mut withdrawn)?;
                        shown.dfe_participant_id = dfe_ids.get(&r.id).cloned().unwrap_or_default();
                        Ok(shown)
                    })
                    .collect::<Result<_, ServiceError>>()?;
                Ok(pb::ListParticipantsResponse {
                    participants,
                    next_page_token: next.map(|k| steplab_platform::paging::encode_token(&k)).unwrap_or_default(),
                })
            })
            .await
    }

    pub async fn assign_mentor(
        &self,
        caller: Caller,
        req: pb::AssignMentorRequest,
    ) -> Result<pb::AssignMentorResponse, ServiceError> {
        let change = convert::assign_mentor(&req)?;
        let key = idempotency_key(&caller, &req.request_id)?;
        let (today, now) = (self.clock.today(), self.clock.now());
        self.mutate(key, "AssignMentor", &req, move |conn| {
            let (ect, ect_now) = load_in_reach(conn, &caller, &change.ect_id, today)?;
            let interim = change.assignment == Assignment::InterimCover;
            policy::may_assign_mentor(&caller, place(&ect_now), interim)?;
            // The mentor too: otherwise the rule that refuses them (not a
            // mentor, another school) would describe another partner's participant.
            let (mentor, _) = load_in_reach(conn, &caller, &change.mentor_id, today)?;
            let effective = change.effective_date.unwrap_or(today);
            let events = registry::assign_mentor(&ect, &mentor, change.assignment, effective, today)?;
            let mut touched = vec![ect.clone(), mentor];
            for e in &events {
                if !touched.iter().any(|t| t.id == e.participant_id) {
                    touched.push(load(conn, &e.participant_id)?);
                }
            }
            let mut decision = Decision { events, ..Decision::default() };
            // M2: a mentor replaced for good is never withdrawn by it; left
            // with no ECT, the ECF Lead hears of them.
            if change.assignment == Assignment::OfRecord
                && let Some(previous) = ect_now.mentor_of_record.as_ref().filter(|p| *p != &change.mentor_id)
            {
                let previous = load(conn, previous)?;
                let circle = mentor_circle(conn, previous)?;
                decision.notifications.extend(lifecycle::mentor_without_ect(&circle, &ect.id, today));
            }
            apply(conn, &caller, &touched, decision, now, today)?;
            let ect = load(conn, &ect.id)?;
            Ok(pb::AssignMentorResponse { ect: Some(shown(conn, current(&ect, today)?)?) })
        })
        .await
    }

    pub async fn end_mentor_cover(
        &self,
        caller: Caller,
        req: pb::EndMentorCoverRequest,
    ) -> Result<pb::EndMentorCoverResponse, ServiceError> {
        let (ect_id, end) = convert::id_and_date("ect_id", &req.ect_id, "end_date", req.end_date.as_ref(), false)?;
        let key = idempotency_key(&caller, &req.request_id)?;
        let (today, now) = (self.clock.today(), self.clock.now());
        self.mutate(key, "EndMentorCover", &req, move |conn| {
            let (ect, ect_now) = load_in_reach(conn, &caller, &ect_id, today)?;
            policy::may_assign_mentor(&caller, place(&ect_now), true)?;
            let events = registry::end_mentor_cover(&ect, end.unwrap_or(today), today)?;
            let mut touched = vec![ect.clone()];
            for e in &events {
                if !touched.iter().any(|t| t.id == e.participant_id) {
                    touched.push(load(conn, &e.participant_id)?);
                }
            }
            apply(conn, &caller, &touched, Decision { events, ..Decision::default() }, now, today)?;
            let ect = load(conn, &ect.id)?;
            Ok(pb::EndMentorCoverResponse { ect: Some(shown(conn, current(&ect, today)?)?) })
        })
        .await
    }

    pub async fn history(
        &self,
        caller: Caller,
        req: pb::GetParticipantHistoryRequest,
    ) -> Result<pb::GetParticipantHistoryResponse, ServiceError> {
        let id = convert::id("participant_id", &req.participant_id).map_err(FieldViolations::from)?;
        let today = self.clock.today();
        self.db
            .read(move |conn| {
                let (_, view_today) = load_in_reach(conn, &caller, &id, today)?;
                policy::may_read(&caller, place(&view_today))?;
                let events = store::history(conn, &id)?.into_iter().map(convert::event).collect();
                Ok(pb::GetParticipantHistoryResponse { events })
            })
            .await
    }

    /// Loads the participant, checks the caller may act on it, decides, and
    /// stores the decision: the shape of every lifecycle RPC.
    async fn act<Req, Resp>(
        &self,
        call: Call<'_, Req>,
        participant_id: String,
        authorize: fn(&Caller, Place<'_>) -> Result<(), policy::Denied>,
        decide: impl FnOnce(
            &mut DbConn,
            &ParticipantRecord,
            NaiveDate,
        ) -> Result<(Decision, Vec<ParticipantRecord>), ServiceError>
        + Send
        + 'static,
        answer: impl FnOnce(pb::Participant, Vec<String>) -> Resp + Send + 'static,
    ) -> Result<Resp, ServiceError>
    where
        Req: prost::Message,
        Resp: prost::Message + Default + Send + 'static,
    {
        let Call { caller, rpc, request, request_id } = call;
        let key = idempotency_key(&caller, request_id)?;
        let (today, now) = (self.clock.today(), self.clock.now());
        self.mutate(key, rpc, request, move |conn| {
            let (record, view_today) = load_in_reach(conn, &caller, &participant_id, today)?;
            authorize(&caller, place(&view_today))?;
            let (decision, mut touched) = decide(conn, &record, today)?;
            let mut cascaded = decision.cascaded(&participant_id);
            touched.insert(0, record);
            for mentor in apply(conn, &caller, &touched, decision, now, today)? {
                if !cascaded.contains(&mentor) {
                    cascaded.push(mentor);
                }
            }
            let (participant, cascaded) = changed(conn, &participant_id, cascaded, today)?;
            Ok(answer(participant, cascaded))
        })
        .await
    }

    pub async fn pause(
        &self,
        caller: Caller,
        req: pb::PauseParticipantRequest,
    ) -> Result<pb::PauseParticipantResponse, ServiceError> {
        let p = convert::pause(&req)?;
        let pause_id = convert::new_id();
        let who = caller.clone();
        self.act(
            Call { caller, rpc: "PauseParticipant", request: &req, request_id: &req.request_id },
            p.participant_id,
            policy::may_manage_pause,
            move |conn, participant, today| {
                let Some(ect_id) = p.alongside_ect_id else {
                    return Ok((
                        lifecycle::pause(participant, pause_id, p.start, p.expected_end, p.note, today)?,
                        vec![],
                    ));
                };
                // P1: a mentor alongside their ECT; the caller must reach the ECT too.
                let (ect, ect_now) = load_in_reach(conn, &who, &ect_id, today)?;
                policy::may_manage_pause(&who, place(&ect_now))?;
                let others = mentoring::ever_mentored(participant)
                    .iter()
                    .filter(|id| **id != ect.id)
                    .map(|id| load(conn, id))
                    .collect::<Result<Vec<_>, _>>()?;
                let request =
                    handover::MentorPause { pause_id, start: p.start, expected_end: p.expected_end, note: p.note };
                Ok((handover::pause_alongside(participant, &ect, &others, request, today)?, vec![]))
            },
            |participant, _| pb::PauseParticipantResponse { participant: Some(participant) },
        )
        .await
    }

    pub async fn extend_pause(
        &self,
        caller: Caller,
        req: pb::ExtendPauseRequest,
    ) -> Result<pb::ExtendPauseResponse, ServiceError> {
        let (id, end) = convert::id_and_date(
            "participant_id",
            &req.participant_id,
            "expected_end_date",
            req.expected_end_date.as_ref(),
            true,
        )?;
        let end = end.ok_or_else(|| ServiceError::Internal("required date missing after validation".into()))?;
        self.act(
            Call { caller, rpc: "ExtendPause", request: &req, request_id: &req.request_id },
            id,
            policy::may_manage_pause,
            move |conn, p, today| {
                // P1: a mentor's pause stays within their ECT's.
                let Some(ect_id) = handover::open_pause_alongside(p, today) else {
                    return Ok((lifecycle::extend_pause(p, end, today)?, vec![]));
                };
                let ect = load(conn, &ect_id)?;
                let others = mentoring::ever_mentored(p)
                    .iter()
                    .filter(|id| **id != ect_id)
                    .map(|id| load(conn, id))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((handover::extend_pause_alongside(p, &ect, &others, end, today)?, vec![]))
            },
            |participant, _| pb::ExtendPauseResponse { participant: Some(participant) },
        )
        .await
    }

    pub async fn end_pause(
        &self,
        caller: Caller,
        req: pb::EndPauseRequest,
    ) -> Result<pb::EndPauseResponse, ServiceError> {
        let (id, end) =
            convert::id_and_date("participant_id", &req.participant_id, "end_date", req.end_date.as_ref(), false)?;
        self.act(
            Call { caller, rpc: "EndPause", request: &req, request_id: &req.request_id },
            id,
            policy::may_manage_pause,
            move |_, ect, today| Ok((lifecycle::end_pause(ect, end.unwrap_or(today), today)?, vec![])),
            |participant, _| pb::EndPauseResponse { participant: Some(participant) },
        )
        .await
    }

    pub async fn defer(
        &self,
        caller: Caller,
        req: pb::DeferParticipantRequest,
    ) -> Result<pb::DeferParticipantResponse, ServiceError> {
        let (id, deferral) = convert::defer(&req)?;
        self.act(
            Call { caller, rpc: "DeferParticipant", request: &req, request_id: &req.request_id },
            id,
            |c, p| policy::may_manage_lifecycle(c, p, "defer participants"),
            move |conn, ect, today| {
                let approved = store::approved_latest_return(conn, &ect.id)?;
                Ok((lifecycle::defer_within(ect, deferral, approved, convert::new_id, today)?, vec![]))
            },
            |participant, cascaded| pb::DeferParticipantResponse {
                participant: Some(participant),
                cascaded_participant_ids: cascaded,
            },
        )
        .await
    }

    pub async fn change_return_date(
        &self,
        caller: Caller,
        req: pb::ChangeReturnDateRequest,
    ) -> Result<pb::ChangeReturnDateResponse, ServiceError> {
        let (id, date) = convert::id_and_date(
            "participant_id",
            &req.participant_id,
            "expected_return_date",
            req.expected_return_date.as_ref(),
            true,
        )?;
        let date = date.ok_or_else(|| ServiceError::Internal("required date missing after validation".into()))?;
        self.act(
            Call { caller, rpc: "ChangeReturnDate", request: &req, request_id: &req.request_id },
            id,
            |c, p| policy::may_manage_lifecycle(c, p, "change return dates"),
            move |conn, p, today| {
                let approved = store::approved_latest_return(conn, &p.id)?;
                Ok((lifecycle::change_return_date_within(p, date, approved, today)?, vec![]))
            },
            |participant, cascaded| pb::ChangeReturnDateResponse {
                participant: Some(participant),
                cascaded_participant_ids: cascaded,
            },
        )
        .await
    }

    pub async fn record_return(
        &self,
        caller: Caller,
        req: pb::RecordReturnRequest,
    ) -> Result<pb::RecordReturnResponse, ServiceError> {
        let (id, date) = convert::id_and_date(
            "participant_id",
            &req.participant_id,
            "return_date",
            req.return_date.as_ref(),
            false,
        )?;
        self.act(
            Call { caller, rpc: "RecordReturn", request: &req, request_id: &req.request_id },
            id,
            |c, p| policy::may_manage_lifecycle(c, p, "record returns"),
            move |_, p, today| Ok((lifecycle::record_return(p, date.unwrap_or(today), today)?, vec![])),
            |participant, cascaded| pb::RecordReturnResponse {
                participant: Some(participant),
                cascaded_participant_ids: cascaded,
            },
        )
        .await
    }

    pub async fn withdraw(
        &self,
        caller: Caller,
        req: pb::WithdrawParticipantRequest,
    ) -> Result<pb::WithdrawParticipantResponse, ServiceError> {
        let (id, reason, date, note) = convert::withdraw(&req)?;
        let replacement_id = convert::replacement_induction_coordinator(&req).map_err(FieldViolations::from)?;
        let who = caller.clone();
        self.act(
            Call { caller, rpc: "WithdrawParticipant", request: &req, request_id: &req.request_id },
            id,
            |c, p| policy::may_manage_lifecycle(c, p, "withdraw participants"),
            move |conn, p, today| {
                let withdrawal_date = date.unwrap_or(today);
                let circle = if p.kind == ParticipantKind::Ect { mentor_of(conn, p, withdrawal_date)? } else { None };
                // W8: the replacement induction coordinator, within the caller's reach.
                let replacement = match &replacement_id {
                    Some(id) => {
                        let (replacement, _) = load_in_reach(conn, &who, id, today)?;
                        handover::check_replacement_induction_coordinator(p, &replacement, withdrawal_date, today)?;
                        Some(replacement)
                    }
                    None => None,
                };
                let now = current(p, today)?;
                let school = SchoolCircle {
                    others: store::school_members(conn, &now.school_id)?.into_iter().filter(|o| o.id != p.id).collect(),
                    school_id: now.school_id,
                    delivery_partner_id: now.delivery_partner_id,
                };
                let request = Withdrawal { reason, withdrawal_date, note };
                let mut decision = lifecycle::withdraw(p, request, circle.as_ref(), &school, today)?;
                let mut touched = circle.map(|c| vec![c.mentor]).unwrap_or_default();
                // W8, M2, M3: the covers the leaver held pass to the replacement or end.
                if p.kind != ParticipantKind::Ect {
                    let covers = handover::covers_after_withdrawal(
                        p,
                        replacement.as_ref(),
                        &school.others,
                        withdrawal_date,
                        today,
                    )?;
                    for e in &covers {
                        let known = e.participant_id == p.id || touched.iter().any(|t| t.id == e.participant_id);
                        if !known {
                            touched.push(load(conn, &e.participant_id)?);
                        }
                    }
                    decision.events.extend(covers);
                }
                Ok((decision, touched))
            },
            |participant, cascaded| pb::WithdrawParticipantResponse {
                participant: Some(participant),
                cascaded_participant_ids: cascaded,
            },
        )
        .await
    }

    pub async fn move_school(
        &self,
        caller: Caller,
        req: pb::MoveSchoolRequest,
    ) -> Result<pb::MoveSchoolResponse, ServiceError> {
        let mut v = FieldViolations::default();
        let id = v.check(convert::id("participant_id", &req.participant_id));
        let school_id = v.check(convert::id("school_id", &req.school_id));
        let moved_on = v.check(date::PROGRAMME_DATES.optional("moved_on", req.moved_on.as_ref()));
        let (id, school_id, moved_on) = v.finish(|| Some((id?, school_id?, moved_on?)))?;
        let keep_mentor = req.keep_mentor;
        let key = idempotency_key(&caller, &req.request_id)?;
        let (today, now) = (self.clock.today(), self.clock.now());
        self.mutate(key, "MoveSchool", &req, move |conn| {
            let (p, p_now) = load_in_reach(conn, &caller, &id, today)?;
            policy::may_manage_lifecycle(&caller, place(&p_now), "move participants between schools")?;
            let school = school_in_reach(conn, &caller, &school_id)?;
            policy::may_manage_lifecycle(&caller, school_place(&school), "move participants into that school")?;
            let to = Destination {
                school_id: school.id,
                delivery_partner_id: school.delivery_partner_id,
                area_covered: school.area_covered,
            };
            let moved_on = moved_on.unwrap_or(today);
            let mut decision = lifecycle::move_school(&p, &to, moved_on, today)?;
            // S1: a moved ECT's mentoring ends on the move date unless kept;
            // a mentor left with no ECT is the ECF Lead's to place (M2).
            let (ended, left) = handover::mentoring_after_move(&p, moved_on, keep_mentor, today)?;
            let mut touched = vec![p.clone()];
            for e in &ended {
                if !touched.iter().any(|t| t.id == e.participant_id) {
                    touched.push(load(conn, &e.participant_id)?);
                }
            }
            decision.events.extend(ended);
            if let Some(mentor_id) = left {
                let mentor = load(conn, &mentor_id)?;
                let circle = mentor_circle(conn, mentor)?;
                decision.notifications.extend(lifecycle::mentor_without_ect(&circle, &p.id, today));
            }
            apply(conn, &caller, &touched, decision, now, today)?;
            let (participant, _) = changed(conn, &id, vec![], today)?;
            Ok(pb::MoveSchoolResponse { participant: Some(participant) })
        })
        .await
    }

    /// Creates a pending request for a DPL (W9, C2, W6, D3). `release_start`
    /// is the date the request names: C2's release start, or D3's latest
    /// return date.
    async fn request<Req: prost::Message>(
        &self,
        call: Call<'_, Req>,
        participant_id: String,
        kind: RequestKind,
        release_start: Option<NaiveDate>,
        note: String,
        with_mentor: bool,
    ) -> Result<pb::ApprovalRequest, ServiceError> {
        let Call { caller, rpc, request: req, request_id } = call;
        let key = idempotency_key(&caller, request_id)?;
        let (today, now) = (self.clock.today(), self.clock.now());
        let wrapped = self
            .mutate(key, rpc, req, move |conn| {
                let (p, v) = load_in_reach(conn, &caller, &participant_id, today)?;
                policy::may_manage_lifecycle(&caller, place(&v), "ask for this change")?;
                match kind {
                    RequestKind::Reinstatement if v.status != TrainingStatus::Withdrawn => {
                        return Err(RuleViolation::new(
                            "NOT_WITHDRAWN",
                            "the participant is not withdrawn: nothing to reinstate",
                        )
                        .into());
                    }
                    RequestKind::ReleaseStartChange => {
                        let start =
                            release_start.ok_or_else(|| ServiceError::Internal("release start missing".into()))?;
                        lifecycle::check_release_start_request(&p, start, today)?;
                    }
                    RequestKind::LongDeferral => {
                        let latest =
                            release_start.ok_or_else(|| ServiceError::Internal("latest return date missing".into()))?;
                        lifecycle::check_long_deferral_request(&p, latest, today)?;
                    }
                    RequestKind::KeepMentor if p.kind != ParticipantKind::Mentor => {
                        return Err(RuleViolation::new(
                            "NOT_A_MENTOR",
                            format!("participant {} is {}: only a mentor can be kept (W6)", p.id, p.kind.describe()),
                        )
                        .into());
                    }
                    _ => {}
                }
                if with_mentor {
                    let mentor = mentor_of_record_now(conn, &p, today)?;
                    handover::check_reinstate_with_mentor(&p, mentor.as_ref(), today)?;
                }
                if !store::requests_for(conn, &p.id, kind.as_str(), RequestStatus::Pending.as_str())?.is_empty() {
                    return Err(RuleViolation::new(
                        "REQUEST_ALREADY_PENDING",
                        "the same request for this participant is already waiting for a DPL: see ListRequests",
                    )
                    .into());
                }
                let row = RequestRow {
                    id: convert::new_id(),
                    kind: kind.as_str().to_owned(),
                    status: RequestStatus::Pending.as_str().to_owned(),
                    participant_id: p.id.clone(),
                    delivery_partner_id: v.delivery_partner_id,
                    release_start: release_start.filter(|_| kind == RequestKind::ReleaseStartChange),
                    note,
                    requested_by: caller.sub.clone(),
                    created_at: now,
                    decided_by: None,
                    decision_note: None,
                    decided_at: None,
                    latest_return_date: release_start.filter(|_| kind == RequestKind::LongDeferral),
                    with_mentor,
                };
                store::insert_request(conn, &row)?;
                Ok(pb::RequestReinstatementResponse { request: Some(convert::approval_request(row)) })
            })
            .await?;
        wrapped.request.ok_or_else(|| ServiceError::Internal("request missing from its own answer".into()))
    }

    pub async fn request_reinstatement(
        &self,
        caller: Caller,
        req: pb::RequestReinstatementRequest,
    ) -> Result<pb::RequestReinstatementResponse, ServiceError> {
        let (id, note) = convert::id_and_note("participant_id", &req.participant_id, &req.note)?;
        let request = self
            .request(
                Call { caller, rpc: "RequestReinstatement", request: &req, request_id: &req.request_id },
                id,
                RequestKind::Reinstatement,
                None,
                note,
                req.with_mentor,
            )
            .await?;
        Ok(pb::RequestReinstatementResponse { request: Some(request) })
    }

    pub async fn request_release_start_change(
        &self,
        caller: Caller,
        req: pb::RequestReleaseStartChangeRequest,
    ) -> Result<pb::RequestReleaseStartChangeResponse, ServiceError> {
        let mut v = FieldViolations::default();
        let id = v.check(convert::id("participant_id", &req.participant_id));
        let start = v.check(date::PROGRAMME_DATES.required("release_start", req.release_start.as_ref()));
        let note = v.check(convert::note("note", &req.note));
        let (id, start, note) = v.finish(|| Some((id?, start?, note?)))?;
        let request = self
            .request(
                Call { caller, rpc: "RequestReleaseStartChange", request: &req, request_id: &req.request_id },
                id,
                RequestKind::ReleaseStartChange,
                Some(start),
                note,
                false,
            )
            .await?;
        Ok(pb::RequestReleaseStartChangeResponse { request: Some(request) })
    }

    pub async fn request_keep_mentor(
        &self,
        caller: Caller,
        req: pb::RequestKeepMentorRequest,
    ) -> Result<pb::RequestKeepMentorResponse, ServiceError> {
        let (id, note) = convert::id_and_note("mentor_id", &req.mentor_id, &req.note)?;
        let request = self
            .request(
                Call { caller, rpc: "RequestKeepMentor", request: &req, request_id: &req.request_id },
                id,
                RequestKind::KeepMentor,
                None,
                note,
                false,
            )
            .await?;
        Ok(pb::RequestKeepMentorResponse { request: Some(request) })
    }

    pub async fn request_long_deferral(
        &self,
        caller: Caller,
        req: pb::RequestLongDeferralRequest,
    ) -> Result<pb::RequestLongDeferralResponse, ServiceError> {
        let mut v = FieldViolations::default();
        let id = v.check(convert::id("participant_id", &req.participant_id));
        let latest = v.check(date::PROGRAMME_DATES.required("latest_return_date", req.latest_return_date.as_ref()));
        let note = v.check(convert::note("note", &req.note));
        let (id, latest, note) = v.finish(|| Some((id?, latest?, note?)))?;
        let request = self
            .request(
                Call { caller, rpc: "RequestLongDeferral", request: &req, request_id: &req.request_id },
                id,
                RequestKind::LongDeferral,
                Some(latest),
                note,
                false,
            )
            .await?;
        Ok(pb::RequestLongDeferralResponse { request: Some(request) })
    }

    pub async fn decide_request(
        &self,
        caller: Caller,
        req: pb::DecideRequestRequest,
    ) -> Result<pb::DecideRequestResponse, ServiceError> {
        let mut v = FieldViolations::default();
        let id = v.check(convert::id("request_id", &req.request_id));
        let note = v.check(convert::note("note", &req.note));
        let (id, note) = v.finish(|| Some((id?, note?)))?;
        let (today, now) = (self.clock.today(), self.clock.now());
        let approve = req.approve;
        policy::may_decide_somewhere(&caller)?;
        self.mutate(None, "DecideRequest", &req, move |conn| {
            let found = store::find_request(conn, &id)?;
            let request = within_reach(
                &caller,
                found,
                |r| policy::reaches_delivery_partner(&caller, &r.delivery_partner_id),
                "request",
                &id,
            )?;
            policy::may_decide(&caller, &request.delivery_partner_id)?;
            if request.status != RequestStatus::Pending.as_str() {
                return Err(RuleViolation::new(
                    "REQUEST_ALREADY_DECIDED",
                    format!("request {id} was already {}", request.status),
                )
                .into());
            }
            let p = load(conn, &request.participant_id)?;
            let status = if approve { RequestStatus::Approved } else { RequestStatus::Refused };
            store::decide_request(conn, &id, status.as_str(), &caller.sub, &note, now)?;
            if approve {
                let mut touched = vec![p.clone()];
                let decision = match RequestKind::parse(&request.kind) {
                    Some(RequestKind::Reinstatement) => {
                        // W9: the mentor withdrawn with the ECT comes back when asked;
                        // otherwise the ECF Lead hears the ECT has no mentor.
                        let mentor = mentor_of_record_now(conn, &p, today)?;
                        let mut d = lifecycle::reinstate(&p, &id, today, None)?;
                        let after =
                            handover::after_reinstatement(&p, mentor.as_ref(), request.with_mentor, &id, today)?;
                        d.events.extend(after.events);
                        d.commands.extend(after.commands);
                        d.notifications.extend(after.notifications);
                        touched.extend(mentor);
                        d
                    }
                    Some(RequestKind::ReleaseStartChange) => {
                        let start = request
                            .release_start
                            .ok_or_else(|| ServiceError::Internal(format!("request {id} has no release start")))?;
                        lifecycle::change_release_start(&p, &id, start, today)?
                    }
                    // W6: keeping a mentor the cascade already withdrew reinstates them;
                    // otherwise the approval stops a later cascade.
                    Some(RequestKind::KeepMentor) => {
                        let cascaded = p.timeline().withdrawal_on(today).is_some_and(|w| w.cascaded_from.is_some());
                        if cascaded { lifecycle::reinstate(&p, &id, today, None)? } else { Decision::default() }
                    }
                    // D3: the approval itself is the change: DeferParticipant and
                    // ChangeReturnDate read it (store::approved_latest_return).
                    Some(RequestKind::LongDeferral) => Decision::default(),
                    None => {
                        return Err(ServiceError::Internal(format!("request {id} has unknown kind {}", request.kind)));
                    }
                };
                apply(conn, &caller, &touched, decision, now, today)?;
            }
            let decided = store::find_request(conn, &id)?
                .ok_or_else(|| ServiceError::Internal(format!("request {id} vanished")))?;
            let (participant, _) = changed(conn, &p.id, vec![], today)?;
            Ok(pb::DecideRequestResponse {
                request: Some(convert::approval_request(decided)),
                participant: Some(participant),
            })
        })
        .await
    }

    pub async fn list_requests(
        &self,
        caller: Caller,
        req: pb::ListRequestsRequest,
    ) -> Result<pb::ListRequestsResponse, ServiceError> {
        let mut v = FieldViolations::default();
        let status = v.check(convert::request_status("status", req.status));
        let size = v.check(steplab_platform::paging::page_size(req.page_size));
        let after = v.check(steplab_platform::paging::decode_token(&req.page_token));
        let (status, size, after) = v.finish(|| Some((status?, size?, after?)))?;
        let scope = policy::delivery_partner_scope(&caller, None)?;
        self.db
            .read(move |conn| {
                let (rows, next) = store::list_requests(conn, &scope, status.map(RequestStatus::as_str), after, size)?;
                Ok(pb::ListRequestsResponse {
                    requests: rows.into_iter().map(convert::approval_request).collect(),
                    next_page_token: next.map(|k| steplab_platform::paging::encode_token(&k)).unwrap_or_default(),
                })
            })
            .await
    }

    pub async fn list_notifications(
        &self,
        caller: Caller,
        req: pb::ListNotificationsRequest,
    ) -> Result<pb::ListNotificationsResponse, ServiceError> {
        let mut v = FieldViolations::default();
        let dp = v.check(convert::optional_id("delivery_partner_id", &req.delivery_partner_id));
        let size = v.check(steplab_platform::paging::page_size(req.page_size));
        let after = v.check(steplab_platform::paging::decode_token(&req.page_token));
        let (dp, size, after) = v.finish(|| Some((dp?, size?, after?)))?;
        let scope = policy::delivery_partner_scope(&caller, dp.as_deref())?;
        self.db
            .read(move |conn| {
                let (rows, next) = store::list_notifications(conn, &scope, after, size)?;
                Ok(pb::ListNotificationsResponse {
                    notifications: rows.into_iter().map(convert::notification).collect(),
                    next_page_token: next.map(|k| steplab_platform::paging::encode_token(&k)).unwrap_or_default(),
                })
            })
            .await
    }

    /// D12, W10: reportable events after `cursor`, at most `limit`.
    pub async fn reportable_events(
        &self,
        caller: &Caller,
        cursor: i64,
        limit: i64,
    ) -> Result<Vec<pb::ParticipantEvent>, ServiceError> {
        policy::may_watch_events(caller)?;
        self.db
            .read(move |conn| {
                Ok(store::reportable_events_after(conn, cursor, limit)?.into_iter().map(convert::event).collect())
            })
            .await
    }

    pub async fn sync_status(
        &self,
        caller: Caller,
        req: pb::GetSyncStatusRequest,
    ) -> Result<pb::GetSyncStatusResponse, ServiceError> {
        let id = convert::optional_id("participant_id", &req.participant_id).map_err(FieldViolations::from)?;
        let parked_only = req.parked_only;
        let today = self.clock.today();
        self.db
            .read(move |conn| {
                let rows = match &id {
                    None => {
                        policy::may_operate_relay(&caller)?;
                        if parked_only { outbox::parked(conn, 100)? } else { outbox::undelivered(conn, 100)? }
                    }
                    Some(id) => {
                        let (_, view_today) = load_in_reach(conn, &caller, id, today)?;
                        policy::may_read(&caller, place(&view_today))?;
                        outbox::for_participant(conn, id)?
                    }
                };
                let (pending, parked) = match &id {
                    None => outbox::undelivered_counts(conn)?,
                    Some(_) => (
                        rows.iter().filter(|r| r.delivered_at.is_none() && r.parked_at.is_none()).count() as i64,
                        rows.iter().filter(|r| r.delivered_at.is_none() && r.parked_at.is_some()).count() as i64,
                    ),
                };
                let commands = rows
                    .into_iter()
                    .filter(|r| !parked_only || (r.parked_at.is_some() && r.delivered_at.is_none()))
                    .map(convert::outbox_command)
                    .collect();
                Ok(pb::GetSyncStatusResponse { pending, parked, commands })
            })
            .await
    }

    pub async fn retry_parked(
        &self,
        caller: Caller,
        req: pb::RetryParkedCommandsRequest,
    ) -> Result<pb::RetryParkedCommandsResponse, ServiceError> {
        policy::may_operate_relay(&caller)?;
        let mut v = FieldViolations::default();
        let participant_id = v.check(convert::optional_id("participant_id", &req.participant_id));
        let command_id = v.check(convert::optional_id("command_id", &req.command_id));
        let (participant_id, command_id) = v.finish(|| Some((participant_id?, command_id?)))?;
        let now = self.clock.now();
        let retried = self
            .db
            .write(move |conn| {
                let n = outbox::retry_parked(conn, command_id.as_deref(), participant_id.as_deref(), now)?;
                Ok::<_, ServiceError>(n as i64)
            })
            .await?;
        tracing::info!(target: "audit", actor = %caller.sub, retried, "parked commands queued again");
        self.relay.notify_one();
        Ok(pb::RetryParkedCommandsResponse { retried })
    }

    pub async fn check_consistency(
        &self,
        caller: Caller,
        req: pb::CheckConsistencyRequest,
    ) -> Result<pb::CheckConsistencyResponse, CheckError> {
        policy::may_operate_relay(&caller).map_err(ServiceError::from)?;
        let mut v = FieldViolations::default();
        let as_of = v.check(date::optional("as_of", req.as_of.as_ref()));
        let size = v.check(steplab_platform::paging::page_size(req.page_size));
        let after = v.check(steplab_platform::paging::decode_token(&req.page_token));
        let (as_of, size, after) = v.finish(|| Some((as_of?, size?, after?))).map_err(ServiceError::from)?;
        let peers =
            self.peers.clone().ok_or_else(|| ServiceError::Internal("this process has no peers configured".into()))?;
        let as_of = as_of.unwrap_or_else(|| self.clock.today());
        let (page, next) = self
            .db
            .read(move |conn| {
                let filter = ListFilter {
                    scope: policy::ListScope::Everything,
                    school_id: None,
                    delivery_partner_id: None,
                    kind: None,
                    status: None,
                    as_of,
                };
                let (records, next) = store::list_participants(conn, &filter, after, size)?;
                let mut page = Vec::new();
                for record in records {
                    let Some(view) = record.as_of(as_of) else { continue };
                    let pending =
                        outbox::for_participant(conn, &record.id)?.iter().filter(|r| r.delivered_at.is_none()).count()
                            as i64;
                    page.push((with_dfe_id(conn, convert::participant(view))?, pending));
                }
                Ok::<_, ServiceError>((page, next))
            })
            .await?;
        let day = date::to_proto(as_of);
        // A few participants at a time, whatever the page size: a page of 500
        // must not open 1,000 calls at once on the peers. The first failure
        // stops the check (no further calls are started).
        // Each check owns its participant: a stream borrowing the page is not
        // `Send` for the generated service trait.
        let participants: Vec<pb::Participant> = page.iter().map(|(participant, _)| participant.clone()).collect();
        let results: Vec<Vec<String>> = futures::stream::iter(participants)
            .map(|participant| {
                let peers = peers.clone();
                async move {
                    let id = &participant.participant_id;
                    let (release, accrual) = futures::join!(peers.release(id, day), peers.accrual(id, day));
                    Ok::<_, CheckError>(crate::drift::differences(crate::drift::Views {
                        participant: &participant,
                        release: release?.as_ref(),
                        accrual: accrual?.as_ref(),
                    }))
                }
            })
            .buffered(PARTICIPANTS_CHECKED_AT_ONCE)
            .try_collect()
            .await?;
        let mut answer = pb::CheckConsistencyResponse {
            checked: page.len() as i64,
            next_page_token: next.map(|k| steplab_platform::paging::encode_token(&k)).unwrap_or_default(),
            ..Default::default()
        };
        for ((participant, pending), differences) in page.into_iter().zip(results) {
            if differences.is_empty() {
                continue;
            }
            let drift = pb::ParticipantDrift {
                participant_id: participant.participant_id,
                differences,
                pending_commands: pending,
            };
            if pending > 0 { answer.in_flight.push(drift) } else { answer.drifted.push(drift) }
        }
        Ok(answer)
    }
}
