//! The gRPC adapter: each handler takes the caller, calls the use case, and
//! maps the error. No rules and no SQL here. A handler whose request names a
//! participant notes it first, so the call's audit entry names it even when
//! the call is refused.

use crate::service::Gateway;
use steplab_proto::steplab::dfe::v1 as pb;
use steplab_proto::steplab::dfe::v1::dfe_gateway_service_server::DfeGatewayService;

pub struct GatewayGrpc {
    gateway: Gateway,
}

impl GatewayGrpc {
    pub fn new(gateway: Gateway) -> Self {
        Self { gateway }
    }
}

steplab_platform::delegating_grpc_service! {
    impl DfeGatewayService for GatewayGrpc, calling gateway;
    rpc track_participant(pb::TrackParticipantRequest) -> pb::TrackParticipantResponse => track_participant, noting participant_id;
    rpc report_status_change(pb::ReportStatusChangeRequest) -> pb::ReportStatusChangeResponse => report_status_change, noting participant_id;
    rpc declare_milestone(pb::DeclareMilestoneRequest) -> pb::DeclareMilestoneResponse => declare_milestone, noting participant_id;
    rpc void_milestone(pb::VoidMilestoneRequest) -> pb::VoidMilestoneResponse => void_milestone, noting participant_id;
    rpc apply_commands(pb::ApplyCommandsRequest) -> pb::ApplyCommandsResponse => apply_commands;
    rpc list_dfe_calls(pb::ListDfeCallsRequest) -> pb::ListDfeCallsResponse => list_dfe_calls, noting participant_id;
    rpc retry_dfe_call(pb::RetryDfeCallRequest) -> pb::RetryDfeCallResponse => retry_dfe_call;
    rpc list_unreportable(pb::ListUnreportableRequest) -> pb::ListUnreportableResponse => list_unreportable;
    rpc reconcile(pb::ReconcileRequest) -> pb::ReconcileResponse => reconcile;
}
