//! The operator's view of the gateway's outbox (admin): the calls, a parked
//! call sent again, and the participants that cannot be reported yet (X1).

use super::{Gateway, denied};
use crate::convert::{self, CallsQuery, UnreportableQuery};
use crate::domain::commands as rules;
use crate::domain::{CallState, DfeGatewayRules, policy};
use crate::store::{self, CallRow};
use chrono::NaiveDateTime;
use prost::Message;
use steplab_platform::db::DbConn;
use steplab_platform::error::ServiceError;
use steplab_platform::idempotency::{self, IdempotencyKey, Ran};
use steplab_platform::paging::Pages;
use steplab_platform::{Caller, ids, observability, paging};
use steplab_proto::steplab::dfe::v1 as pb;

fn timestamp(t: NaiveDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.and_utc().timestamp(), nanos: t.and_utc().timestamp_subsec_nanos() as i32 }
}

fn call_to_proto(call: CallRow, dfe_participant_id: Option<String>) -> pb::DfeCall {
    let state = match CallState::parse(&call.state) {
        Some(CallState::WaitingForDfeId) => pb::DfeCallState::WaitingForDfeId,
        Some(CallState::Pending) => pb::DfeCallState::Pending,
        Some(CallState::Delivered) => pb::DfeCallState::Delivered,
        Some(CallState::Parked) => pb::DfeCallState::Parked,
        None => pb::DfeCallState::Unspecified,
    } as i32;
    pb::DfeCall {
        call_id: call.call_id,
        participant_id: call.participant_id,
        dfe_participant_id: dfe_participant_id.unwrap_or_default(),
        http_method: call.http_method,
        path: call.path,
        body: call.body,
        state,
        attempts: call.attempts,
        last_http_status: call.last_http_status,
        last_error: call.last_error.unwrap_or_default(),
        create_time: Some(timestamp(call.created_at)),
        deliver_time: call.delivered_at.map(timestamp),
    }
}

impl Gateway {
    /// The gateway's outbox, oldest first, filtered (admin).
    pub async fn list_dfe_calls(
        &self,
        caller: Caller,
        req: pb::ListDfeCallsRequest,
    ) -> Result<pb::ListDfeCallsResponse, ServiceError> {
        policy::may_administer(&caller).map_err(|d| denied(&caller, "ListDfeCalls", d))?;
        let pages = Pages::of(&caller.sub, &req);
        let CallsQuery { participant_id, state, limit, after } = CallsQuery::read(&req, &pages)?;
        self.db
            .read(move |conn| {
                let mut rows = store::list_calls(conn, participant_id.as_deref(), state, after, limit + 1)?;
                let next = paging::take_page(&mut rows, limit, |r| r.id.to_string());
                let next_page_token = pages.token(next.as_deref());
                let mut calls = Vec::with_capacity(rows.len());
                for row in rows {
                    let dfe_id = store::tracked(conn, &row.participant_id)?.and_then(|t| t.dfe_participant_id);
                    calls.push(call_to_proto(row, dfe_id));
                }
                Ok(pb::ListDfeCallsResponse { calls, next_page_token })
            })
            .await
    }

    /// A parked call is sent again (admin).
    pub async fn retry_dfe_call(
        &self,
        caller: Caller,
        req: pb::RetryDfeCallRequest,
    ) -> Result<pb::RetryDfeCallResponse, ServiceError> {
        policy::may_administer(&caller).map_err(|d| denied(&caller, "RetryDfeCall", d))?;
        let call_id = ids::required("call_id", &req.call_id)?;
        let key = IdempotencyKey::parse("idempotency_key", &caller.sub, &req.idempotency_key)
            .map_err(|v| ServiceError::InvalidArgument(v.into()))?;
        let request = req.encode_to_vec();
        let now = self.clock.now();
        let answer = self
            .db
            .write(move |conn| {
                idempotency::once::<DfeGatewayRules, _>(conn, key.as_ref(), "RetryDfeCall", &request, now, |conn| {
                    retry(conn, &call_id, now)
                })
                .map(Ran::into_inner)
            })
            .await?;
        self.wake.notify_one();
        Ok(answer)
    }

    /// X1: ECTs and mentors without a DfE id (admin).
    pub async fn list_unreportable(
        &self,
        caller: Caller,
        req: pb::ListUnreportableRequest,
    ) -> Result<pb::ListUnreportableResponse, ServiceError> {
        policy::may_administer(&caller).map_err(|d| denied(&caller, "ListUnreportable", d))?;
        let pages = Pages::of(&caller.sub, &req);
        let UnreportableQuery { limit, after } = UnreportableQuery::read(&req, &pages)?;
        self.db
            .read(move |conn| {
                let mut rows = store::unreportable(conn, after.as_deref(), limit + 1)?;
                let next = paging::take_page(&mut rows, limit, |(r, _)| r.participant_id.clone());
                let next_page_token = pages.token(next.as_deref());
                let participants = rows
                    .into_iter()
                    .map(|(row, waiting)| pb::UnreportableParticipant {
                        participant_id: row.participant_id,
                        course: convert::course_to_proto(&row.course),
                        waiting_calls: i32::try_from(waiting).unwrap_or(i32::MAX),
                    })
                    .collect();
                Ok::<_, ServiceError>(pb::ListUnreportableResponse { participants, next_page_token })
            })
            .await
    }
}

/// Sends a parked call again: pending now, its attempts counted afresh.
fn retry(conn: &mut DbConn, call_id: &str, now: NaiveDateTime) -> Result<pb::RetryDfeCallResponse, ServiceError> {
    let call = store::call(conn, call_id)?.ok_or_else(|| {
        ServiceError::not_found(
            "dfe_call",
            call_id.to_owned(),
            format!("there is no DfE call {call_id}: ListDfeCalls lists them"),
        )
    })?;
    observability::note_participant(&call.participant_id);
    rules::may_retry(call_id, &call.state)?;
    store::unpark(conn, call.id, now)?;
    // What `unpark` stored, without reading the row back.
    let call = CallRow { state: CallState::Pending.as_str().to_owned(), attempts: 0, next_attempt_at: now, ..call };
    let dfe_id = store::tracked(conn, &call.participant_id)?.and_then(|t| t.dfe_participant_id);
    Ok(pb::RetryDfeCallResponse { call: Some(call_to_proto(call, dfe_id)) })
}
