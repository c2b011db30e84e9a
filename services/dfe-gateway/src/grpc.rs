//! The gRPC adapter: each handler takes the caller, calls the use case, and
//! maps the error. No rules and no SQL here. A handler whose request names a
//! participant notes it first, so the call's audit entry names it even when
//! the call is refused.

use crate::service::Gateway;
use steplab_platform::{Caller, observability};
use steplab_proto::steplab::dfe::v1 as pb;
use steplab_proto::steplab::dfe::v1::dfe_gateway_service_server::DfeGatewayService;
use tonic::{Request, Response, Status};

pub struct GatewayGrpc {
    gateway: Gateway,
}

impl GatewayGrpc {
    pub fn new(gateway: Gateway) -> Self {
        Self { gateway }
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl DfeGatewayService for GatewayGrpc {
    async fn track_participant(
        &self,
        request: Request<pb::TrackParticipantRequest>,
    ) -> Answer<pb::TrackParticipantResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.gateway.track_participant(caller, request.into_inner()).await?))
    }

    async fn report_status_change(
        &self,
        request: Request<pb::ReportStatusChangeRequest>,
    ) -> Answer<pb::ReportStatusChangeResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.gateway.report_status_change(caller, request.into_inner()).await?))
    }

    async fn declare_milestone(
        &self,
        request: Request<pb::DeclareMilestoneRequest>,
    ) -> Answer<pb::DeclareMilestoneResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.gateway.declare_milestone(caller, request.into_inner()).await?))
    }

    async fn void_milestone(&self, request: Request<pb::VoidMilestoneRequest>) -> Answer<pb::VoidMilestoneResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.gateway.void_milestone(caller, request.into_inner()).await?))
    }

    async fn list_dfe_calls(&self, request: Request<pb::ListDfeCallsRequest>) -> Answer<pb::ListDfeCallsResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.gateway.list_dfe_calls(caller, request.into_inner()).await?))
    }

    async fn retry_dfe_call(&self, request: Request<pb::RetryDfeCallRequest>) -> Answer<pb::RetryDfeCallResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.gateway.retry_dfe_call(caller, request.into_inner()).await?))
    }

    async fn list_unreportable(
        &self,
        request: Request<pb::ListUnreportableRequest>,
    ) -> Answer<pb::ListUnreportableResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.gateway.list_unreportable(caller, request.into_inner()).await?))
    }

    async fn reconcile(&self, request: Request<pb::ReconcileRequest>) -> Answer<pb::ReconcileResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.gateway.reconcile(caller, request.into_inner()).await?))
    }
}
