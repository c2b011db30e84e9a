//! The content-release use cases: each checks the caller, validates, and runs
//! the domain decision and its storage in one unit of work. Commands store
//! their acknowledgement with their effect, so a repeated command_id returns
//! it (with `duplicate` set) and changes nothing; every command that changes
//! a learner's release facts rewrites that learner's rows of the release feed
//! in the same transaction. One module per kind of use case: the
//! participant service's commands, holds, progress and attendance, the
//! reads, and the operations run at start-up.

mod batch;
mod commands;
mod holds;
mod operations;
mod preview;
mod progress;
mod reads;

use crate::domain::policy::{self, Denied};
use crate::domain::{ContentReleaseRules, Curriculum, Learner, feed};
use crate::store;
use prost::Message;
use std::sync::Arc;
use steplab_platform::db::{Database, DbConn};
use steplab_platform::error::ServiceError;
use steplab_platform::idempotency::{self, IdempotencyKey, Ran};
use steplab_platform::{Caller, Clock};
use steplab_proto::steplab::common::v1::CommandAck;

#[derive(Clone)]
pub struct ContentRelease {
    db: Database,
    clock: Clock,
    curriculum: Arc<Curriculum>,
}

/// Turns a refused permission into the error, auditing the attempt.
fn permit(caller: &Caller, rpc: &str, decision: Result<(), Denied>) -> Result<(), ServiceError> {
    decision.map_err(|denied| refuse(caller, rpc, denied))
}

fn refuse(caller: &Caller, rpc: &str, denied: Denied) -> ServiceError {
    tracing::warn!(
        target: "audit",
        rpc,
        caller = %caller.sub,
        role = caller.role().as_str(),
        reason = %denied,
        "permission denied"
    );
    denied.into()
}

/// AIP-211: the learner, when `check` lets the caller reach them. To a
/// scoped caller an unknown id and another delivery partner's learner get
/// the same PERMISSION_DENIED; only callers who reach everyone (the
/// participant service, admins) are told that a participant is not enrolled.
fn learner_in_reach(
    caller: &Caller,
    rpc: &str,
    found: Option<Learner>,
    participant_id: &str,
    today: chrono::NaiveDate,
    check: fn(&Caller, policy::Place<'_>) -> Result<(), Denied>,
) -> Result<Learner, ServiceError> {
    match found {
        Some(learner) => {
            permit(caller, rpc, check(caller, learner.place_on(today)))?;
            Ok(learner)
        }
        None if policy::sees_everything(caller) => Err(not_enrolled(participant_id)),
        None => Err(refuse(caller, rpc, policy::unreachable(caller))),
    }
}

fn not_enrolled(participant_id: &str) -> ServiceError {
    ServiceError::not_found(
        "participant",
        participant_id,
        format!("participant {participant_id} is not enrolled for content release: EnrolLearner comes first"),
    )
}

fn load(conn: &mut DbConn, participant_id: &str) -> Result<Learner, ServiceError> {
    store::load_learner(conn, participant_id)?.ok_or_else(|| not_enrolled(participant_id))
}

/// Rewrites a learner's feed rows from their current facts.
fn refresh_feed(conn: &mut DbConn, curriculum: &Curriculum, participant_id: &str) -> Result<(), ServiceError> {
    let learner = load(conn, participant_id)?;
    store::replace_releases(conn, participant_id, &feed::releases(curriculum, &learner))
}

/// Rewrites the feed rows a change moved, from the learner before and after
/// it, without reading the learner or the stored feed again: the stored
/// feed is the learner's before the change, as every change rewrites it in
/// its own transaction, and start-up rewrites every learner's when the
/// curriculum or the release rules changed (`reconcile_curriculum`). Should
/// the rows not be there to move, the feed is rewritten from what is stored.
fn refresh_feed_between(
    conn: &mut DbConn,
    curriculum: &Curriculum,
    participant_id: &str,
    before: &Learner,
    after: &Learner,
) -> Result<(), ServiceError> {
    let wanted = feed::releases(curriculum, after);
    if !store::move_releases_from(conn, participant_id, &feed::releases(curriculum, before), &wanted)? {
        tracing::warn!(participant_id, "the stored release feed was not the learner's; rewriting it whole");
        store::replace_releases(conn, participant_id, &wanted)?;
    }
    Ok(())
}

/// A command as received: what identifies it and whom it concerns.
struct Received {
    rpc: &'static str,
    key: IdempotencyKey,
    command_id: String,
    /// The encoded request, stored with the key to tell a repeat from a reuse.
    request: Vec<u8>,
    participant_id: String,
    /// The learner must be enrolled (every command but EnrolLearner).
    lock: bool,
}

impl Received {
    fn new<M: Message>(
        rpc: &'static str,
        key: IdempotencyKey,
        command_id: &str,
        request: &M,
        participant_id: &str,
    ) -> Self {
        Received {
            rpc,
            key,
            command_id: command_id.to_owned(),
            request: request.encode_to_vec(),
            participant_id: participant_id.to_owned(),
            lock: true,
        }
    }
}

/// What a command did to the learner's release facts.
enum Effect {
    /// Facts changed: the learner's feed rows are recomputed.
    Changed,
    /// Facts changed, and the command knows the learner before and after
    /// (a hold placed or lifted): only the feed rows that moved are
    /// rewritten, with nothing read again (issue 18: two statements fewer
    /// per hold).
    Known { before: Box<Learner>, after: Box<Learner> },
    /// Nothing to change (an identical enrolment, a hold already ending by
    /// then, access already revoked, a school move): acknowledged as is.
    Unchanged,
}

impl Effect {
    fn changed_if(changed: bool) -> Self {
        if changed { Effect::Changed } else { Effect::Unchanged }
    }

    /// The learner loaded before the change, and `change` made to them as
    /// the command stored it.
    fn known(before: Learner, change: impl FnOnce(Learner) -> Learner) -> Self {
        let after = change(before.clone());
        Effect::Known { before: Box::new(before), after: Box::new(after) }
    }
}

/// How a command changes a learner's facts, run inside the caller's
/// transaction: the real command's and its preview's one code path.
type Apply = Box<dyn FnOnce(&mut DbConn, &Curriculum) -> Result<Effect, ServiceError> + Send>;

/// A validated command, ready to run: what it is and what it does.
struct Prepared {
    received: Received,
    apply: Apply,
}

impl Prepared {
    fn new(
        received: Received,
        apply: impl FnOnce(&mut DbConn, &Curriculum) -> Result<Effect, ServiceError> + Send + 'static,
    ) -> Self {
        Prepared { received, apply: Box::new(apply) }
    }
}

/// Runs one command in the caller's transaction: takes the learner's lock
/// (`lock`: the command needs an enrolled learner), answers a repeated
/// command_id from its stored acknowledgement, applies the command,
/// refreshes the feed and stores the acknowledgement.
fn run_command(
    conn: &mut DbConn,
    curriculum: &Curriculum,
    now: chrono::NaiveDateTime,
    command: Prepared,
) -> Result<CommandAck, ServiceError> {
    let Prepared { received: Received { rpc, key, command_id, request, participant_id, lock }, apply } = command;
    if lock && !store::lock_learner(conn, &participant_id, now)? {
        return Err(not_enrolled(&participant_id));
    }
    let ran = idempotency::once::<ContentReleaseRules, _>(conn, Some(&key), rpc, &request, now, |conn| {
        match apply(conn, curriculum)? {
            Effect::Changed => refresh_feed(conn, curriculum, &participant_id)?,
            Effect::Known { before, after } => {
                refresh_feed_between(conn, curriculum, &participant_id, &before, &after)?
            }
            Effect::Unchanged => {}
        }
        Ok(CommandAck { idempotency_key: command_id, duplicate: false })
    })?;
    Ok(match ran {
        Ran::Applied(ack) => ack,
        Ran::Replayed(ack) => CommandAck { duplicate: true, ..ack },
    })
}

impl ContentRelease {
    pub fn new(db: Database, clock: Clock, curriculum: Arc<Curriculum>) -> Self {
        Self { db, clock, curriculum }
    }

    /// The service's database, where the platform keeps its audit log.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Runs one service-to-service command in one write transaction (see
    /// [`run_command`]).
    async fn command(&self, command: Prepared) -> Result<CommandAck, ServiceError> {
        let now = self.clock.now();
        let curriculum = Arc::clone(&self.curriculum);
        self.db.write(move |conn| run_command(conn, &curriculum, now, command)).await
    }

    /// Runs a public mutation in one write transaction, honouring an optional
    /// `request_id` (a repeat returns the stored answer).
    async fn mutate<Resp>(
        &self,
        rpc: &'static str,
        key: Option<IdempotencyKey>,
        request: Vec<u8>,
        f: impl FnOnce(&mut DbConn, &Curriculum) -> Result<Resp, ServiceError> + Send + 'static,
    ) -> Result<Resp, ServiceError>
    where
        Resp: Message + Default + Send + 'static,
    {
        let now = self.clock.now();
        let curriculum = Arc::clone(&self.curriculum);
        self.db
            .write(move |conn| {
                idempotency::once::<ContentReleaseRules, _>(conn, key.as_ref(), rpc, &request, now, |conn| {
                    f(conn, &curriculum)
                })
                .map(Ran::into_inner)
            })
            .await
    }
}
