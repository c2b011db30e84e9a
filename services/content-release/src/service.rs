//! The content-release use cases: each checks the caller, validates, and runs
//! the domain decision and its storage in one unit of work. Commands store
//! their acknowledgement with their effect, so a repeated command_id returns
//! it (with `duplicate` set) and changes nothing; every command that changes
//! a learner's release facts rewrites that learner's rows of the release feed
//! in the same transaction.

use crate::convert;
use crate::domain::policy::{self, Denied};
use crate::domain::progress::{self, AttendanceDecision};
use crate::domain::release;
use crate::domain::state::{self, Known};
use crate::domain::{ContentReleaseRules, Curriculum, RuleViolation};
use crate::store::{self, Learner, ReleaseRow};
use prost::Message;
use std::sync::Arc;
use steplab_platform::db::{Database, DbConn};
use steplab_platform::error::ServiceError;
use steplab_platform::idempotency::{self, IdempotencyKey, Ran};
use steplab_platform::{Caller, Clock};
use steplab_proto::steplab::common::v1::CommandAck;
use steplab_proto::steplab::content::v1 as pb;

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
    ServiceError::NotFound(format!(
        "participant {participant_id} is not enrolled for content release: EnrolLearner comes first"
    ))
}

fn load(conn: &mut DbConn, participant_id: &str) -> Result<Learner, ServiceError> {
    store::load_learner(conn, participant_id)?.ok_or_else(|| not_enrolled(participant_id))
}

/// The feed rows of a learner's schedule as known now (R2, R4).
fn feed_rows(curriculum: &Curriculum, learner: &Learner) -> Vec<ReleaseRow> {
    release::schedule(curriculum.programme(learner.programme), learner.facts())
        .modules()
        .iter()
        .filter_map(|m| {
            Some(ReleaseRow {
                participant_id: learner.participant_id.clone(),
                module_id: m.module.module_id.clone(),
                release_date: m.release_date?,
                is_optional: m.optional,
            })
        })
        .collect()
}

/// Rewrites a learner's feed rows from their current facts.
fn refresh_feed(conn: &mut DbConn, curriculum: &Curriculum, participant_id: &str) -> Result<(), ServiceError> {
    let learner = load(conn, participant_id)?;
    store::replace_releases(conn, participant_id, &feed_rows(curriculum, &learner))
}

/// A command as received: what identifies it and whom it concerns.
struct Envelope {
    rpc: &'static str,
    key: IdempotencyKey,
    command_id: String,
    /// The encoded request, stored with the key to tell a repeat from a reuse.
    request: Vec<u8>,
    participant_id: String,
    /// The learner must be enrolled (every command but EnrolLearner).
    lock: bool,
}

impl Envelope {
    fn new<M: Message>(
        rpc: &'static str,
        key: IdempotencyKey,
        command_id: &str,
        request: &M,
        participant_id: &str,
    ) -> Self {
        Envelope {
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
    /// Nothing to change (an identical enrolment, a hold already ending by
    /// then, access already revoked, a school move): acknowledged as is.
    Unchanged,
}

impl ContentRelease {
    pub fn new(db: Database, clock: Clock, curriculum: Arc<Curriculum>) -> Self {
        Self { db, clock, curriculum }
    }

    /// The service's database, where the platform keeps its audit log.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Runs one service-to-service command in one write transaction: takes
    /// the learner's lock (`lock`: the command needs an enrolled learner),
    /// answers a repeated command_id from its stored acknowledgement, applies
    /// `apply`, refreshes the feed and stores the acknowledgement.
    async fn command(
        &self,
        envelope: Envelope,
        apply: impl FnOnce(&mut DbConn, &Curriculum) -> Result<Effect, ServiceError> + Send + 'static,
    ) -> Result<CommandAck, ServiceError> {
        let now = self.clock.now();
        let curriculum = Arc::clone(&self.curriculum);
        let Envelope { rpc, key, command_id, request, participant_id, lock } = envelope;
        self.db
            .write(move |conn| {
                if lock && !store::lock_learner(conn, &participant_id, now)? {
                    return Err(not_enrolled(&participant_id));
                }
                let ran = idempotency::once::<ContentReleaseRules, _>(conn, Some(&key), rpc, &request, now, |conn| {
                    match apply(conn, &curriculum)? {
                        Effect::Changed => refresh_feed(conn, &curriculum, &participant_id)?,
                        Effect::Unchanged => {}
                    }
                    Ok(CommandAck { command_id, duplicate: false })
                })?;
                Ok(match ran {
                    Ran::Applied(ack) => ack,
                    Ran::Replayed(ack) => CommandAck { duplicate: true, ..ack },
                })
            })
            .await
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

    pub async fn enrol_learner(
        &self,
        caller: Caller,
        req: pb::EnrolLearnerRequest,
    ) -> Result<CommandAck, ServiceError> {
        permit(&caller, "EnrolLearner", policy::may_send_commands(&caller))?;
        let cmd = convert::enrol(&req)?;
        let now = self.clock.now();
        let learner = cmd.learner;
        let participant_id = learner.participant_id.clone();
        let mut envelope = Envelope::new("EnrolLearner", cmd.key, &req.command_id, &req, &participant_id);
        envelope.lock = false;
        self.command(envelope, move |conn, _| match store::load_learner(conn, &learner.participant_id)? {
            Some(existing)
                if existing.programme == learner.programme && existing.release_start == learner.release_start =>
            {
                Ok(Effect::Unchanged)
            }
            Some(existing) => Err(ServiceError::AlreadyExists(format!(
                "participant {} is already enrolled on {} from {}: use SetReleaseStart to move the start",
                existing.participant_id,
                existing.programme.describe(),
                existing.release_start
            ))),
            None => {
                store::insert_learner(conn, &learner, now)?;
                Ok(Effect::Changed)
            }
        })
        .await
    }

    pub async fn place_hold(&self, caller: Caller, req: pb::PlaceHoldRequest) -> Result<CommandAck, ServiceError> {
        permit(&caller, "PlaceHold", policy::may_send_commands(&caller))?;
        let cmd = convert::place_hold(&req)?;
        let now = self.clock.now();
        let (participant_id, hold) = (cmd.participant_id.clone(), cmd.hold);
        let envelope = Envelope::new("PlaceHold", cmd.key, &req.command_id, &req, &participant_id);
        self.command(envelope, move |conn, _| {
            let learner = load(conn, &participant_id)?;
            match learner.holds.iter().find(|h| h.hold_id == hold.hold_id) {
                Some(existing) if existing.kind != hold.kind => Err(RuleViolation::new(
                    "HOLD_KIND_MISMATCH",
                    format!(
                        "hold {} is a {} and cannot become a {}: place a new hold with its own hold_id",
                        hold.hold_id,
                        existing.kind.as_str(),
                        hold.kind.as_str()
                    ),
                )
                .into()),
                // The same hold_id again: a changed end (P4, D6) or dates (D9).
                Some(_) => {
                    store::update_hold_dates(conn, &participant_id, &hold, now)?;
                    Ok(Effect::Changed)
                }
                None => {
                    store::insert_hold(conn, &participant_id, &hold, now)?;
                    Ok(Effect::Changed)
                }
            }
        })
        .await
    }

    pub async fn lift_hold(&self, caller: Caller, req: pb::LiftHoldRequest) -> Result<CommandAck, ServiceError> {
        permit(&caller, "LiftHold", policy::may_send_commands(&caller))?;
        let cmd = convert::lift_hold(&req)?;
        let now = self.clock.now();
        let (participant_id, hold_id, on) = (cmd.participant_id.clone(), cmd.hold_id, cmd.on);
        let envelope = Envelope::new("LiftHold", cmd.key, &req.command_id, &req, &participant_id);
        self.command(envelope, move |conn, _| {
            let learner = load(conn, &participant_id)?;
            let mut hold = learner.holds.into_iter().find(|h| h.hold_id == hold_id).ok_or_else(|| {
                ServiceError::NotFound(format!(
                    "participant {participant_id} has no hold {hold_id}: lift a hold_id given to PlaceHold"
                ))
            })?;
            let until = hold.until_after_lift(on);
            if until == hold.until {
                return Ok(Effect::Unchanged);
            }
            hold.until = until;
            store::update_hold_dates(conn, &participant_id, &hold, now)?;
            Ok(Effect::Changed)
        })
        .await
    }

    pub async fn revoke_access(
        &self,
        caller: Caller,
        req: pb::RevokeAccessRequest,
    ) -> Result<CommandAck, ServiceError> {
        permit(&caller, "RevokeAccess", policy::may_send_commands(&caller))?;
        let cmd = convert::revoke_access(&req)?;
        let now = self.clock.now();
        let (participant_id, from) = (cmd.participant_id.clone(), cmd.effective_date);
        let envelope = Envelope::new("RevokeAccess", cmd.key, &req.command_id, &req, &participant_id);
        self.command(envelope, move |conn, _| {
            if store::open_revocation(conn, &participant_id)?.is_some() {
                return Ok(Effect::Unchanged);
            }
            store::insert_revocation(conn, &participant_id, from, now)?;
            Ok(Effect::Changed)
        })
        .await
    }

    pub async fn restore_access(
        &self,
        caller: Caller,
        req: pb::RestoreAccessRequest,
    ) -> Result<CommandAck, ServiceError> {
        permit(&caller, "RestoreAccess", policy::may_send_commands(&caller))?;
        let cmd = convert::restore_access(&req)?;
        let (participant_id, on) = (cmd.participant_id.clone(), cmd.effective_date);
        let envelope = Envelope::new("RestoreAccess", cmd.key, &req.command_id, &req, &participant_id);
        self.command(envelope, move |conn, _| {
            let Some((revocation, revoked_from)) = store::open_revocation(conn, &participant_id)? else {
                return Ok(Effect::Unchanged);
            };
            if on < revoked_from {
                return Err(RuleViolation::new(
                    "RESTORE_BEFORE_REVOCATION",
                    format!("access was revoked from {revoked_from}, so it cannot come back on {on}: restore on or after the revocation date"),
                )
                .into());
            }
            store::restore(conn, revocation, on)?;
            Ok(Effect::Changed)
        })
        .await
    }

    pub async fn set_release_start(
        &self,
        caller: Caller,
        req: pb::SetReleaseStartRequest,
    ) -> Result<CommandAck, ServiceError> {
        permit(&caller, "SetReleaseStart", policy::may_send_commands(&caller))?;
        let cmd = convert::set_release_start(&req)?;
        let today = self.clock.today();
        let (participant_id, start) = (cmd.participant_id.clone(), cmd.release_start);
        let envelope = Envelope::new("SetReleaseStart", cmd.key, &req.command_id, &req, &participant_id);
        self.command(envelope, move |conn, curriculum| {
            let learner = load(conn, &participant_id)?;
            if start == learner.release_start {
                return Ok(Effect::Unchanged);
            }
            let schedule = release::schedule(curriculum.programme(learner.programme), learner.facts());
            if start > learner.release_start && schedule.released_by(today).next().is_some() {
                return Err(RuleViolation::new(
                    "RELEASE_ALREADY_STARTED",
                    format!(
                        "modules have been released to participant {participant_id} since {}: a later start ({start}) would take them away; use a deferral to hold release instead",
                        learner.release_start
                    ),
                )
                .into());
            }
            store::set_release_start(conn, &participant_id, start)?;
            Ok(Effect::Changed)
        })
        .await
    }

    pub async fn set_participant_scope(
        &self,
        caller: Caller,
        req: pb::SetParticipantScopeRequest,
    ) -> Result<CommandAck, ServiceError> {
        permit(&caller, "SetParticipantScope", policy::may_send_commands(&caller))?;
        let cmd = convert::set_participant_scope(&req)?;
        let now = self.clock.now();
        let participant_id = cmd.participant_id.clone();
        let envelope = Envelope::new("SetParticipantScope", cmd.key.clone(), &req.command_id, &req, &participant_id);
        self.command(envelope, move |conn, _| {
            store::insert_scope_change(
                conn,
                &cmd.participant_id,
                &cmd.school_id,
                &cmd.delivery_partner_id,
                cmd.from,
                now,
            )?;
            // Scope decides who reads, not what is released (S1).
            Ok(Effect::Unchanged)
        })
        .await
    }

    pub async fn get_release_state(
        &self,
        caller: Caller,
        req: pb::GetReleaseStateRequest,
    ) -> Result<pb::GetReleaseStateResponse, ServiceError> {
        let query = convert::get_release_state(&req)?;
        let today = self.clock.today();
        let as_of = query.as_of.unwrap_or(today);
        let curriculum = Arc::clone(&self.curriculum);
        self.db
            .read(move |conn| {
                let found = store::load_learner(conn, &query.participant_id)?;
                let learner = learner_in_reach(
                    &caller,
                    "GetReleaseState",
                    found,
                    &query.participant_id,
                    today,
                    policy::may_read,
                )?;
                let accesses = store::module_accesses(conn, &learner.participant_id)?;
                let attendances = store::attendances(conn, &learner.participant_id)?;
                let programme = curriculum.programme(learner.programme);
                let schedule = release::schedule(programme, learner.facts());
                let known = Known {
                    curriculum: programme,
                    schedule: &schedule,
                    holds: &learner.holds,
                    revocations: &learner.revocations,
                    accesses: &accesses,
                    attendances: &attendances,
                };
                let state = state::release_state(&known, as_of);
                Ok(convert::release_state(
                    learner.participant_id.clone(),
                    learner.programme,
                    learner.release_start,
                    &state,
                ))
            })
            .await
    }

    pub async fn record_module_access(
        &self,
        caller: Caller,
        req: pb::RecordModuleAccessRequest,
    ) -> Result<pb::RecordModuleAccessResponse, ServiceError> {
        permit(&caller, "RecordModuleAccess", policy::may_record_module_access(&caller))?;
        let cmd = convert::record_module_access(&req, &caller.sub)?;
        let (today, now) = (self.clock.today(), self.clock.now());
        self.mutate("RecordModuleAccess", cmd.key.clone(), req.encode_to_vec(), move |conn, curriculum| {
            if !store::lock_learner(conn, &cmd.participant_id, now)? {
                return Err(not_enrolled(&cmd.participant_id));
            }
            let learner = load(conn, &cmd.participant_id)?;
            let programme = curriculum.programme(learner.programme);
            let schedule = release::schedule(programme, learner.facts());
            let module = progress::check_module_access(
                programme,
                &schedule,
                &learner.revocations,
                &cmd.module_id,
                cmd.accessed_on,
                today,
            )?;
            store::insert_module_access(conn, &cmd.participant_id, &module.module_id, cmd.accessed_on, now)?;
            let accesses = store::module_accesses(conn, &cmd.participant_id)?;
            Ok(pb::RecordModuleAccessResponse {
                last_accessed_module_id: progress::last_accessed(&accesses, today)
                    .map(|a| a.module_id.clone())
                    .unwrap_or_default(),
                resume_module: progress::resume_module(programme, &schedule, &accesses, today).map(convert::module_ref),
            })
        })
        .await
    }

    pub async fn record_attendance(
        &self,
        caller: Caller,
        req: pb::RecordAttendanceRequest,
    ) -> Result<pb::RecordAttendanceResponse, ServiceError> {
        permit(&caller, "RecordAttendance", policy::may_record_attendance_somewhere(&caller))?;
        let cmd = convert::record_attendance(&req, &caller.sub)?;
        let (today, now) = (self.clock.today(), self.clock.now());
        self.mutate("RecordAttendance", cmd.key.clone(), req.encode_to_vec(), move |conn, curriculum| {
            let found = if store::lock_learner(conn, &cmd.participant_id, now)? {
                Some(load(conn, &cmd.participant_id)?)
            } else {
                None
            };
            let learner = learner_in_reach(
                &caller,
                "RecordAttendance",
                found,
                &cmd.participant_id,
                today,
                policy::may_record_attendance,
            )?;
            let attended = store::attendances(conn, &cmd.participant_id)?;
            let decision = progress::check_attendance(
                curriculum.programme(learner.programme),
                &attended,
                &learner.revocations,
                &cmd.event_id,
                cmd.attended_on,
                today,
            )?;
            let attendance = match decision {
                AttendanceDecision::AlreadyRecorded(first) => first,
                AttendanceDecision::Record(new) => {
                    store::insert_attendance(conn, &cmd.participant_id, &new, now)?;
                    new
                }
            };
            Ok(pb::RecordAttendanceResponse { attendance: Some(convert::attendance(&attendance)) })
        })
        .await
    }

    pub async fn list_releases(
        &self,
        caller: Caller,
        req: pb::ListReleasesRequest,
    ) -> Result<pb::ListReleasesResponse, ServiceError> {
        permit(&caller, "ListReleases", policy::may_list_releases(&caller))?;
        let query = convert::list_releases(&req)?;
        self.db
            .read(move |conn| {
                // One row more than asked says whether another page follows.
                let mut rows =
                    store::list_releases(conn, query.from, query.to, query.after.as_ref(), query.page_size + 1)?;
                let more = rows.len() as i64 > query.page_size;
                rows.truncate(usize::try_from(query.page_size).unwrap_or(usize::MAX));
                let next_page_token = match rows.last() {
                    Some(last) if more => convert::feed_token(query.from, query.to, last),
                    _ => String::new(),
                };
                Ok(pb::ListReleasesResponse {
                    releases: rows.into_iter().map(convert::release).collect(),
                    next_page_token,
                })
            })
            .await
    }

    pub fn get_curriculum(&self, req: pb::GetCurriculumRequest) -> Result<pb::GetCurriculumResponse, ServiceError> {
        let programme =
            convert::programme("programme", req.programme).map_err(|v| ServiceError::InvalidArgument(v.into()))?;
        Ok(convert::curriculum(self.curriculum.programme(programme)))
    }

    /// Recomputes the stored release feed of every learner when the loaded
    /// curriculum differs from the one the feed was computed with (a
    /// deployment changed its file), or the release rules changed (a new
    /// release of this service, e.g. the term-aligned restart of D5). Runs at start-up, before serving; a
    /// crash part-way leaves the old marker, so the next start redoes it.
    /// Returns how many learners were recomputed.
    pub async fn reconcile_curriculum(&self) -> Result<u64, ServiceError> {
        const BATCH: i64 = 500;
        let basis = release::feed_basis(self.curriculum.canonical());
        let stored = self.db.read(store::stored_curriculum).await?;
        if stored.as_deref() == Some(basis.as_str()) {
            return Ok(0);
        }
        let mut after: Option<String> = None;
        let mut count = 0u64;
        loop {
            let curriculum = Arc::clone(&self.curriculum);
            let from = after.clone();
            let batch = self
                .db
                .write(move |conn| {
                    let ids = store::learner_ids_after(conn, from.as_deref(), BATCH)?;
                    for id in &ids {
                        refresh_feed(conn, &curriculum, id)?;
                    }
                    Ok::<_, ServiceError>(ids)
                })
                .await?;
            count += batch.len() as u64;
            match batch.last() {
                Some(last) if batch.len() as i64 == BATCH => after = Some(last.clone()),
                _ => break,
            }
        }
        let now = self.clock.now();
        self.db.write(move |conn| store::save_curriculum(conn, &basis, now)).await?;
        if count > 0 {
            tracing::info!(learners = count, "curriculum changed: release feed recomputed");
        }
        Ok(count)
    }
}
