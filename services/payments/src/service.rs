//! The payments service's use cases: each checks permission, validates,
//! and runs the domain decision, its storage and the recomputed window
//! outcomes in one unit of work. Commands (and RecordEngagement's
//! `request_id`) store their first answer in the same transaction, so a
//! repeat returns it with `duplicate` set and changes nothing.

use crate::convert;
use crate::domain::accrual::{self, Facts, Plan};
use crate::domain::commands::{self, Change};
use crate::domain::declarations::{self, Declarant, Earned, Step};
use crate::domain::policy::{self, Denied, Place};
use crate::domain::schedule::{Schedule, ScheduleBook, Variant};
use crate::domain::{PayeeKind, PaymentsRules, RuleViolation};
use crate::store::{self, DeclarationRow, NewEngagement, OutcomeRow, PayeeRow};
use chrono::{NaiveDate, NaiveDateTime};
use prost::Message;
use std::sync::Arc;
use std::time::Instant;
use steplab_platform::db::{Database, DbConn};
use steplab_platform::error::ServiceError;
use steplab_platform::idempotency::{self, IdempotencyKey, Ran};
use steplab_platform::observability;
use steplab_platform::outbox::{self, NewCommand};
use steplab_platform::{Caller, Clock, FieldViolation, FieldViolations};
use steplab_proto::steplab::common::v1::CommandAck;
use steplab_proto::steplab::dfe::v1 as dfe;
use steplab_proto::steplab::payments::v1 as pb;
use tokio::sync::Notify;

/// A command's answer: it carries the command's acknowledgement.
pub trait Acked: prost::Message + Default + Send + 'static {
    fn acked(ack: CommandAck) -> Self;
    fn ack_mut(&mut self) -> &mut Option<CommandAck>;
}

macro_rules! acked {
    ($($response:ty),* $(,)?) => {$(
        impl Acked for $response {
            fn acked(ack: CommandAck) -> Self {
                Self { ack: Some(ack) }
            }
            fn ack_mut(&mut self) -> &mut Option<CommandAck> {
                &mut self.ack
            }
        }
    )*};
}

acked!(
    pb::EnrolPayeeResponse,
    pb::SuspendAccrualResponse,
    pb::ResumeAccrualResponse,
    pb::EndAccrualResponse,
    pb::ReopenAccrualResponse,
    pb::SetAreaCoveredResponse,
    pb::SetParticipantScopeResponse,
    pb::RecordDeclarationStateResponse,
);

/// The outbox target of the DfE gateway (its URL is `STEPLAB_DFE_GATEWAY_URL`).
pub const DFE_GATEWAY: &str = "dfe-gateway";
const DFE_GATEWAY_SERVICE: &str = "/steplab.dfe.v1.DfeGatewayService/";

/// Payees per transaction when every outcome is recomputed at start-up.
const REBUILD_BATCH: i64 = 1000;

#[derive(Clone)]
pub struct Payments {
    db: Database,
    clock: Clock,
    book: Arc<ScheduleBook>,
    /// Wakes the outbox relay after a change that may have enqueued
    /// declarations commits.
    relay: Arc<Notify>,
}

/// What a recompute needs to keep the DfE declarations in line (X5, X6):
/// "today" of the change, its time, and the request id the outbox carries on.
#[derive(Debug, Clone)]
struct Declaring {
    today: NaiveDate,
    now: NaiveDateTime,
    request_id: Option<String>,
}

impl Declaring {
    fn new(clock: &Clock) -> Self {
        Declaring { today: clock.today(), now: clock.now(), request_id: observability::current_request_id() }
    }
}

/// Refusals are audited: who, in which role, tried what.
fn denied(caller: &Caller, rpc: &str, d: Denied) -> ServiceError {
    tracing::warn!(
        target: "audit",
        sub = %caller.sub,
        role = caller.role().as_str(),
        rpc,
        reason = %d.0,
        "permission denied"
    );
    d.into()
}

/// Applies a change to a payee's end/reopen history (W5, W9), decided by
/// `decide` over the closures stored so far.
fn change_closures(
    conn: &mut DbConn,
    participant_id: &str,
    now: NaiveDateTime,
    decide: impl FnOnce(&[accrual::Closure]) -> Result<Change<accrual::Closure>, RuleViolation>,
) -> Result<(), ServiceError> {
    let rows = store::closures_of(conn, participant_id)?;
    let known: Vec<_> = rows.iter().map(|r| r.domain()).collect();
    match decide(&known)? {
        Change::Insert(c) => store::insert_closure(conn, participant_id, &c, now),
        Change::Update(i, c) => match rows.get(i) {
            Some(row) => store::update_closure(conn, row.id, &c, now),
            None => Err(ServiceError::Internal("closure index out of range".into())),
        },
        Change::Unchanged => Ok(()),
    }
}

fn not_enrolled(id: &str) -> ServiceError {
    ServiceError::NotFound(format!(
        "participant {id} is not enrolled as a payee: the participant service sends EnrolPayee when it registers them"
    ))
}

/// AIP-211: the payee, when `check` lets the caller reach them where they
/// are today. To a scoped caller an unknown id and another delivery
/// partner's payee get the same PERMISSION_DENIED; only callers who reach
/// everyone (the participant service, admins) are told that a participant is
/// not enrolled.
fn payee_in_reach(
    conn: &mut DbConn,
    caller: &Caller,
    rpc: &str,
    found: Option<PayeeRow>,
    participant_id: &str,
    today: chrono::NaiveDate,
    check: fn(&Caller, Place<'_>) -> Result<(), Denied>,
) -> Result<PayeeRow, ServiceError> {
    let Some(payee) = found else {
        return Err(if policy::sees_everything(caller) {
            not_enrolled(participant_id)
        } else {
            denied(caller, rpc, policy::unreachable(caller))
        });
    };
    // Only a scoped caller's reach depends on where the payee is.
    if !policy::sees_everything(caller) {
        let facts = store::load_facts(conn, &payee)?;
        let placement = facts.placement_on(today);
        check(caller, Place { school_id: &placement.school_id, delivery_partner_id: &placement.delivery_partner_id })
            .map_err(|d| denied(caller, rpc, d))?;
    }
    Ok(payee)
}

/// The answer of a command: a repeat's stored first answer is marked as a
/// duplicate.
fn acked<Resp: Acked>(ran: Ran<Resp>) -> Resp {
    match ran {
        Ran::Applied(response) => response,
        Ran::Replayed(mut response) => {
            if let Some(ack) = response.ack_mut() {
                ack.duplicate = true;
            }
            response
        }
    }
}

fn schedule_of<'a>(book: &'a ScheduleBook, payee: &PayeeRow) -> Result<&'a Schedule, ServiceError> {
    book.schedule(&payee.schedule_id, payee.cohort).ok_or_else(|| {
        ServiceError::Internal(format!(
            "payee {} is on {}/{}, which the loaded schedules lack",
            payee.participant_id, payee.schedule_id, payee.cohort
        ))
    })
}

fn plan<'a>(book: &'a ScheduleBook, schedule: &'a Schedule, facts: &Facts) -> Result<Plan<'a>, ServiceError> {
    Plan::new(book, schedule, facts).ok_or_else(|| {
        ServiceError::Internal(format!("the fees of {}/{} do not fit in pence", schedule.id, schedule.cohort))
    })
}

/// Recomputes and stores what each of the payee's windows pays, and
/// enqueues the declarations and voids that keep the DfE in line (X5, X6),
/// in the caller's transaction; answers the facts it computed from.
fn recompute(
    conn: &mut DbConn,
    book: &ScheduleBook,
    payee: &PayeeRow,
    declaring: &Declaring,
) -> Result<Facts, ServiceError> {
    recompute_all(conn, book, std::slice::from_ref(payee), declaring)?
        .pop()
        .ok_or_else(|| ServiceError::Internal(format!("no facts computed for {}", payee.participant_id)))
}

/// X5, X6: compares the milestones earned as of today (what GetAccrual
/// answers for today, by the same function) with the declarations made,
/// records and enqueues each declaration and void that is missing, in the
/// caller's transaction. Comparing again changes nothing.
fn sync_declarations(
    conn: &mut DbConn,
    payee: &PayeeRow,
    schedule: &Schedule,
    plan: &Plan<'_>,
    facts: &Facts,
    declaring: &Declaring,
) -> Result<(), ServiceError> {
    let id = payee.participant_id.as_str();
    let declarant = Declarant { kind: payee.kind()?, cohort: payee.cohort, variant: schedule.variant };
    let earned: Vec<(String, String, NaiveDate)> = accrual::earned_by(plan, facts, declaring.today)
        .into_iter()
        .filter_map(|o| match o.outcome {
            accrual::Outcome::Earned { milestone, earned_on, .. } => Some((milestone, o.window.id.clone(), earned_on)),
            accrual::Outcome::Excluded { .. } => None,
        })
        .collect();
    let declared: Vec<_> = store::declarations_of(conn, id)?.iter().map(DeclarationRow::domain).collect();
    let undeclared_days: Vec<NaiveDate> = earned
        .iter()
        .filter(|(t, _, _)| declarations::to_declare(&declarant, &declared, t))
        .map(|(_, _, day)| *day)
        .collect();
    // The evidence (the engagement's kind) is read only when something is
    // to be declared: most changes declare nothing.
    let kinds = if undeclared_days.is_empty() {
        Default::default()
    } else {
        store::first_engagement_kinds(conn, id, &undeclared_days)?
    };
    let earned: Vec<Earned> = earned
        .into_iter()
        .map(|(declaration_type, window_id, earned_on)| Earned {
            qualified_by: kinds.get(&earned_on).copied().unwrap_or(crate::domain::EngagementKind::Other),
            declaration_type,
            window_id,
            earned_on,
        })
        .collect();
    for step in declarations::compare(&declarant, &earned, &declared) {
        let command_id = steplab_platform::ids::new_id();
        let (rpc, payload) = match &step {
            Step::Declare(d) => {
                store::declare(conn, id, d, declaring.now)?;
                let request = dfe::DeclareMilestoneRequest {
                    command_id: command_id.clone(),
                    participant_id: id.to_owned(),
                    declaration_type: d.declaration_type.clone(),
                    declaration_date: Some(steplab_platform::date::to_proto(d.declaration_date)),
                    evidence_held: d.evidence_held.clone(),
                    milestone_id: d.window_id.clone(),
                };
                ("DeclareMilestone", request.encode_to_vec())
            }
            Step::Void { declaration_type } => {
                store::void(conn, id, declaration_type, declaring.now)?;
                let request = dfe::VoidMilestoneRequest {
                    command_id: command_id.clone(),
                    participant_id: id.to_owned(),
                    declaration_type: declaration_type.clone(),
                };
                ("VoidMilestone", request.encode_to_vec())
            }
        };
        let command = NewCommand {
            command_id,
            participant_id: id.to_owned(),
            target: DFE_GATEWAY.to_owned(),
            method: format!("{DFE_GATEWAY_SERVICE}{rpc}"),
            payload,
            request_id: declaring.request_id.clone(),
        };
        outbox::enqueue(conn, &command, declaring.now)?;
    }
    Ok(())
}

/// The same for payees sorted by id, loading their facts and stored
/// outcomes a query per table for all of them (the start-up recompute).
fn recompute_all(
    conn: &mut DbConn,
    book: &ScheduleBook,
    payees: &[PayeeRow],
    declaring: &Declaring,
) -> Result<Vec<Facts>, ServiceError> {
    let (Some(first), Some(last)) = (payees.first(), payees.last()) else {
        return Ok(Vec::new());
    };
    let all_facts = store::load_facts_of(conn, payees)?;
    let mut stored = store::stored_outcomes(conn, &first.participant_id, &last.participant_id)?;
    let mut totals = store::TotalsDelta::default();
    for (payee, facts) in payees.iter().zip(&all_facts) {
        let schedule = schedule_of(book, payee)?;
        let plan = plan(book, schedule, facts)?;
        let rows = accrual::outcomes(&plan, facts, None)
            .iter()
            .map(|o| OutcomeRow::from_outcome(&payee.participant_id, o))
            .collect();
        let before = stored.remove(&payee.participant_id).unwrap_or_default();
        store::write_outcomes(conn, &payee.participant_id, before, rows, &mut totals)?;
        sync_declarations(conn, payee, schedule, &plan, facts, declaring)?;
    }
    totals.apply(conn)?;
    Ok(all_facts)
}

impl Payments {
    pub fn new(db: Database, clock: Clock, book: ScheduleBook) -> Self {
        Self { db, clock, book: Arc::new(book), relay: Arc::new(Notify::new()) }
    }

    /// Wakes `relay` after every change that may have enqueued commands.
    pub fn with_relay_wake(self, relay: Arc<Notify>) -> Self {
        Self { relay, ..self }
    }

    /// The service's database, where the platform keeps its audit log.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Start-up: every payee's schedule must be loaded, and the stored
    /// window outcomes must have been computed under the loaded schedules
    /// (a new schedules file changes amounts and windows): when the
    /// fingerprint differs, every payee is recomputed.
    pub async fn prepare(&self) -> anyhow::Result<()> {
        let book = self.book.clone();
        let in_use = self.db.read(store::schedules_in_use).await?;
        let missing: Vec<String> = in_use
            .iter()
            .filter(|(id, cohort)| book.schedule(id, *cohort).is_none())
            .map(|(id, cohort)| format!("{id}/{cohort}"))
            .collect();
        if !missing.is_empty() {
            anyhow::bail!(
                "the loaded schedules lack {} which enrolled payees are on: add them to STEPLAB_SCHEDULES_FILE (or unset it for the built-in schedules)",
                missing.join(", ")
            );
        }
        let fingerprint = book.fingerprint();
        if self.db.read(store::book_fingerprint).await?.as_deref() == Some(fingerprint.as_str()) {
            return Ok(());
        }
        let started = Instant::now();
        let mut after: Option<String> = None;
        let mut count = 0usize;
        loop {
            let page_after = after.clone();
            let ids =
                self.db.read(move |conn| store::payee_ids_after(conn, page_after.as_deref(), REBUILD_BATCH)).await?;
            let Some(last) = ids.last().cloned() else {
                break;
            };
            count += ids.len();
            let book = book.clone();
            let last_id = last.clone();
            let first = ids.first().cloned().unwrap_or_default();
            let declaring = Declaring::new(&self.clock);
            self.db
                .write(move |conn| {
                    let payees = store::lock_payees(conn, &first, &last)?;
                    recompute_all(conn, &book, &payees, &declaring).map(|_| ())
                })
                .await?;
            after = Some(last_id);
        }
        let now = self.clock.now();
        self.db.write(move |conn| store::set_book_fingerprint(conn, &fingerprint, now)).await?;
        self.relay.notify_one();
        tracing::info!(
            payees = count,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "window outcomes computed under the loaded schedules"
        );
        Ok(())
    }

    /// Runs a command for an enrolled payee in one write transaction: takes
    /// the payee's lock, answers a repeat from the stored first answer,
    /// applies the change, recomputes the outcomes and stores the answer.
    async fn command<Req, Resp>(
        &self,
        rpc: &'static str,
        key: IdempotencyKey,
        command_id: String,
        participant_id: String,
        request: &Req,
        apply: impl FnOnce(&mut DbConn, NaiveDateTime) -> Result<(), ServiceError> + Send + 'static,
    ) -> Result<Resp, ServiceError>
    where
        Req: prost::Message,
        Resp: Acked,
    {
        let request_bytes = request.encode_to_vec();
        let declaring = Declaring::new(&self.clock);
        let now = declaring.now;
        let book = self.book.clone();
        let answer = self
            .db
            .write(move |conn| {
                let payee = store::lock_payee(conn, &participant_id)?.ok_or_else(|| not_enrolled(&participant_id))?;
                let ran = idempotency::once::<PaymentsRules, _>(conn, Some(&key), rpc, &request_bytes, now, |conn| {
                    apply(conn, now)?;
                    recompute(conn, &book, &payee, &declaring)?;
                    let response = Resp::acked(convert::ack(&command_id, false));
                    Ok(response)
                })?;
                Ok(acked(ran))
            })
            .await;
        if answer.is_ok() {
            self.relay.notify_one();
        }
        answer
    }

    pub async fn enrol_payee(
        &self,
        caller: Caller,
        req: pb::EnrolPayeeRequest,
    ) -> Result<pb::EnrolPayeeResponse, ServiceError> {
        const RPC: &str = "EnrolPayee";
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, RPC, d))?;
        let cmd = convert::enrol(&req)?;
        let schedule = self.book.schedule(&cmd.schedule_id, cmd.cohort).ok_or_else(|| {
            ServiceError::NotFound(format!(
                "there is no schedule {} for cohort {}: ListSchedules lists the schedules of each cohort",
                cmd.schedule_id, cmd.cohort
            ))
        })?;
        if schedule.variant == Variant::Replacement && cmd.kind != PayeeKind::Mentor {
            return Err(FieldViolations::from(FieldViolation::new(
                "schedule",
                format!(
                    "{} is a replacement schedule, for mentors only: enrol an ECT on a standard, extended or reduced schedule",
                    cmd.schedule_id
                ),
            ))
            .into());
        }
        let request_bytes = req.encode_to_vec();
        let declaring = Declaring::new(&self.clock);
        let (now, book) = (declaring.now, self.book.clone());
        let answer = self
            .db
            .write(move |conn| {
                let ran = idempotency::once::<PaymentsRules, _>(conn, Some(&cmd.key), RPC, &request_bytes, now, |conn| {
                    let row = PayeeRow {
                        participant_id: cmd.participant_id.clone(),
                        participant_kind: cmd.kind.as_str().to_owned(),
                        schedule_id: cmd.schedule_id.clone(),
                        cohort: cmd.cohort,
                        funding_eligible: cmd.funding_eligible,
                        school_id: cmd.school_id.clone(),
                        delivery_partner_id: cmd.delivery_partner_id.clone(),
                        version: 1,
                        created_at: now,
                    };
                    match store::lock_payee(conn, &cmd.participant_id)? {
                        // Compared with the enrolment as made, not later moves.
                        Some(existing)
                            if PayeeRow {
                                version: 1,
                                created_at: now,
                                ..existing.clone()
                            } == row => {}
                        Some(existing) => {
                            return Err(ServiceError::AlreadyExists(format!(
                                "participant {} is already enrolled on {}/{} ({}, delivery partner {}, funding eligible {}): a move is SetParticipantScope, a new schedule needs an operator",
                                existing.participant_id,
                                existing.schedule_id,
                                existing.cohort,
                                existing.participant_kind,
                                existing.delivery_partner_id,
                                existing.funding_eligible
                            )));
                        }
                        None => {
                            store::insert_payee(conn, &row)?;
                            recompute(conn, &book, &row, &declaring)?;
                        }
                    }
                    let response = pb::EnrolPayeeResponse::acked(convert::ack(&req.command_id, false));
                    Ok(response)
                })?;
                Ok(acked(ran))
            })
            .await;
        if answer.is_ok() {
            self.relay.notify_one();
        }
        answer
    }

    pub async fn suspend_accrual(
        &self,
        caller: Caller,
        req: pb::SuspendAccrualRequest,
    ) -> Result<pb::SuspendAccrualResponse, ServiceError> {
        const RPC: &str = "SuspendAccrual";
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, RPC, d))?;
        let cmd = convert::suspend(&req)?;
        let participant_id = cmd.participant_id.clone();
        self.command(RPC, cmd.key, req.command_id.clone(), cmd.participant_id.clone(), &req, move |conn, now| {
            let rows = store::suspensions_of(conn, &participant_id)?;
            let known: Vec<_> = rows.iter().map(|r| r.domain()).collect();
            match commands::suspend(&known, &cmd.suspension_id, cmd.from, cmd.until) {
                Change::Insert(s) => store::insert_suspension(conn, &participant_id, &s, now),
                Change::Update(i, s) => match rows.get(i) {
                    Some(row) => store::update_suspension(conn, row.id, &s, now),
                    None => Err(ServiceError::Internal("suspension index out of range".into())),
                },
                Change::Unchanged => Ok(()),
            }
        })
        .await
    }

    pub async fn resume_accrual(
        &self,
        caller: Caller,
        req: pb::ResumeAccrualRequest,
    ) -> Result<pb::ResumeAccrualResponse, ServiceError> {
        const RPC: &str = "ResumeAccrual";
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, RPC, d))?;
        let cmd = convert::resume(&req)?;
        let participant_id = cmd.participant_id.clone();
        self.command(RPC, cmd.key, req.command_id.clone(), cmd.participant_id.clone(), &req, move |conn, now| {
            let rows = store::suspensions_of(conn, &participant_id)?;
            let row = rows.iter().find(|r| r.suspension_id == cmd.suspension_id).ok_or_else(|| {
                ServiceError::NotFound(format!(
                    "participant {participant_id} has no suspension {}: send SuspendAccrual for it first",
                    cmd.suspension_id
                ))
            })?;
            match commands::resume(&row.domain(), cmd.on) {
                Some(s) => store::update_suspension(conn, row.id, &s, now),
                None => Ok(()),
            }
        })
        .await
    }

    pub async fn end_accrual(
        &self,
        caller: Caller,
        req: pb::EndAccrualRequest,
    ) -> Result<pb::EndAccrualResponse, ServiceError> {
        const RPC: &str = "EndAccrual";
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, RPC, d))?;
        let cmd = convert::end(&req)?;
        let participant_id = cmd.participant_id.clone();
        self.command(RPC, cmd.key, req.command_id.clone(), cmd.participant_id.clone(), &req, move |conn, now| {
            change_closures(conn, &participant_id, now, |known| commands::end(known, cmd.effective_date))
        })
        .await
    }

    pub async fn reopen_accrual(
        &self,
        caller: Caller,
        req: pb::ReopenAccrualRequest,
    ) -> Result<pb::ReopenAccrualResponse, ServiceError> {
        const RPC: &str = "ReopenAccrual";
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, RPC, d))?;
        let cmd = convert::reopen(&req)?;
        let participant_id = cmd.participant_id.clone();
        self.command(RPC, cmd.key, req.command_id.clone(), cmd.participant_id.clone(), &req, move |conn, now| {
            change_closures(conn, &participant_id, now, |known| commands::reopen(known, cmd.effective_date))
        })
        .await
    }

    pub async fn set_area_covered(
        &self,
        caller: Caller,
        req: pb::SetAreaCoveredRequest,
    ) -> Result<pb::SetAreaCoveredResponse, ServiceError> {
        const RPC: &str = "SetAreaCovered";
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, RPC, d))?;
        let cmd = convert::coverage(&req)?;
        let participant_id = cmd.participant_id.clone();
        let change = accrual::CoverageChange { from: cmd.from, covered: cmd.covered };
        self.command(RPC, cmd.key, req.command_id.clone(), cmd.participant_id, &req, move |conn, now| {
            store::set_coverage(conn, &participant_id, &change, now)
        })
        .await
    }

    pub async fn set_participant_scope(
        &self,
        caller: Caller,
        req: pb::SetParticipantScopeRequest,
    ) -> Result<pb::SetParticipantScopeResponse, ServiceError> {
        const RPC: &str = "SetParticipantScope";
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, RPC, d))?;
        let cmd = convert::placement(&req)?;
        let participant_id = cmd.participant_id.clone();
        let change = accrual::PlacementChange {
            from: cmd.from,
            placement: accrual::Placement { school_id: cmd.school_id, delivery_partner_id: cmd.delivery_partner_id },
        };
        self.command(RPC, cmd.key, req.command_id.clone(), cmd.participant_id, &req, move |conn, now| {
            store::set_placement(conn, &participant_id, &change, now)
        })
        .await
    }

    pub async fn record_engagement(
        &self,
        caller: Caller,
        req: pb::RecordEngagementRequest,
    ) -> Result<pb::RecordEngagementResponse, ServiceError> {
        const RPC: &str = "RecordEngagement";
        policy::may_record_engagement_somewhere(&caller).map_err(|d| denied(&caller, RPC, d))?;
        let cmd = convert::engagement(&req, &caller.sub)?;
        let today = self.clock.today();
        if cmd.occurred_on > today {
            return Err(RuleViolation::new(
                "OCCURRED_ON_IN_FUTURE",
                format!(
                    "occurred_on {} is after today ({today}): record engagement once it has happened",
                    cmd.occurred_on
                ),
            )
            .into());
        }
        let request_bytes = req.encode_to_vec();
        let declaring = Declaring { today, ..Declaring::new(&self.clock) };
        let (now, book) = (declaring.now, self.book.clone());
        let answer = self
            .db
            .write(move |conn| {
                let found = store::lock_payee(conn, &cmd.participant_id)?;
                let payee = payee_in_reach(
                    conn,
                    &caller,
                    RPC,
                    found,
                    &cmd.participant_id,
                    today,
                    policy::may_record_engagement,
                )?;
                let ran =
                    idempotency::once::<PaymentsRules, _>(conn, Some(&cmd.key), RPC, &request_bytes, now, |conn| {
                        store::insert_engagement(
                            conn,
                            &NewEngagement {
                                participant_id: &cmd.participant_id,
                                occurred_on: cmd.occurred_on,
                                kind: cmd.kind.as_str(),
                                note: &cmd.note,
                                recorded_by: &caller.sub,
                            },
                            now,
                        )?;
                        let facts = recompute(conn, &book, &payee, &declaring)?;
                        let schedule = schedule_of(&book, &payee)?;
                        let window = plan(&book, schedule, &facts)?.window_on(cmd.occurred_on);
                        let response = pb::RecordEngagementResponse {
                            duplicate: false,
                            window: window.map(|w| w.id.clone()).unwrap_or_default(),
                            qualifying: window.is_some() && facts.qualifies_on(cmd.occurred_on),
                        };
                        Ok(response)
                    })?;
                Ok(match ran {
                    Ran::Applied(answer) => answer,
                    Ran::Replayed(first) => pb::RecordEngagementResponse { duplicate: true, ..first },
                })
            })
            .await;
        if answer.is_ok() {
            self.relay.notify_one();
        }
        answer
    }

    pub async fn get_accrual(
        &self,
        caller: Caller,
        req: pb::GetAccrualRequest,
    ) -> Result<pb::GetAccrualResponse, ServiceError> {
        let query = convert::accrual_query(&req)?;
        let today = self.clock.today();
        let as_of = query.as_of.unwrap_or(today);
        let book = self.book.clone();
        self.db
            .read(move |conn| {
                let found = store::find_payee(conn, &query.participant_id)?;
                let payee = payee_in_reach(
                    conn,
                    &caller,
                    "GetAccrual",
                    found,
                    &query.participant_id,
                    today,
                    policy::may_read_accrual,
                )?;
                let facts = store::load_facts(conn, &payee)?;
                let schedule = schedule_of(&book, &payee)?;
                let plan = plan(&book, schedule, &facts)?;
                let earned = accrual::earned_by(&plan, &facts, as_of);
                let declared = store::declarations_of(conn, &payee.participant_id)?;
                Ok(convert::accrual(&payee.participant_id, &plan, &facts, &earned, &declared, as_of))
            })
            .await
    }

    pub async fn get_statement(
        &self,
        caller: Caller,
        req: pb::GetStatementRequest,
    ) -> Result<pb::GetStatementResponse, ServiceError> {
        let query = convert::statement_query(&req)?;
        policy::may_read_statement(&caller, query.delivery_partner_id.as_deref())
            .map_err(|d| denied(&caller, "GetStatement", d))?;
        if self.book.window(&query.window_id).is_none() {
            return Err(ServiceError::NotFound(format!(
                "no schedule has the window {}: ListSchedules lists every window id",
                query.window_id
            )));
        }
        self.db
            .read(move |conn| {
                let (rows, total) = store::snapshot(conn, |conn| {
                    let rows = store::statement_page(
                        conn,
                        &query.window_id,
                        query.delivery_partner_id.as_deref(),
                        query.after.as_deref(),
                        query.page_size + 1,
                    )?;
                    let total = store::statement_total(conn, &query.window_id, query.delivery_partner_id.as_deref())?;
                    let declared = match (rows.first(), rows.last()) {
                        (Some(first), Some(last)) => {
                            store::declarations_between(conn, &first.participant_id, &last.participant_id)?
                        }
                        _ => Default::default(),
                    };
                    Ok(((rows, declared), total))
                })?;
                let (mut rows, declared) = rows;
                let more = i64::try_from(rows.len()).unwrap_or(i64::MAX) > query.page_size;
                rows.truncate(usize::try_from(query.page_size).unwrap_or(usize::MAX));
                let next = match rows.last() {
                    Some(last) if more => convert::statement_token(
                        &query.window_id,
                        query.delivery_partner_id.as_deref(),
                        &last.participant_id,
                    ),
                    _ => String::new(),
                };
                convert::statement_page(&query, rows, &declared, total, next).ok_or_else(|| {
                    ServiceError::Internal(format!(
                        "a stored outcome of window {} has an unknown exclusion reason",
                        query.window_id
                    ))
                })
            })
            .await
    }

    /// X5: the DfE's answer to a declaration payments made, reported by the
    /// DfE gateway: stored with the declaration (the latest answer wins).
    pub async fn record_declaration_state(
        &self,
        caller: Caller,
        req: pb::RecordDeclarationStateRequest,
    ) -> Result<pb::RecordDeclarationStateResponse, ServiceError> {
        const RPC: &str = "RecordDeclarationState";
        policy::may_record_declaration_state(&caller).map_err(|d| denied(&caller, RPC, d))?;
        let cmd = convert::declaration_state(&req)?;
        let request_bytes = req.encode_to_vec();
        let now = self.clock.now();
        self.db
            .write(move |conn| {
                store::lock_payee(conn, &cmd.participant_id)?.ok_or_else(|| not_enrolled(&cmd.participant_id))?;
                let ran = idempotency::once::<PaymentsRules, _>(conn, Some(&cmd.key), RPC, &request_bytes, now, |conn| {
                    let known = store::set_dfe_state(
                        conn,
                        &cmd.participant_id,
                        &cmd.declaration_type,
                        &cmd.dfe_declaration_id,
                        &cmd.state,
                        now,
                    )?;
                    if !known {
                        return Err(RuleViolation::new(
                            "DECLARATION_NOT_MADE",
                            format!(
                                "payments never declared `{}` for participant {}: the DfE gateway and payments disagree; an operator compares the gateway's calls (ListDfeCalls) with GetAccrual",
                                cmd.declaration_type, cmd.participant_id
                            ),
                        )
                        .into());
                    }
                    let response = pb::RecordDeclarationStateResponse::acked(convert::ack(&req.command_id, false));
                    Ok(response)
                })?;
                Ok(acked(ran))
            })
            .await
    }

    pub async fn list_schedules(
        &self,
        _caller: Caller,
        req: pb::ListSchedulesRequest,
    ) -> Result<pb::ListSchedulesResponse, ServiceError> {
        let cohort = convert::schedules_query(&req)?;
        Ok(pb::ListSchedulesResponse {
            schedules: self.book.schedules(cohort).map(|s| convert::schedule(&self.book, s)).collect(),
            next_page_token: String::new(),
        })
    }
}
