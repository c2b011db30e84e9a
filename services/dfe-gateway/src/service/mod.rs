//! The gateway's use cases. Each checks the caller's role, validates, and
//! stores its effect and its first answer in one transaction, so a repeated
//! `command_id` returns that answer and changes nothing. No use case waits on
//! the DfE (X8): commands store calls for the delivery worker, woken after
//! the commit. One module per kind of use case: the commands of the
//! participant service and payments, the operator's calls and reads, and
//! reconciliation with the DfE.

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

/// A call decided now: pending when the participant's DfE id is known (put
/// in place), else waiting for it (X1).
fn new_call(
    tracked: &TrackedRow,
    command_id: &str,
    declaration_type: Option<String>,
    request: mapping::DfeRequest,
    now: NaiveDateTime,
) -> NewCall {
    let known = tracked.dfe_participant_id.as_deref();
    NewCall {
        call_id: ids::new_id(),
        command_id: command_id.to_owned(),
        participant_id: tracked.participant_id.clone(),
        declaration_type,
        http_method: request.method.to_owned(),
        path: mapping::resolve(&request.path, known, None),
        body: mapping::resolve(&request.body, known, None),
        state: if known.is_some() { CallState::Pending } else { CallState::WaitingForDfeId }.as_str().to_owned(),
        attempts: 0,
        next_attempt_at: now,
        last_http_status: 0,
        created_at: now,
        request_id: observability::current_request_id(),
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

impl Gateway {
    pub fn new(db: Database, clock: Clock, wake: Arc<Notify>, dfe: Option<crate::dfe::DfeClient>) -> Self {
        Self { db, clock, wake, dfe }
    }

    /// The service's database, where the platform keeps its audit log.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Runs a command in one write transaction: answers a repeat from the
    /// stored first answer, applies the change, stores the answer; wakes the
    /// delivery worker after the commit.
    async fn command<Resp: Acked>(
        &self,
        received: Received,
        apply: impl FnOnce(&mut DbConn, NaiveDateTime) -> Result<(), ServiceError> + Send + 'static,
    ) -> Result<Resp, ServiceError> {
        let Received { rpc, key, command_id, request } = received;
        let now = self.clock.now();
        let response = self
            .db
            .write(move |conn| {
                let ran = idempotency::once::<DfeGatewayRules, _>(conn, Some(&key), rpc, &request, now, |conn| {
                    apply(conn, now)?;
                    Ok(Resp::acked(CommandAck { idempotency_key: command_id, duplicate: false }))
                })?;
                Ok::<_, ServiceError>(acked(ran))
            })
            .await?;
        self.wake.notify_one();
        Ok(response)
    }
    /// Runs a command about one participant, refused unless the gateway
    /// tracks them: every call about a participant needs what
    /// TrackParticipant stored (course, DfE id). `apply` gets the tracked
    /// row and the command id, for the calls it decides.
    async fn tracked_command<Resp: Acked>(
        &self,
        received: Received,
        participant_id: ParticipantId,
        apply: impl FnOnce(&mut DbConn, NaiveDateTime, TrackedRow, &str) -> Result<(), ServiceError> + Send + 'static,
    ) -> Result<Resp, ServiceError> {
        let command_id = received.command_id.clone();
        self.command(received, move |conn, now| {
            let tracked = store::tracked(conn, &participant_id)?.ok_or_else(|| not_tracked(&participant_id))?;
            apply(conn, now, tracked, &command_id)
        })
        .await
    }
}
