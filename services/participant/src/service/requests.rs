//! Approval requests (W9, C2, W6, D3): an ECF Lead asks, a DPL decides, and
//! the change happens on approval only. Also the notifications an ECF Lead
//! reads.

use super::apply::apply;
use super::shown::changed;
use super::withdrawal::{keeping_mentor, reinstatement};
use super::{Call, Registry, idempotency_key, load, load_in_reach, mentor_of_record_now, place, within_reach};
use crate::convert::{self, NewRequest};
use crate::domain::handover;
use crate::domain::lifecycle::{self, Decision};
use crate::domain::policy;
use crate::domain::preconditions;
use crate::domain::records::{ApprovalRequest, RequestedChange};
use crate::domain::requests::RequestStatus;
use crate::store;
use steplab_platform::error::ServiceError;
use steplab_platform::ids::DeliveryPartnerId;
use steplab_platform::{Caller, FieldViolations};
use steplab_proto::steplab::participant::v1 as pb;

impl Registry {
    /// Creates a pending request for a DPL; `answer` wraps it in the RPC's
    /// response, which is what a repeat of the call returns.
    async fn request<Req, Resp>(
        &self,
        call: Call<'_, Req>,
        new: NewRequest,
        answer: fn(pb::ApprovalRequest) -> Resp,
    ) -> Result<Resp, ServiceError>
    where
        Req: prost::Message,
        Resp: prost::Message + super::Effected + Default + Send + 'static,
    {
        let Call { caller, rpc, request: req, request_id, validate_only } = call;
        let key = idempotency_key(&caller, request_id)?;
        let (today, now) = (self.clock.today(), self.clock.now());
        self.mutate(key, validate_only, rpc, req, move |conn| {
            let (p, v) = load_in_reach(conn, &caller, &new.participant_id, today)?;
            policy::may_manage_lifecycle(&caller, place(&v), "ask for this change")?;
            preconditions::may_ask_for(&p, &v, new.change, today)?;
            if new.change.with_mentor() {
                let mentor = mentor_of_record_now(conn, &p, today)?;
                handover::check_reinstate_with_mentor(&p, mentor.as_ref(), today)?;
            }
            let kind = new.change.kind();
            preconditions::none_pending(store::has_request(conn, &p.id, kind, RequestStatus::Pending)?)?;
            let request = ApprovalRequest {
                id: convert::new_id(),
                change: new.change,
                status: RequestStatus::Pending,
                participant_id: p.id.clone(),
                delivery_partner_id: v.delivery_partner_id,
                note: new.note,
                requested_by: caller.sub.clone(),
                created_at: now,
                decision: None,
            };
            store::insert_request(conn, &request)?;
            Ok(answer(convert::approval_request(request)))
        })
        .await
    }

    pub async fn request_reinstatement(
        &self,
        caller: Caller,
        req: pb::RequestReinstatementRequest,
    ) -> Result<pb::RequestReinstatementResponse, ServiceError> {
        let new = convert::request_reinstatement(&req)?;
        let call = Call {
            caller,
            rpc: "RequestReinstatement",
            request: &req,
            request_id: &req.idempotency_key,
            validate_only: req.validate_only,
        };
        self.request(call, new, |r| pb::RequestReinstatementResponse { effects: None, request: Some(r) }).await
    }

    pub async fn request_release_start_change(
        &self,
        caller: Caller,
        req: pb::RequestReleaseStartChangeRequest,
    ) -> Result<pb::RequestReleaseStartChangeResponse, ServiceError> {
        let new = convert::request_release_start_change(&req)?;
        let call = Call {
            caller,
            rpc: "RequestReleaseStartChange",
            request: &req,
            request_id: &req.idempotency_key,
            validate_only: req.validate_only,
        };
        self.request(call, new, |r| pb::RequestReleaseStartChangeResponse { effects: None, request: Some(r) }).await
    }

    pub async fn request_keep_mentor(
        &self,
        caller: Caller,
        req: pb::RequestKeepMentorRequest,
    ) -> Result<pb::RequestKeepMentorResponse, ServiceError> {
        let new = convert::request_keep_mentor(&req)?;
        let call = Call {
            caller,
            rpc: "RequestKeepMentor",
            request: &req,
            request_id: &req.idempotency_key,
            validate_only: req.validate_only,
        };
        self.request(call, new, |r| pb::RequestKeepMentorResponse { effects: None, request: Some(r) }).await
    }

    pub async fn request_long_deferral(
        &self,
        caller: Caller,
        req: pb::RequestLongDeferralRequest,
    ) -> Result<pb::RequestLongDeferralResponse, ServiceError> {
        let new = convert::request_long_deferral(&req)?;
        let call = Call {
            caller,
            rpc: "RequestLongDeferral",
            request: &req,
            request_id: &req.idempotency_key,
            validate_only: req.validate_only,
        };
        self.request(call, new, |r| pb::RequestLongDeferralResponse { effects: None, request: Some(r) }).await
    }

    pub async fn decide_request(
        &self,
        caller: Caller,
        req: pb::DecideRequestRequest,
    ) -> Result<pb::DecideRequestResponse, ServiceError> {
        let decision = convert::decide_request(&req)?;
        let key = idempotency_key(&caller, &req.idempotency_key)?;
        let (today, now) = (self.clock.today(), self.clock.now());
        policy::may_decide_somewhere(&caller)?;
        self.mutate(key, req.validate_only, "DecideRequest", &req, move |conn| {
            let id = decision.request_id.as_str();
            let found = store::find_request(conn, id)?;
            let reaches = |r: &ApprovalRequest| policy::reaches_delivery_partner(&caller, &r.delivery_partner_id);
            let request = within_reach(&caller, found, reaches, "request", id)?;
            policy::may_decide(&caller, &request.delivery_partner_id)?;
            preconditions::still_pending(&request)?;
            let p = load(conn, &request.participant_id)?;
            let status = if decision.approve { RequestStatus::Approved } else { RequestStatus::Refused };
            store::decide_request(conn, id, status, &caller.sub, &decision.note, now)?;
            if decision.approve {
                let mut touched = vec![p.clone()];
                let change = match request.change {
                    RequestedChange::Reinstatement { with_mentor } => {
                        let (change, mentor) = reinstatement(conn, &p, id, with_mentor, today)?;
                        touched.extend(mentor);
                        change
                    }
                    RequestedChange::ReleaseStartChange { release_start } => {
                        lifecycle::change_release_start(&p, id, release_start, today)?
                    }
                    RequestedChange::KeepMentor => keeping_mentor(&p, id, today)?,
                    // D3: the approval itself is the change: DeferParticipant and
                    // ChangeReturnDate read it (store::approved_latest_return).
                    RequestedChange::LongDeferral { .. } => Decision::default(),
                };
                apply(conn, &caller, &touched, change, now, today)?;
            }
            let decided = store::find_request(conn, id)?
                .ok_or_else(|| ServiceError::Internal(format!("request {id} vanished")))?;
            let (participant, _) = changed(conn, &p.id, vec![], today)?;
            Ok(pb::DecideRequestResponse {
                effects: None,
                request: Some(convert::approval_request(decided)),
                participant: Some(participant),
            })
        })
        .await
    }

    pub async fn list_requests(
        &self,
        caller: Caller,
        req: pb::ListRequestsRequest,
    ) -> Result<pb::ListRequestsResponse, ServiceError> {
        let mut v = FieldViolations::default();
        let status = v.check(convert::request_status("status", req.status));
        let size = v.check(steplab_platform::paging::page_size(req.page_size));
        let after = v.check(steplab_platform::paging::decode_token(&req.page_token));
        let (status, size, after) = v.finish(|| Some((status?, size?, after?)))?;
        let scope = policy::delivery_partner_scope(&caller, None)?;
        self.db
            .read(move |conn| {
                let (requests, next) = store::list_requests(conn, &scope, status, after, size)?;
                Ok(pb::ListRequestsResponse {
                    requests: requests.into_iter().map(convert::approval_request).collect(),
                    next_page_token: next.map(|k| steplab_platform::paging::encode_token(&k)).unwrap_or_default(),
                })
            })
            .await
    }

    pub async fn list_notifications(
        &self,
        caller: Caller,
        req: pb::ListNotificationsRequest,
    ) -> Result<pb::ListNotificationsResponse, ServiceError> {
        let mut v = FieldViolations::default();
        let dp = v.check(DeliveryPartnerId::parse_optional("delivery_partner_id", &req.delivery_partner_id));
        let size = v.check(steplab_platform::paging::page_size(req.page_size));
        let after = v.check(steplab_platform::paging::decode_token(&req.page_token));
        let (dp, size, after) = v.finish(|| Some((dp?, size?, after?)))?;
        let scope = policy::delivery_partner_scope(&caller, dp.as_deref())?;
        self.db
            .read(move |conn| {
                let (notifications, next) = store::list_notifications(conn, &scope, after, size)?;
                Ok(pb::ListNotificationsResponse {
                    notifications: notifications.into_iter().map(convert::notification).collect(),
                    next_page_token: next.map(|k| steplab_platform::paging::encode_token(&k)).unwrap_or_default(),
                })
            })
            .await
    }
}
