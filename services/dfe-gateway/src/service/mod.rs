//! The gateway's use cases. Each checks the caller's role, validates, and
//! stores its effect and its first answer in one transaction, so a repeated
//! `command_id` returns that answer and changes nothing. No use case waits on
//! the DfE (X8): commands store calls for the delivery worker, woken after
//! the commit.

use crate::domain::mapping::{self, Course, StatusChange};
use crate::domain::policy::{self, Denied};
use crate::domain::{CallState, DfeGatewayRules, RuleViolation};
use crate::store::{self, CallRow, DeclarationRow, NewCall, TrackedRow};
use chrono::{NaiveDate, NaiveDateTime};
use std::sync::Arc;
use steplab_platform::db::{Database, DbConn};
use steplab_platform::error::ServiceError;
use steplab_platform::idempotency::{self, IdempotencyKey, Ran};
use steplab_platform::{Caller, Clock, FieldViolation, FieldViolations, date, ids, observability, paging};
use steplab_proto::steplab::common::v1::CommandAck;
use steplab_proto::steplab::dfe::v1 as pb;
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
    tracing::warn!(target: "audit", sub = %caller.sub, role = caller.role().as_str(), rpc, reason = %d.0, "permission denied");
    d.into()
}

fn ack(command_id: &str, duplicate: bool) -> CommandAck {
    CommandAck { command_id: command_id.to_owned(), duplicate }
}

/// A command's answer: it carries the command's acknowledgement.
trait Acked: prost::Message + Default + Send + 'static {
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
    pb::TrackParticipantResponse,
    pb::ReportStatusChangeResponse,
    pb::DeclareMilestoneResponse,
    pb::VoidMilestoneResponse
);

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

fn not_tracked(participant_id: &str) -> ServiceError {
    RuleViolation::new(
        "PARTICIPANT_NOT_TRACKED",
        format!(
            "participant {participant_id} is not tracked: the participant service sends TrackParticipant when it registers an ECT or mentor"
        ),
    )
    .into()
}

fn course(field: &str, value: i32) -> Result<Course, FieldViolation> {
    match pb::Course::try_from(value) {
        Ok(pb::Course::EcfInduction) => Ok(Course::EcfInduction),
        Ok(pb::Course::EcfMentor) => Ok(Course::EcfMentor),
        _ => Err(FieldViolation::new(field, "must be COURSE_ECF_INDUCTION (an ECT) or COURSE_ECF_MENTOR (a mentor)")),
    }
}

fn course_to_proto(course: &str) -> i32 {
    match Course::parse(course) {
        Some(Course::EcfInduction) => pb::Course::EcfInduction as i32,
        Some(Course::EcfMentor) => pb::Course::EcfMentor as i32,
        None => pb::Course::Unspecified as i32,
    }
}

/// A DfE id: a UUID, kept in canonical lower-case form.
fn dfe_id(field: &str, value: &str) -> Result<Option<String>, FieldViolation> {
    if value.is_empty() {
        return Ok(None);
    }
    uuid::Uuid::parse_str(value).map(|u| Some(u.hyphenated().to_string())).map_err(|_| {
        FieldViolation::new(field, format!("`{}` is not a UUID (the DfE's participant id)", ids::excerpt(value)))
    })
}

fn cohort(field: &str, value: i32) -> Result<i32, FieldViolation> {
    if (2020..=2100).contains(&value) {
        Ok(value)
    } else {
        Err(FieldViolation::new(field, format!("{value} is not a cohort year (2020 to 2100)")))
    }
}

fn schedule(field: &str, value: &str, required: bool) -> Result<String, FieldViolation> {
    if value.is_empty() && !required {
        return Ok(String::new());
    }
    if mapping::DFE_SCHEDULES.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(FieldViolation::new(
            field,
            format!("`{}` is not a DfE schedule identifier (e.g. ecf-standard-september)", ids::excerpt(value)),
        ))
    }
}

fn declaration_type(field: &str, value: &str) -> Result<String, FieldViolation> {
    if mapping::DECLARATION_TYPES.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(FieldViolation::new(
            field,
            format!(
                "`{}` is not a DfE declaration type (started, retained-1..4, completed, extended-1..3)",
                ids::excerpt(value)
            ),
        ))
    }
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
    async fn command<Req, Resp>(
        &self,
        rpc: &'static str,
        command_id: String,
        request: &Req,
        apply: impl FnOnce(&mut DbConn, NaiveDateTime) -> Result<(), ServiceError> + Send + 'static,
    ) -> Result<Resp, ServiceError>
    where
        Req: prost::Message,
        Resp: Acked,
    {
        let key = IdempotencyKey::command("command_id", &command_id)?;
        let request_bytes = request.encode_to_vec();
        let now = self.clock.now();
        let response = self
            .db
            .write(move |conn| {
                let ran =
                    idempotency::once::<DfeGatewayRules, _>(conn, Some(&key), rpc, &request_bytes, now, |conn| {
                        apply(conn, now)?;
                        let response = Resp::acked(ack(&command_id, false));
                        Ok(response)
                    })?;
                Ok::<_, ServiceError>(acked(ran))
            })
            .await?;
        self.wake.notify_one();
        Ok(response)
    }

    /// X1: a participant to report, and their DfE id once known; waiting
    /// calls leave, in order, when the id arrives.
    pub async fn track_participant(
        &self,
        caller: Caller,
        req: pb::TrackParticipantRequest,
    ) -> Result<pb::TrackParticipantResponse, ServiceError> {
        const RPC: &str = "TrackParticipant";
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, RPC, d))?;
        let mut v = FieldViolations::default();
        v.check(IdempotencyKey::command("command_id", &req.command_id));
        let participant_id = v.check(ids::required("participant_id", &req.participant_id));
        let course = v.check(course("course", req.course));
        let dfe_participant_id = v.check(dfe_id("dfe_participant_id", &req.dfe_participant_id));
        let trn_ok = req.trn.is_empty() || (req.trn.len() == 7 && req.trn.chars().all(|c| c.is_ascii_digit()));
        if !trn_ok {
            v.push(FieldViolation::new("trn", "must be 7 digits (or empty)"));
        }
        let cohort = v.check(cohort("cohort", req.cohort));
        let schedule_identifier = v.check(schedule("schedule_identifier", &req.schedule_identifier, false));
        let (participant_id, course, dfe_participant_id, cohort, schedule_identifier) =
            v.finish(|| Some((participant_id?, course?, dfe_participant_id?, cohort?, schedule_identifier?)))?;
        let trn = req.trn.clone();
        self.command(RPC, req.command_id.clone(), &req, move |conn, now| {
            match store::tracked(conn, &participant_id)? {
                None => store::insert_tracked(
                    conn,
                    &TrackedRow {
                        participant_id: participant_id.clone(),
                        course: course.as_str().to_owned(),
                        trn,
                        cohort,
                        dfe_participant_id: dfe_participant_id.clone(),
                        training_status: "active".into(),
                        schedule_identifier,
                        created_at: now,
                        updated_at: now,
                    },
                )?,
                Some(mut row) => {
                    if row.course != course.as_str() {
                        return Err(RuleViolation::new(
                            "COURSE_CHANGED",
                            format!(
                                "participant {participant_id} is tracked on {}: a participant's course cannot change",
                                row.course
                            ),
                        )
                        .into());
                    }
                    row.trn = trn;
                    row.cohort = cohort;
                    if !schedule_identifier.is_empty() {
                        row.schedule_identifier = schedule_identifier;
                    }
                    // An empty id never clears one already known.
                    if dfe_participant_id.is_some() {
                        row.dfe_participant_id.clone_from(&dfe_participant_id);
                    }
                    row.updated_at = now;
                    store::update_tracked(conn, &row)?;
                }
            }
            if let Some(id) = &dfe_participant_id {
                store::release_waiting(conn, &participant_id, id, now)?;
            }
            Ok(())
        })
        .await
    }

    /// X4: one status change becomes one PUT, after the participant's
    /// earlier calls.
    pub async fn report_status_change(
        &self,
        caller: Caller,
        req: pb::ReportStatusChangeRequest,
    ) -> Result<pb::ReportStatusChangeResponse, ServiceError> {
        const RPC: &str = "ReportStatusChange";
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, RPC, d))?;
        let mut v = FieldViolations::default();
        v.check(IdempotencyKey::command("command_id", &req.command_id));
        let participant_id = v.check(ids::required("participant_id", &req.participant_id));
        v.check(date::required("effective_date", req.effective_date.as_ref()));
        let change = match pb::StatusChangeKind::try_from(req.kind) {
            Ok(pb::StatusChangeKind::Defer) => v.check(
                mapping::deferral_reason(&req.reason)
                    .map(|reason| StatusChange::Defer { reason })
                    .ok_or_else(|| FieldViolation::new("reason", "must be a deferral reason of D3 (bereavement, long-term-sickness, parental-leave, career-break, other)")),
            ),
            Ok(pb::StatusChangeKind::Resume) => Some(StatusChange::Resume),
            Ok(pb::StatusChangeKind::Withdraw) => v.check(
                mapping::withdrawal_reason(&req.reason)
                    .map(|reason| StatusChange::Withdraw { reason })
                    .ok_or_else(|| FieldViolation::new("reason", "must be a withdrawal reason of W3")),
            ),
            Ok(pb::StatusChangeKind::ChangeSchedule) => {
                let s = v.check(schedule("schedule_identifier", &req.schedule_identifier, true));
                let c = v.check(cohort("cohort", req.cohort));
                s.zip(c).map(|(schedule_identifier, cohort)| StatusChange::ChangeSchedule { schedule_identifier, cohort })
            }
            _ => {
                v.push(FieldViolation::new("kind", "must be DEFER, RESUME, WITHDRAW or CHANGE_SCHEDULE"));
                None
            }
        };
        let (participant_id, change) = v.finish(|| Some((participant_id?, change?)))?;
        let command_id = req.command_id.clone();
        self.command(RPC, req.command_id.clone(), &req, move |conn, now| {
            let mut tracked = store::tracked(conn, &participant_id)?.ok_or_else(|| not_tracked(&participant_id))?;
            let course = Course::parse(&tracked.course)
                .ok_or_else(|| ServiceError::Internal(format!("stored course `{}` unknown", tracked.course)))?;
            let request = mapping::status_change_request(course, &change);
            store::insert_call(conn, &new_call(&tracked, &command_id, None, request, now))?;
            if let Some(status) = change.training_status_after() {
                tracked.training_status = status.to_owned();
            }
            if let StatusChange::ChangeSchedule { schedule_identifier, .. } = &change {
                tracked.schedule_identifier.clone_from(schedule_identifier);
            }
            tracked.updated_at = now;
            Ok(store::update_tracked(conn, &tracked)?)
        })
        .await
    }

    /// X5: a milestone earned becomes one declaration POST.
    pub async fn declare_milestone(
        &self,
        caller: Caller,
        req: pb::DeclareMilestoneRequest,
    ) -> Result<pb::DeclareMilestoneResponse, ServiceError> {
        const RPC: &str = "DeclareMilestone";
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, RPC, d))?;
        let mut v = FieldViolations::default();
        v.check(IdempotencyKey::command("command_id", &req.command_id));
        let participant_id = v.check(ids::required("participant_id", &req.participant_id));
        let declaration_type = v.check(declaration_type("declaration_type", &req.declaration_type));
        let declaration_date = v.check(date::required("declaration_date", req.declaration_date.as_ref()));
        let evidence_held = if req.evidence_held.is_empty() {
            Some(None)
        } else if mapping::EVIDENCE_HELD.contains(&req.evidence_held.as_str()) {
            Some(Some(req.evidence_held.clone()))
        } else {
            v.push(FieldViolation::new("evidence_held", "is not one of the DfE's evidence_held words"));
            None
        };
        let (participant_id, declaration_type, declaration_date, evidence_held) =
            v.finish(|| Some((participant_id?, declaration_type?, declaration_date?, evidence_held?)))?;
        let command_id = req.command_id.clone();
        self.command(RPC, req.command_id.clone(), &req, move |conn, now| {
            let tracked = store::tracked(conn, &participant_id)?.ok_or_else(|| not_tracked(&participant_id))?;
            let course = Course::parse(&tracked.course)
                .ok_or_else(|| ServiceError::Internal(format!("stored course `{}` unknown", tracked.course)))?;
            if let Some(existing) = store::declaration(conn, &participant_id, &declaration_type)?
                && !matches!(existing.state.as_str(), "to-void" | "voided")
            {
                return Err(RuleViolation::new(
                    "ALREADY_DECLARED",
                    format!(
                        "{declaration_type} is already declared for {participant_id}: void it first (VoidMilestone)"
                    ),
                )
                .into());
            }
            store::save_declaration(
                conn,
                &DeclarationRow {
                    participant_id: participant_id.clone(),
                    declaration_type: declaration_type.clone(),
                    declaration_date,
                    dfe_declaration_id: None,
                    state: "to-submit".into(),
                    updated_at: now,
                },
            )?;
            let request =
                mapping::declaration_request(course, &declaration_type, declaration_date, evidence_held.as_deref());
            Ok(store::insert_call(conn, &new_call(&tracked, &command_id, Some(declaration_type), request, now))?)
        })
        .await
    }

    /// X6: a declaration no longer earned is voided, after its POST.
    pub async fn void_milestone(
        &self,
        caller: Caller,
        req: pb::VoidMilestoneRequest,
    ) -> Result<pb::VoidMilestoneResponse, ServiceError> {
        const RPC: &str = "VoidMilestone";
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, RPC, d))?;
        let mut v = FieldViolations::default();
        v.check(IdempotencyKey::command("command_id", &req.command_id));
        let participant_id = v.check(ids::required("participant_id", &req.participant_id));
        let declaration_type = v.check(declaration_type("declaration_type", &req.declaration_type));
        let (participant_id, declaration_type) = v.finish(|| Some((participant_id?, declaration_type?)))?;
        let command_id = req.command_id.clone();
        self.command(RPC, req.command_id.clone(), &req, move |conn, now| {
            let tracked = store::tracked(conn, &participant_id)?.ok_or_else(|| not_tracked(&participant_id))?;
            let Some(mut declaration) = store::declaration(conn, &participant_id, &declaration_type)?
                .filter(|d| !matches!(d.state.as_str(), "to-void" | "voided"))
            else {
                return Err(RuleViolation::new(
                    "NOT_DECLARED",
                    format!("{declaration_type} is not declared for {participant_id}: there is nothing to void"),
                )
                .into());
            };
            declaration.state = "to-void".into();
            declaration.updated_at = now;
            store::save_declaration(conn, &declaration)?;
            Ok(store::insert_call(
                conn,
                &new_call(&tracked, &command_id, Some(declaration_type), mapping::void_request(), now),
            )?)
        })
        .await
    }

    /// The gateway's outbox, oldest first, filtered (admin).
    pub async fn list_dfe_calls(
        &self,
        caller: Caller,
        req: pb::ListDfeCallsRequest,
    ) -> Result<pb::ListDfeCallsResponse, ServiceError> {
        policy::may_administer(&caller).map_err(|d| denied(&caller, "ListDfeCalls", d))?;
        let mut v = FieldViolations::default();
        let participant_id = v.check(ids::optional("participant_id", &req.participant_id));
        let state = match pb::DfeCallState::try_from(req.state) {
            Ok(pb::DfeCallState::Unspecified) => Some(None),
            Ok(pb::DfeCallState::WaitingForDfeId) => Some(Some(CallState::WaitingForDfeId)),
            Ok(pb::DfeCallState::Pending) => Some(Some(CallState::Pending)),
            Ok(pb::DfeCallState::Delivered) => Some(Some(CallState::Delivered)),
            Ok(pb::DfeCallState::Parked) => Some(Some(CallState::Parked)),
            Err(_) => {
                v.push(FieldViolation::new("state", "is not a DfeCallState"));
                None
            }
        };
        let limit = v.check(paging::page_size(req.page_size));
        let after = match v.check(paging::decode_token(&req.page_token)) {
            Some(Some(key)) => match key.parse::<i64>() {
                Ok(id) => Some(Some(id)),
                Err(_) => {
                    v.push(FieldViolation::new("page_token", "is not a token from a previous response"));
                    None
                }
            },
            Some(None) => Some(None),
            None => None,
        };
        let (participant_id, state, limit, after) = v.finish(|| Some((participant_id?, state?, limit?, after?)))?;
        self.db
            .read(move |conn| {
                let mut rows = store::list_calls(conn, participant_id.as_deref(), state, after, limit + 1)?;
                let more = rows.len() as i64 > limit;
                rows.truncate(limit as usize);
                let next_page_token = if more {
                    rows.last().map(|r| paging::encode_token(&r.id.to_string())).unwrap_or_default()
                } else {
                    String::new()
                };
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
        let now = self.clock.now();
        let call = self
            .db
            .write(move |conn| {
                let call = store::call(conn, &call_id)?.ok_or_else(|| {
                    ServiceError::NotFound(format!("there is no DfE call {call_id}: ListDfeCalls lists them"))
                })?;
                observability::note_participant(&call.participant_id);
                if call.state != CallState::Parked.as_str() {
                    return Err(RuleViolation::new(
                        "NOT_PARKED",
                        format!("call {call_id} is {}, not parked: only a parked call is retried", call.state),
                    )
                    .into());
                }
                store::unpark(conn, call.id, now)?;
                let call =
                    store::call(conn, &call_id)?.ok_or_else(|| ServiceError::Internal("the call vanished".into()))?;
                let dfe_id = store::tracked(conn, &call.participant_id)?.and_then(|t| t.dfe_participant_id);
                Ok::<_, ServiceError>(call_to_proto(call, dfe_id))
            })
            .await?;
        self.wake.notify_one();
        Ok(pb::RetryDfeCallResponse { call: Some(call) })
    }

    /// X1: ECTs and mentors without a DfE id (admin).
    pub async fn list_unreportable(
        &self,
        caller: Caller,
        req: pb::ListUnreportableRequest,
    ) -> Result<pb::ListUnreportableResponse, ServiceError> {
        policy::may_administer(&caller).map_err(|d| denied(&caller, "ListUnreportable", d))?;
        let mut v = FieldViolations::default();
        let limit = v.check(paging::page_size(req.page_size));
        let after = v.check(paging::decode_token(&req.page_token));
        let (limit, after) = v.finish(|| Some((limit?, after?)))?;
        self.db
            .read(move |conn| {
                let mut rows = store::unreportable(conn, after.as_deref(), limit + 1)?;
                let more = rows.len() as i64 > limit;
                rows.truncate(limit as usize);
                let next_page_token = if more {
                    rows.last().map(|(r, _)| paging::encode_token(&r.participant_id)).unwrap_or_default()
                } else {
                    String::new()
                };
                let participants = rows
                    .into_iter()
                    .map(|(row, waiting)| pb::UnreportableParticipant {
                        participant_id: row.participant_id,
                        course: course_to_proto(&row.course),
                        waiting_calls: i32::try_from(waiting).unwrap_or(i32::MAX),
                    })
                    .collect();
                Ok::<_, ServiceError>(pb::ListUnreportableResponse { participants, next_page_token })
            })
            .await
    }

    /// X7: the DfE's participants and declarations read back and compared
    /// with what the gateway decided (admin). Changes nothing.
    pub async fn reconcile(
        &self,
        caller: Caller,
        req: pb::ReconcileRequest,
    ) -> Result<pb::ReconcileResponse, ServiceError> {
        use crate::domain::reconcile::{self as rec, Kind};
        policy::may_administer(&caller).map_err(|d| denied(&caller, "Reconcile", d))?;
        let since: Option<NaiveDate> = date::optional("updated_since", req.updated_since.as_ref())?;
        let Some(dfe) = &self.dfe else {
            return Err(RuleViolation::new(
                "DFE_NOT_CONFIGURED",
                "the DfE sync is off: set STEPLAB_DFE_API_URL and STEPLAB_DFE_TOKEN_FILE to reconcile with the DfE",
            )
            .into());
        };
        let since_text = since.map(mapping::declaration_date_time);
        let unavailable =
            |e: String| ServiceError::Unavailable(format!("the DfE cannot be read now, retry later: {e}"));
        let participants =
            dfe.read_all("/api/v3/participants/ecf", since_text.as_deref()).await.map_err(unavailable)?;
        let declarations =
            dfe.read_all("/api/v3/participant-declarations", since_text.as_deref()).await.map_err(unavailable)?;
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        let theirs: Vec<rec::TheirParticipant> = participants
            .iter()
            .map(|p| {
                let attributes = &p["attributes"];
                let enrolment = &attributes["ecf_enrolments"][0];
                rec::TheirParticipant {
                    dfe_participant_id: text(&p["id"]),
                    trn: text(&attributes["teacher_reference_number"]),
                    training_status: text(&enrolment["training_status"]),
                    schedule_identifier: text(&enrolment["schedule_identifier"]),
                }
            })
            .collect();
        let their_declarations: Vec<rec::TheirDeclaration> = declarations
            .iter()
            .map(|d| rec::TheirDeclaration {
                dfe_declaration_id: text(&d["id"]),
                dfe_participant_id: text(&d["attributes"]["participant_id"]),
                declaration_type: text(&d["attributes"]["declaration_type"]),
                state: text(&d["attributes"]["state"]),
            })
            .collect();
        let (ours, our_declarations) = self
            .db
            .read(|conn| Ok::<_, ServiceError>((store::all_tracked(conn)?, store::all_declarations(conn)?)))
            .await?;
        let ours: Vec<rec::OurParticipant> = ours
            .into_iter()
            .map(|t| rec::OurParticipant {
                participant_id: t.participant_id,
                dfe_participant_id: t.dfe_participant_id,
                trn: t.trn,
                training_status: t.training_status,
                schedule_identifier: t.schedule_identifier,
            })
            .collect();
        let our_declarations: Vec<rec::OurDeclaration> = our_declarations
            .into_iter()
            .map(|d| rec::OurDeclaration {
                participant_id: d.participant_id,
                declaration_type: d.declaration_type,
                dfe_declaration_id: d.dfe_declaration_id,
                state: d.state,
            })
            .collect();
        let report = rec::compare(&ours, &our_declarations, &theirs, &their_declarations, since.is_none());
        let kind = |k: Kind| {
            (match k {
                Kind::Status => pb::DifferenceKind::Status,
                Kind::Schedule => pb::DifferenceKind::Schedule,
                Kind::DeclarationMissingAtDfe => pb::DifferenceKind::DeclarationMissingAtDfe,
                Kind::DeclarationMissingHere => pb::DifferenceKind::DeclarationMissingHere,
                Kind::DeclarationState => pb::DifferenceKind::DeclarationState,
                Kind::ParticipantMissingAtDfe => pb::DifferenceKind::ParticipantMissingAtDfe,
                Kind::MatchAvailable => pb::DifferenceKind::MatchAvailable,
            }) as i32
        };
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        Ok(pb::ReconcileResponse {
            differences: report
                .differences
                .into_iter()
                .map(|d| pb::Difference {
                    kind: kind(d.kind),
                    participant_id: d.participant_id,
                    dfe_participant_id: d.dfe_participant_id,
                    declaration_type: d.declaration_type,
                    dfe_declaration_id: d.dfe_declaration_id,
                    ours: d.ours,
                    theirs: d.theirs,
                    detail: d.detail,
                })
                .collect(),
            matching_participants: count(report.matching_participants),
            matching_declarations: count(report.matching_declarations),
            dfe_participants_read: count(theirs.len()),
            dfe_declarations_read: count(their_declarations.len()),
        })
    }
}
