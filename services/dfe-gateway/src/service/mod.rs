//! The gateway's use cases. Each checks the caller's role, validates, and
//! stores its effect and its first answer in one transaction, so a repeated
//! `command_id` returns that answer and changes nothing. No use case waits on
//! the DfE (X8): commands store calls for the delivery worker, woken after
//! the commit. One module per kind of use case: the commands of the
//! participant service and payments, the operator's calls and reads, and
//! reconciliation with the DfE.

mod batch;
mod calls;
mod commands;
mod reconcile;

use crate::domain::mapping;
use crate::domain::policy::Denied;
use crate::domain::{CallState, DfeGatewayRules, RuleViolation};
use crate::store::{self, NewCall, TrackedRow};
use chrono::NaiveDateTime;
use std::sync::Arc;
use steplab_platform::ack::{Acked, acked};
use steplab_platform::db::{Database, DbConn};
use steplab_platform::error::ServiceError;
use steplab_platform::idempotency::{self, IdempotencyKey};
use steplab_platform::ids::ParticipantId;
use steplab_platform::{Caller, Clock, ids, observability};
use steplab_proto::steplab::common::v1::CommandAck;
use tokio::sync::Notify;

#[derive(Clone)]
pub struct Gateway {
    db: Database,
    clock: Clock,
    /// Wakes the delivery worker after a commit that made a call due.
    wake: Arc<Notify>,
    /// The DfE, for reconciliation; `None` when the sync is off (X9).
    dfe: Option<crate::dfe::DfeClient>,
}

/// Refusals are audited: who, in which role, tried what.
fn denied(caller: &Caller, rpc: &str, d: Denied) -> ServiceError {
    tracing::warn!(target: "audit", sub = %caller.sub, role = caller.role().as_str(), rpc, reason = %d, "permission denied");
    d.into()
}

fn not_tracked(participant_id: &str) -> ServiceError {
    RuleViolation::new(
        "PARTICIPANT_NOT_TRACKED",
        format!(
            "participant {participant_id} is not tracked: the participant service sends TrackParticipant when it registers an ECT or mentor"
        ),
    ).with("participant_id", participant_id)
    .into()
}

/// Where a command's calls come from: when it was applied, its command id
/// and the request that caused it (the command's own in a batch), stored
/// with each call for tracing.
struct Origin<'a> {
    now: NaiveDateTime,
    command_id: &'a str,
    request_id: Option<&'a str>,
}

/// A call decided now: pending when the participant's DfE id is known (put
/// in place), else waiting for it (X1).
fn new_call(
    tracked: &TrackedRow,
    origin: &Origin,
    declaration_type: Option<String>,
    request: mapping::DfeRequest,
) -> NewCall {
    let known = tracked.dfe_participant_id.as_deref();
    NewCall {
        call_id: ids::new_id(),
        command_id: origin.command_id.to_owned(),
        participant_id: tracked.participant_id.clone(),
        declaration_type,
        http_method: request.method.to_owned(),
        path: mapping::resolve(&request.path, known, None),
        body: mapping::resolve(&request.body, known, None),
        state: if known.is_some() { CallState::Pending } else { CallState::WaitingForDfeId }.as_str().to_owned(),
        attempts: 0,
        next_attempt_at: origin.now,
        last_http_status: 0,
        created_at: origin.now,
        request_id: origin.request_id.map(str::to_owned),
    }
}

/// A command as received: its key, its id (echoed in the acknowledgement)
/// and the encoded request, stored with the key to tell a repeat from a reuse.
struct Received {
    rpc: &'static str,
    key: IdempotencyKey,
    command_id: String,
    request: Vec<u8>,
}

impl Received {
    fn new(rpc: &'static str, key: IdempotencyKey, command_id: &str, request: &impl prost::Message) -> Self {
        Received { rpc, key, command_id: command_id.to_owned(), request: request.encode_to_vec() }
    }
}

/// How a command runs inside the caller's write transaction, at `now`, for
/// the request `request_id`.
type Run<Resp> = Box<dyn FnOnce(&mut DbConn, NaiveDateTime, Option<&str>) -> Result<Resp, ServiceError> + Send>;

/// A validated command, ready to run alone (its unary RPC) or in a batch
/// (ApplyCommands): one code path for both.
struct Prepared<Resp> {
    /// The request that caused it: the call's for a unary RPC, the
    /// command's own in a batch.
    request_id: Option<String>,
    run: Run<Resp>,
}

impl<Resp: Acked> Prepared<Resp> {
    /// The same command answering only its acknowledgement, so commands of
    /// different RPCs can run in one batch with a result each. The stored
    /// first answer stays the RPC's own response.
    fn into_ack(self) -> Prepared<CommandAck> {
        let run = self.run;
        Prepared {
            request_id: self.request_id,
            run: Box::new(move |conn, now, request_id| {
                Ok(run(conn, now, request_id)?.ack_mut().take().unwrap_or_default())
            }),
        }
    }
}

impl Gateway {
    pub fn new(db: Database, clock: Clock, wake: Arc<Notify>, dfe: Option<crate::dfe::DfeClient>) -> Self {
        Self { db, clock, wake, dfe }
    }

    /// The service's database, where the platform keeps its audit log.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Runs a prepared command in one write transaction; wakes the delivery
    /// worker after the commit.
    async fn run<Resp: Acked>(&self, command: Prepared<Resp>) -> Result<Resp, ServiceError> {
        let now = self.clock.now();
        let Prepared { request_id, run } = command;
        let response = self.db.write(move |conn| run(conn, now, request_id.as_deref())).await?;
        self.wake.notify_one();
        Ok(response)
    }

    /// A command, to run in the caller's transaction: answers a repeat from
    /// the stored first answer, applies the change, stores the answer.
    fn command<Resp: Acked>(
        received: Received,
        apply: impl FnOnce(&mut DbConn, &Origin) -> Result<(), ServiceError> + Send + 'static,
    ) -> Prepared<Resp> {
        let Received { rpc, key, command_id, request } = received;
        Prepared {
            request_id: observability::current_request_id(),
            run: Box::new(move |conn, now, request_id| {
                let ran = idempotency::once::<DfeGatewayRules, _>(conn, Some(&key), rpc, &request, now, |conn| {
                    apply(conn, &Origin { now, command_id: &command_id, request_id })?;
                    Ok(Resp::acked(CommandAck { idempotency_key: command_id.clone(), duplicate: false }))
                })?;
                Ok(acked(ran))
            }),
        }
    }

    /// A command about one participant, refused unless the gateway tracks
    /// them: every call about a participant needs what TrackParticipant
    /// stored (course, DfE id). `apply` gets the tracked row.
    fn tracked_command<Resp: Acked>(
        received: Received,
        participant_id: ParticipantId,
        apply: impl FnOnce(&mut DbConn, &Origin, TrackedRow) -> Result<(), ServiceError> + Send + 'static,
    ) -> Prepared<Resp> {
        Self::command(received, move |conn, origin| {
            let tracked = store::tracked(conn, &participant_id)?.ok_or_else(|| not_tracked(&participant_id))?;
            apply(conn, origin, tracked)
        })
    }
}
