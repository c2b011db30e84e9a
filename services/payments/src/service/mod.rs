//! The payments service's use cases: each checks permission, validates,
//! and runs the domain decision, its storage and the recomputed window
//! outcomes in one unit of work. Commands (and RecordEngagement's
//! `request_id`) store their first answer in the same transaction, so a
//! repeat returns it with `duplicate` set and changes nothing.
//!
//! By use case: `enrolment`, the participant service's `commands`
//! (suspend, resume, end, reopen, coverage, scope), `engagement`, the DfE
//! gateway's `declarations` answers, `reads` (accrual, statements,
//! schedules) and start-up `operations`; `recompute` keeps the stored
//! outcomes and DfE declarations in line after each change.

mod batch;
mod commands;
mod declarations;
mod engagement;
mod enrolment;
mod operations;
mod preview;
mod reads;
mod recompute;

use crate::convert;
use crate::domain::PaymentsRules;
use crate::domain::accrual::{Facts, Plan};
use crate::domain::policy::{self, Denied, Place};
use crate::domain::schedule::{Schedule, ScheduleBook};
use crate::store::{self, PayeeRow};
use chrono::NaiveDateTime;
use recompute::{Declaring, recompute};
use std::sync::Arc;
pub(super) use steplab_platform::ack::{Acked, acked};
use steplab_platform::db::{Database, DbConn};
use steplab_platform::error::ServiceError;
use steplab_platform::idempotency::{self, IdempotencyKey};
use steplab_platform::ids::ParticipantId;
use steplab_platform::outbox::Admission;
use steplab_platform::{Caller, Clock};
use steplab_proto::steplab::common::v1::CommandAck;
use tokio::sync::Notify;

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
    /// Backpressure on RecordEngagement, the one change that comes from
    /// people rather than from the participant service's relay.
    admission: Admission,
}

/// Refusals are audited: who, in which role, tried what.
pub(super) fn denied(caller: &Caller, rpc: &str, d: Denied) -> ServiceError {
    tracing::warn!(
        target: "audit",
        sub = %caller.sub,
        role = caller.role().as_str(),
        rpc,
        reason = %d,
        "permission denied"
    );
    d.into()
}

pub(super) fn not_enrolled(id: &str) -> ServiceError {
    ServiceError::not_found(
        "participant",
        id,
        format!(
            "participant {id} is not enrolled as a payee: the participant service sends EnrolPayee when it registers them"
        ),
    )
}

/// AIP-211: the payee, when `check` lets the caller reach them where they
/// are today. To a scoped caller an unknown id and another delivery
/// partner's payee get the same PERMISSION_DENIED; only callers who reach
/// everyone (the participant service, admins) are told that a participant is
/// not enrolled.
pub(super) fn payee_in_reach(
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

pub(super) fn schedule_of<'a>(book: &'a ScheduleBook, payee: &PayeeRow) -> Result<&'a Schedule, ServiceError> {
    book.schedule(&payee.schedule_id, payee.cohort).ok_or_else(|| {
        ServiceError::Internal(format!(
            "payee {} is on {}/{}, which the loaded schedules lack",
            payee.participant_id, payee.schedule_id, payee.cohort
        ))
    })
}

pub(super) fn plan<'a>(
    book: &'a ScheduleBook,
    schedule: &'a Schedule,
    facts: &Facts,
) -> Result<Plan<'a>, ServiceError> {
    Plan::new(book, schedule, facts).ok_or_else(|| {
        ServiceError::Internal(format!("the fees of {}/{} do not fit in pence", schedule.id, schedule.cohort))
    })
}

impl Payments {
    pub fn new(db: Database, clock: Clock, book: ScheduleBook) -> Self {
        Self { db, clock, book: Arc::new(book), relay: Arc::new(Notify::new()), admission: Admission::always() }
    }

    /// Refuses RecordEngagement while the relay reporting into
    /// `admission`'s pressure (the DfE declarations) is too far behind.
    pub fn with_admission(self, admission: Admission) -> Self {
        Self { admission, ..self }
    }

    /// Wakes `relay` after every change that may have enqueued commands.
    pub fn with_relay_wake(self, relay: Arc<Notify>) -> Self {
        Self { relay, ..self }
    }

    /// The service's database, where the platform keeps its audit log.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Runs `work` in one write transaction, then wakes the relay: every
    /// change here may have enqueued DfE commands, and the relay should not
    /// wait for its next poll to send them.
    pub(super) async fn write_then_relay<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut DbConn) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let answer = self.db.write(work).await;
        if answer.is_ok() {
            self.relay.notify_one();
        }
        answer
    }

    /// Runs a prepared command in one write transaction, then wakes the relay.
    pub(super) async fn run<Resp: Send + 'static>(&self, command: Prepared<Resp>) -> Result<Resp, ServiceError> {
        let declaring = Declaring::new(&self.clock);
        self.write_then_relay(move |conn| (command.run)(conn, &declaring)).await
    }

    /// A command for an enrolled payee, to run in the caller's transaction:
    /// takes the payee's lock, answers a repeat from the stored first
    /// answer, applies the change, recomputes the outcomes and stores the
    /// answer.
    pub(super) fn command<Req, Resp>(
        &self,
        rpc: &'static str,
        key: IdempotencyKey,
        command_id: String,
        participant_id: ParticipantId,
        request: &Req,
        apply: impl FnOnce(&mut DbConn, NaiveDateTime) -> Result<(), ServiceError> + Send + 'static,
    ) -> Prepared<Resp>
    where
        Req: prost::Message,
        Resp: Acked,
    {
        let request_bytes = request.encode_to_vec();
        let book = self.book.clone();
        Prepared::new(rpc, participant_id.to_string(), move |conn, declaring| {
            let now = declaring.now;
            let payee = store::lock_payee(conn, &participant_id)?.ok_or_else(|| not_enrolled(&participant_id))?;
            let ran = idempotency::once::<PaymentsRules, _>(conn, Some(&key), rpc, &request_bytes, now, |conn| {
                apply(conn, now)?;
                recompute(conn, &book, &payee, declaring)?;
                let response = Resp::acked(convert::ack(&command_id, false));
                Ok(response)
            })?;
            Ok(acked(ran))
        })
    }
}

/// How a command runs, inside the caller's transaction: the real command's
/// and its preview's one code path.
type Run<Resp> = Box<dyn FnOnce(&mut DbConn, &Declaring) -> Result<Resp, ServiceError> + Send>;

/// A validated command, ready to run: what it is, whom it concerns, and
/// what it does.
pub(super) struct Prepared<Resp> {
    rpc: &'static str,
    participant_id: String,
    run: Run<Resp>,
}

impl<Resp: 'static> Prepared<Resp> {
    fn new(
        rpc: &'static str,
        participant_id: String,
        run: impl FnOnce(&mut DbConn, &Declaring) -> Result<Resp, ServiceError> + Send + 'static,
    ) -> Self {
        Prepared { rpc, participant_id, run: Box::new(run) }
    }

    /// The same command answering only its acknowledgement, so commands of
    /// different RPCs can run in one batch with a result each.
    fn into_ack(self) -> Prepared<CommandAck>
    where
        Resp: Acked,
    {
        let run = self.run;
        Prepared {
            rpc: self.rpc,
            participant_id: self.participant_id,
            run: Box::new(move |conn, d| Ok(run(conn, d)?.ack_mut().take().unwrap_or_default())),
        }
    }

    /// The same command with its answer dropped, so commands of different
    /// RPCs can run in one list.
    fn answerless(self) -> Prepared<()> {
        let run = self.run;
        Prepared {
            rpc: self.rpc,
            participant_id: self.participant_id,
            run: Box::new(move |conn, d| run(conn, d).map(drop)),
        }
    }
}
