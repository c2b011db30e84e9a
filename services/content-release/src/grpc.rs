//! The gRPC adapter: each handler takes the caller, calls the use case, and
//! maps the error. No rules and no SQL here.
//! A handler whose request names a participant notes it first, so the
//! call's audit entry names it even when the call is refused.

use crate::service::ContentRelease;
use steplab_platform::{Caller, audit};
use steplab_proto::steplab::content::v1 as pb;
use steplab_proto::steplab::content::v1::content_release_service_server::ContentReleaseService;
use tonic::{Request, Response, Status};

pub struct ContentReleaseGrpc {
    service: ContentRelease,
}

impl ContentReleaseGrpc {
    pub fn new(service: ContentRelease) -> Self {
        Self { service }
    }
}

type Answer<T> = Result<Response<T>, Status>;

steplab_platform::delegating_grpc_service! {
    impl ContentReleaseService for ContentReleaseGrpc, calling service;
    rpc enrol_learner(pb::EnrolLearnerRequest) -> pb::EnrolLearnerResponse { ack } => enrol_learner, noting participant_id;
    rpc place_hold(pb::PlaceHoldRequest) -> pb::PlaceHoldResponse { ack } => place_hold, noting participant_id;
    rpc lift_hold(pb::LiftHoldRequest) -> pb::LiftHoldResponse { ack } => lift_hold, noting participant_id;
    rpc revoke_access(pb::RevokeAccessRequest) -> pb::RevokeAccessResponse { ack } => revoke_access, noting participant_id;
    rpc restore_access(pb::RestoreAccessRequest) -> pb::RestoreAccessResponse { ack } => restore_access, noting participant_id;
    rpc set_release_start(pb::SetReleaseStartRequest) -> pb::SetReleaseStartResponse { ack } => set_release_start, noting participant_id;
    rpc set_participant_scope(pb::SetParticipantScopeRequest) -> pb::SetParticipantScopeResponse { ack } => set_participant_scope, noting participant_id;
    rpc get_release_state(pb::GetReleaseStateRequest) -> pb::GetReleaseStateResponse => get_release_state, noting participant_id;
    rpc record_module_access(pb::RecordModuleAccessRequest) -> pb::RecordModuleAccessResponse => record_module_access, noting participant_id;
    rpc record_attendance(pb::RecordAttendanceRequest) -> pb::RecordAttendanceResponse => record_attendance, noting participant_id;
    rpc list_releases(pb::ListReleasesRequest) -> pb::ListReleasesResponse => list_releases;
    rpc preview_commands(pb::PreviewCommandsRequest) -> pb::PreviewCommandsResponse => preview_commands;
    // Each command is audited as its own RPC, with its own participant.
    rpc apply_commands(pb::ApplyCommandsRequest) -> pb::ApplyCommandsResponse => apply_commands;
    handwritten {

        async fn get_curriculum(&self, request: Request<pb::GetCurriculumRequest>) -> Answer<pb::GetCurriculumResponse> {
            // Any authenticated caller: the interceptor has already checked the token.
            Caller::from_request(&request)?;
            Ok(Response::new(self.service.get_curriculum(request.into_inner())?))
        }

        async fn list_audit_entries(
            &self,
            request: Request<pb::ListAuditEntriesRequest>,
        ) -> Answer<pb::ListAuditEntriesResponse> {
            let caller = Caller::from_request(&request)?;
            Ok(Response::new(audit::list_entries(self.service.database(), &caller, request.into_inner()).await?.into()))
        }
    }
}
