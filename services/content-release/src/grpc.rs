//! The gRPC adapter: each handler takes the caller, calls the use case, and
//! maps the error. No rules and no SQL here.
//! A handler whose request names a participant notes it first, so the
//! call's audit entry names it even when the call is refused.

use crate::service::ContentRelease;
use steplab_platform::observability;
use steplab_platform::{Caller, audit};
use steplab_proto::steplab::common::v1 as common;
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

#[tonic::async_trait]
impl ContentReleaseService for ContentReleaseGrpc {
    async fn enrol_learner(&self, request: Request<pb::EnrolLearnerRequest>) -> Answer<pb::EnrolLearnerResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        let ack = self.service.enrol_learner(caller, request.into_inner()).await?;
        Ok(Response::new(pb::EnrolLearnerResponse { ack: Some(ack) }))
    }

    async fn place_hold(&self, request: Request<pb::PlaceHoldRequest>) -> Answer<pb::PlaceHoldResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        let ack = self.service.place_hold(caller, request.into_inner()).await?;
        Ok(Response::new(pb::PlaceHoldResponse { ack: Some(ack) }))
    }

    async fn lift_hold(&self, request: Request<pb::LiftHoldRequest>) -> Answer<pb::LiftHoldResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        let ack = self.service.lift_hold(caller, request.into_inner()).await?;
        Ok(Response::new(pb::LiftHoldResponse { ack: Some(ack) }))
    }

    async fn revoke_access(&self, request: Request<pb::RevokeAccessRequest>) -> Answer<pb::RevokeAccessResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        let ack = self.service.revoke_access(caller, request.into_inner()).await?;
        Ok(Response::new(pb::RevokeAccessResponse { ack: Some(ack) }))
    }

    async fn restore_access(&self, request: Request<pb::RestoreAccessRequest>) -> Answer<pb::RestoreAccessResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        let ack = self.service.restore_access(caller, request.into_inner()).await?;
        Ok(Response::new(pb::RestoreAccessResponse { ack: Some(ack) }))
    }

    async fn set_release_start(
        &self,
        request: Request<pb::SetReleaseStartRequest>,
    ) -> Answer<pb::SetReleaseStartResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        let ack = self.service.set_release_start(caller, request.into_inner()).await?;
        Ok(Response::new(pb::SetReleaseStartResponse { ack: Some(ack) }))
    }

    async fn set_participant_scope(
        &self,
        request: Request<pb::SetParticipantScopeRequest>,
    ) -> Answer<pb::SetParticipantScopeResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        let ack = self.service.set_participant_scope(caller, request.into_inner()).await?;
        Ok(Response::new(pb::SetParticipantScopeResponse { ack: Some(ack) }))
    }

    async fn get_release_state(
        &self,
        request: Request<pb::GetReleaseStateRequest>,
    ) -> Answer<pb::GetReleaseStateResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.service.get_release_state(caller, request.into_inner()).await?))
    }

    async fn record_module_access(
        &self,
        request: Request<pb::RecordModuleAccessRequest>,
    ) -> Answer<pb::RecordModuleAccessResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.service.record_module_access(caller, request.into_inner()).await?))
    }

    async fn record_attendance(
        &self,
        request: Request<pb::RecordAttendanceRequest>,
    ) -> Answer<pb::RecordAttendanceResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.service.record_attendance(caller, request.into_inner()).await?))
    }

    async fn list_releases(&self, request: Request<pb::ListReleasesRequest>) -> Answer<pb::ListReleasesResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.service.list_releases(caller, request.into_inner()).await?))
    }

    async fn get_curriculum(&self, request: Request<pb::GetCurriculumRequest>) -> Answer<pb::GetCurriculumResponse> {
        // Any authenticated caller: the interceptor has already checked the token.
        Caller::from_request(&request)?;
        Ok(Response::new(self.service.get_curriculum(request.into_inner())?))
    }

    async fn list_audit_entries(
        &self,
        request: Request<common::ListAuditEntriesRequest>,
    ) -> Answer<common::ListAuditEntriesResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(audit::list_entries(self.service.database(), &caller, request.into_inner()).await?))
    }
}
