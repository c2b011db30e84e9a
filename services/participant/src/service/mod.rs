//! The participant service's use cases, one file per use case: each reads its
//! command, checks permission, and runs the domain decision and its storage
//! in one unit of work. Public mutating calls with a `request_id` store their
//! answer in the same transaction, so a repeat returns it and changes
//! nothing. This module holds what they share: the registry, the unit of
//! work, and what a caller's scope reaches.

mod apply;
mod deferral;
mod effects;
mod mentoring;
mod operations;
mod pause;
mod registry;
mod requests;
mod shown;
mod withdrawal;

use crate::domain::events::Actor;
use crate::domain::lifecycle::{Decision, MentorCircle};
use crate::domain::mentoring as mentor_rules;
use crate::domain::policy::{self, Place};
use crate::domain::records::School;
use crate::domain::requests::{RequestKind, RequestStatus};
use crate::domain::view::ParticipantRecord;
use crate::domain::{ParticipantRules, ParticipantView};
use crate::store;
use apply::apply;
use chrono::NaiveDate;
use effects::Effected;
use shown::changed;
use std::sync::Arc;
use steplab_platform::Caller;
use steplab_platform::Clock;
use steplab_platform::db::{Database, DbConn};
use steplab_platform::error::ServiceError;
use steplab_platform::idempotency::{self, IdempotencyKey, Ran};
use steplab_platform::ids::ParticipantId;
use steplab_platform::observability;
use steplab_platform::outbox::Admission;
use steplab_proto::steplab::participant::v1 as pb;
use tokio::sync::Notify;

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
    /// Backpressure: refuses changes while the relay is too far behind.
    admission: Admission,
}

/// Who calls which RPC with what, for the shared paths of the use cases.
struct Call<'a, Req> {
    caller: Caller,
    rpc: &'static str,
    request: &'a Req,
    /// The caller's optional idempotency key.
    request_id: &'a str,
    /// AIP-163: answer what the call would do, changing nothing.
    validate_only: bool,
}

fn actor(caller: &Caller) -> Actor {
    Actor { sub: caller.sub.clone(), role: caller.role().as_str().to_owned() }
}

fn place(view: &ParticipantView) -> Place<'_> {
    Place { school_id: &view.school_id, delivery_partner_id: &view.delivery_partner_id }
}

fn school_place(school: &School) -> Place<'_> {
    Place { school_id: &school.id, delivery_partner_id: &school.delivery_partner_id }
}

fn idempotency_key(caller: &Caller, request_id: &str) -> Result<Option<IdempotencyKey>, ServiceError> {
    IdempotencyKey::parse("idempotency_key", &caller.sub, request_id)
        .map_err(|v| ServiceError::InvalidArgument(v.into()))
}

fn load(conn: &mut DbConn, id: &str) -> Result<ParticipantRecord, ServiceError> {
    // The first participant a call loads is the one its log line names.
    observability::note_participant(id);
    store::load_participant(conn, id)?
        .ok_or_else(|| ServiceError::not_found("participant", id, format!("participant {id} does not exist")))
}

/// The participants named by `ids`, each read in this unit of work.
fn load_all<'a>(
    conn: &mut DbConn,
    ids: impl IntoIterator<Item = &'a String>,
) -> Result<Vec<ParticipantRecord>, ServiceError> {
    ids.into_iter().map(|id| load(conn, id)).collect()
}

/// The participant now: today, or their registration date while that is
/// still ahead (never the case for a registration, kept total for safety).
fn current(record: &ParticipantRecord, today: NaiveDate) -> Result<ParticipantView, ServiceError> {
    record
        .as_of(today.max(record.registered_on))
        .ok_or_else(|| ServiceError::Internal(format!("participant {} has no current view", record.id)))
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
        None if policy::sees_everything(caller) => {
            Err(ServiceError::not_found(&what.replace(' ', "_"), id, format!("{what} {id} does not exist")))
        }
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
    load_in_reach_with_dfe_id(conn, caller, id, today).map(|(record, view, _)| (record, view))
}

/// [`load_in_reach`] with the participant's DfE id (X1), read in the same statement.
fn load_in_reach_with_dfe_id(
    conn: &mut DbConn,
    caller: &Caller,
    id: &str,
    today: NaiveDate,
) -> Result<(ParticipantRecord, ParticipantView, Option<String>), ServiceError> {
    observability::note_participant(id);
    let found = match store::load_participant_with_dfe_id(conn, id)? {
        Some((record, dfe_id)) => {
            let view = current(&record, today)?;
            Some((record, view, dfe_id))
        }
        None => None,
    };
    within_reach(caller, found, |(_, view, _)| policy::reaches(caller, place(view)), "participant", id)
}

/// A school the caller's scope covers.
fn school_in_reach(conn: &mut DbConn, caller: &Caller, id: &str) -> Result<School, ServiceError> {
    let found = store::find_school(conn, id)?;
    within_reach(caller, found, |school| policy::reaches(caller, school_place(school)), "school", id)
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

/// A mentor, the ECTs they were ever assigned, and whether a DPL approved keeping them.
fn mentor_circle(conn: &mut DbConn, mentor: ParticipantRecord) -> Result<MentorCircle, ServiceError> {
    let other_ects = load_all(conn, mentor_rules::ever_mentored(&mentor).iter())?;
    let keep_approved = store::has_request(conn, &mentor.id, RequestKind::KeepMentor, RequestStatus::Approved)?;
    Ok(MentorCircle { mentor, other_ects, keep_approved })
}

impl Registry {
    pub fn new(db: Database, clock: Clock, relay: Arc<Notify>, feed: Arc<Notify>) -> Self {
        Self { db, clock, relay, feed, peers: None, admission: Admission::always() }
    }

    /// Refuses changes while the relay reporting into `admission`'s
    /// pressure is further behind than its bound (issue 18).
    pub fn with_admission(mut self, admission: Admission) -> Self {
        self.admission = admission;
        self
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

    /// Runs a mutation in one write transaction, honouring `request_id`,
    /// and answers with the ChangeEffects of what it wrote (its journal). With
    /// `validate_only` the same closure runs in a transaction that is always
    /// rolled back (AIP-163): the same refusals, the same answer, nothing
    /// kept (no idempotency record, no delivery, no audit entry); content
    /// release and payments are asked for their outlook.
    ///
    /// Every participant change comes through here, so this is where
    /// backpressure refuses one while the relay is too far behind, before
    /// any database work. A dry run is never refused: it sends nothing.
    /// RetryParkedCommands does not come through here: it exists to drain
    /// the backlog, so it is never refused for it.
    async fn mutate<Req, Resp>(
        &self,
        key: Option<IdempotencyKey>,
        validate_only: bool,
        rpc: &'static str,
        request: &Req,
        f: impl FnOnce(&mut DbConn) -> Result<Resp, ServiceError> + Send + 'static,
    ) -> Result<Resp, ServiceError>
    where
        Req: prost::Message,
        Resp: prost::Message + Effected + Default + Send + 'static,
    {
        if !validate_only {
            self.admission.admit(rpc)?;
        }
        let described = move |conn: &mut DbConn| {
            let (answer, mut journal) = store::journal::kept(|| f(conn));
            let mut answer = answer?;
            // The change's commands reach the outbox in one statement.
            store::journal::flush(conn, &mut journal)?;
            *answer.effects_mut() = Some(effects::described(&journal, validate_only));
            Ok(answer)
        };
        if validate_only {
            let mut answer = self.db.dry_run(described).await?;
            if let Some(effects) = answer.effects_mut() {
                self.add_outlooks(effects).await;
            }
            return Ok(answer);
        }
        let request_bytes = request.encode_to_vec();
        let now = self.clock.now();
        // Admitted again at this call's turn to write: on SQLite changes
        // queue for the one writer, and a burst admitted while the relay
        // looked current was accepted seconds later, after it had fallen
        // behind (offered 1,000/s: 180 accepted per second while refusing,
        // lag p99 2.7 s).
        let admission = self.admission.clone();
        let answer = self
            .db
            .write_admitted(
                move || admission.admit(rpc),
                move |conn| {
                    idempotency::once::<ParticipantRules, _>(conn, key.as_ref(), rpc, &request_bytes, now, described)
                        .map(Ran::into_inner)
                },
            )
            .await;
        if answer.is_ok() {
            // Committed: the relay and the feed have work.
            self.relay.notify_one();
            self.feed.notify_waiters();
        }
        answer
    }

    /// Loads the participant, checks the caller may act on it, decides, and
    /// stores the decision: the shape of every lifecycle RPC.
    async fn act<Req, Resp>(
        &self,
        call: Call<'_, Req>,
        participant_id: ParticipantId,
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
        Resp: prost::Message + Effected + Default + Send + 'static,
    {
        let Call { caller, rpc, request, request_id, validate_only } = call;
        let key = idempotency_key(&caller, request_id)?;
        let (today, now) = (self.clock.today(), self.clock.now());
        self.mutate(key, validate_only, rpc, request, move |conn| {
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
}
