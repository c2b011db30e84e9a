//! The gRPC adapter. Every RPC answers UNIMPLEMENTED until the content-release issue
//! builds it, so callers can code against v1 today and get a clear answer.

use steplab_proto::steplab::content::v1 as pb;
use steplab_proto::steplab::content::v1::content_release_service_server::ContentReleaseService;
use tonic::{Request, Response, Status};

#[derive(Debug, Default)]
pub struct ContentReleaseGrpc;

fn not_yet(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is not available yet: it arrives with the content-release issue"
    ))
}

#[tonic::async_trait]
impl ContentReleaseService for ContentReleaseGrpc {
    async fn enrol_learner(
        &self,
        _: Request<pb::EnrolLearnerRequest>,
    ) -> Result<Response<pb::EnrolLearnerResponse>, Status> {
        Err(not_yet("EnrolLearner"))
    }

    async fn place_hold(
        &self,
        _: Request<pb::PlaceHoldRequest>,
    ) -> Result<Response<pb::PlaceHoldResponse>, Status> {
        Err(not_yet("PlaceHold"))
    }

    async fn lift_hold(
        &self,
        _: Request<pb::LiftHoldRequest>,
    ) -> Result<Response<pb::LiftHoldResponse>, Status> {
        Err(not_yet("LiftHold"))
    }

    async fn revoke_access(
        &self,
        _: Request<pb::RevokeAccessRequest>,
    ) -> Result<Response<pb::RevokeAccessResponse>, Status> {
        Err(not_yet("RevokeAccess"))
    }

    async fn restore_access(
        &self,
        _: Request<pb::RestoreAccessRequest>,
    ) -> Result<Response<pb::RestoreAccessResponse>, Status> {
        Err(not_yet("RestoreAccess"))
    }

    async fn set_release_start(
        &self,
        _: Request<pb::SetReleaseStartRequest>,
    ) -> Result<Response<pb::SetReleaseStartResponse>, Status> {
        Err(not_yet("SetReleaseStart"))
    }

    async fn set_participant_scope(
        &self,
        _: Request<pb::SetParticipantScopeRequest>,
    ) -> Result<Response<pb::SetParticipantScopeResponse>, Status> {
        Err(not_yet("SetParticipantScope"))
    }

    async fn get_release_state(
        &self,
        _: Request<pb::GetReleaseStateRequest>,
    ) -> Result<Response<pb::GetReleaseStateResponse>, Status> {
        Err(not_yet("GetReleaseState"))
    }

    async fn record_module_access(
        &self,
        _: Request<pb::RecordModuleAccessRequest>,
    ) -> Result<Response<pb::RecordModuleAccessResponse>, Status> {
        Err(not_yet("RecordModuleAccess"))
    }

    async fn record_attendance(
        &self,
        _: Request<pb::RecordAttendanceRequest>,
    ) -> Result<Response<pb::RecordAttendanceResponse>, Status> {
        Err(not_yet("RecordAttendance"))
    }

    async fn list_releases(
        &self,
        _: Request<pb::ListReleasesRequest>,
    ) -> Result<Response<pb::ListReleasesResponse>, Status> {
        Err(not_yet("ListReleases"))
    }

    async fn get_curriculum(
        &self,
        _: Request<pb::GetCurriculumRequest>,
    ) -> Result<Response<pb::GetCurriculumResponse>, Status> {
        Err(not_yet("GetCurriculum"))
    }
}
