//! The delivery worker (X8): sends the gateway's stored calls to the DfE in
//! order per participant, at most the DfE's rate, retrying 5xx, 429 and
//! transport failures with backoff, parking other 4xx answers for an
//! operator. Answers to declarations and voids are stored and sent back to
//! payments through the platform outbox (RecordDeclarationState).
//!
//! Claiming is a lease on `next_attempt_at` (as the platform outbox's), so
//! several replicas on one database never send the same call at once. The
//! rate limit is per replica: run one replica, or divide the limit.

use crate::dfe::{Answer, DfeClient};
use crate::domain::CallState;
use crate::domain::mapping;
use crate::domain::outcome::{self, Outcome};
use crate::domain::rate::{self, RollingLimit};
use crate::store::{self, CallRow, DeclarationRow};
use chrono::NaiveDateTime;
use prost::Message;
use std::sync::Arc;
use std::time::{Duration, Instant};
use steplab_platform::db::{Database, DbError};
use steplab_platform::outbox::{self, NewCommand};
use steplab_proto::steplab::payments::v1 as payments;
use tokio::sync::{Mutex, Notify, watch};

/// The platform outbox target of RecordDeclarationState.
pub const PAYMENTS: &str = "payments";
const RECORD_DECLARATION_STATE: &str = "/steplab.payments.v1.PaymentsService/RecordDeclarationState";

#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub poll_interval: Duration,
    pub lease: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Calls in flight at once (each for a different participant).
    pub batch: i64,
    pub rate_limit_per_5_min: u32,
}

pub struct Delivery {
    db: Database,
    client: DfeClient,
    limit: Mutex<RollingLimit>,
    wake: Arc<Notify>,
    relay_wake: Arc<Notify>,
    settings: DeliverySettings,
}

fn now() -> NaiveDateTime {
    chrono::Utc::now().naive_utc()
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::seconds(1))
}

impl Delivery {
    pub fn new(
        db: Database,
        client: DfeClient,
        wake: Arc<Notify>,
        relay_wake: Arc<Notify>,
        settings: DeliverySettings,
    ) -> Self {
        let limit = Mutex::new(RollingLimit::new(settings.rate_limit_per_5_min, rate::WINDOW));
        Self { db, client, limit, wake, relay_wake, settings }
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let this = &self;
        tracing::info!(rate_limit_per_5_min = self.settings.rate_limit_per_5_min, "DfE delivery started");
        while !*shutdown.borrow() {
            let claimed = match self.claim().await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "DfE delivery cannot claim calls; retrying");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(self.settings.poll_interval) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let sends = claimed.into_iter().map(|call| async move {
                let answer = this.send(&call).await;
                if let Err(e) = this.record(&call, answer).await {
                    tracing::warn!(error = %e, call_id = %call.call_id, "cannot record a DfE answer; the call will be sent again after its lease");
                }
            });
            tokio::select! {
                _ = futures::future::join_all(sends) => {}
                // A call cut off here keeps its lease and is sent again later.
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!("DfE delivery stopped");
    }

    async fn claim(&self) -> Result<Vec<CallRow>, DbError> {
        let (now, limit) = (now(), self.settings.batch);
        let heads = self.db.read(move |conn| store::due_heads(conn, now, limit)).await?;
        if heads.is_empty() {
            return Ok(Vec::new());
        }
        let until = now + chrono_duration(self.settings.lease);
        self.db.write(move |conn| store::lease(conn, &heads, now, until)).await
    }

    /// Waits for a slot of the rate limit, then sends.
    async fn send(&self, call: &CallRow) -> Result<(String, String, Answer), String> {
        loop {
            let wait = self.limit.lock().await.try_take(Instant::now());
            match wait {
                Ok(()) => break,
                Err(wait) => tokio::time::sleep(wait.min(Duration::from_secs(5))).await,
            }
        }
        let declaration_id = match (&call.declaration_type, mapping::is_resolved(&call.path)) {
            (Some(declaration_type), false) => {
                let (p, t) = (call.participant_id.clone(), declaration_type.clone());
                let found = self
                    .db
                    .read(move |conn| store::declaration(conn, &p, &t))
                    .await
                    .map_err(|e| format!("cannot read the declaration: {e}"))?;
                found.and_then(|d| d.dfe_declaration_id)
            }
            _ => None,
        };
        let path = mapping::resolve(&call.path, None, declaration_id.as_deref());
        if !mapping::is_resolved(&path) {
            return Err(format!("{path}: the DfE id it needs is not known yet"));
        }
        let answer = self.client.send(&call.http_method, &path, &call.body).await?;
        Ok((path, call.body.clone(), answer))
    }

    async fn record(&self, call: &CallRow, sent: Result<(String, String, Answer), String>) -> Result<(), DbError> {
        let settings = self.settings.clone();
        let call = call.clone();
        let told_payments = self
            .db
            .write(move |conn| {
                let now = now();
                let attempts = call.attempts + 1;
                let retry_at = |after: Option<Duration>| {
                    now + chrono_duration(
                        after.unwrap_or_else(|| outcome::backoff(settings.initial_backoff, settings.max_backoff, attempts)),
                    )
                };
                let (path, body, answer) = match sent {
                    Ok(sent) => sent,
                    Err(error) => {
                        tracing::warn!(call_id = %call.call_id, %error, attempts, "DfE call failed; will retry");
                        store::record_attempt(
                            conn,
                            call.id,
                            CallState::Pending,
                            attempts,
                            retry_at(None),
                            call.last_http_status,
                            Some(&error),
                            None,
                            None,
                        )?;
                        return Ok(false);
                    }
                };
                let status = i32::from(answer.status);
                let (state, next_attempt_at) = match outcome::classify(answer.status, answer.retry_after.as_deref()) {
                    Outcome::Delivered => {
                        store::record_attempt(
                            conn,
                            call.id,
                            CallState::Delivered,
                            attempts,
                            now,
                            status,
                            None,
                            Some((&path, &body)),
                            Some(now),
                        )?;
                        tracing::info!(call_id = %call.call_id, method = %call.http_method, %path, status, "DfE call delivered");
                        return declaration_answered(conn, &call, &answer.body, now);
                    }
                    Outcome::Retry { after } => {
                        tracing::warn!(call_id = %call.call_id, status, attempts, "DfE call not accepted yet; will retry");
                        (CallState::Pending, retry_at(after))
                    }
                    Outcome::Park => {
                        tracing::error!(call_id = %call.call_id, status, "DfE refused a call: parked for an operator (ListDfeCalls, RetryDfeCall)");
                        (CallState::Parked, now)
                    }
                };
                store::record_attempt(
                    conn,
                    call.id,
                    state,
                    attempts,
                    next_attempt_at,
                    status,
                    Some(&answer.body),
                    Some((&path, &body)),
                    None,
                )?;
                Ok(false)
            })
            .await?;
        if told_payments {
            self.relay_wake.notify_one();
        }
        // A delivered call may make its participant's next call the head.
        self.wake.notify_one();
        Ok(())
    }
}

/// X5, X6: a declaration's POST or void answered: keep the DfE's id and
/// state, and tell payments (RecordDeclarationState) through the outbox.
/// True when a command was queued.
fn declaration_answered(
    conn: &mut steplab_platform::db::DbConn,
    call: &CallRow,
    body: &str,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let Some(declaration_type) = &call.declaration_type else {
        return Ok(false);
    };
    let Some(mut declaration) = store::declaration(conn, &call.participant_id, declaration_type)? else {
        return Ok(false);
    };
    let is_void = call.http_method == "PUT";
    let answered = mapping::declaration_answer(body);
    let (dfe_id, state) = match (answered, &declaration.dfe_declaration_id) {
        (Some((id, state)), _) => (id, state),
        // A void answered without a readable body: the DfE accepted it.
        (None, Some(id)) if is_void => (id.clone(), "voided".to_owned()),
        (None, _) => {
            tracing::error!(call_id = %call.call_id, "the DfE accepted a declaration but its answer has no data.id and state; reconcile to find it");
            return Ok(false);
        }
    };
    declaration.dfe_declaration_id = Some(dfe_id.clone());
    declaration.state = state.clone();
    declaration.updated_at = now;
    store::save_declaration(conn, &DeclarationRow { ..declaration })?;
    let command_id = steplab_platform::ids::new_id();
    let request = payments::RecordDeclarationStateRequest {
        idempotency_key: command_id.clone(),
        participant_id: call.participant_id.clone(),
        declaration_type: declaration_type.clone(),
        dfe_declaration_id: dfe_id,
        state,
    };
    outbox::enqueue(
        conn,
        &NewCommand {
            command_id,
            participant_id: call.participant_id.clone(),
            target: PAYMENTS.into(),
            method: RECORD_DECLARATION_STATE.into(),
            payload: request.encode_to_vec(),
            request_id: call.request_id.clone(),
        },
        now,
    )?;
    Ok(true)
}
