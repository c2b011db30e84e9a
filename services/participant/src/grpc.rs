//! The gRPC adapter: each handler takes the caller, calls the use case, and
//! maps the error. No rules and no SQL here. RPCs whose issue is still open
//! answer UNIMPLEMENTED.

use crate::service::Registry;
use std::pin::Pin;
use steplab_platform::Caller;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_proto::steplab::participant::v1::participant_service_server::ParticipantService;
use tonic::{Request, Response, Status};

pub struct ParticipantGrpc {
    registry: Registry,
}

impl ParticipantGrpc {
    pub fn new(registry: Registry) -> Self {
        Self { registry }
    }
}

fn not_yet(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is not available yet: it arrives with the participant lifecycle"
    ))
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl ParticipantService for ParticipantGrpc {
    async fn create_delivery_partner(
        &self,
        request: Request<pb::CreateDeliveryPartnerRequest>,
    ) -> Answer<pb::CreateDeliveryPartnerResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.registry
                .create_delivery_partner(caller, request.into_inner())
                .await?,
        ))
    }

    async fn create_school(
        &self,
        request: Request<pb::CreateSchoolRequest>,
    ) -> Answer<pb::CreateSchoolResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.registry
                .create_school(caller, request.into_inner())
                .await?,
        ))
    }

    async fn register_participant(
        &self,
        request: Request<pb::RegisterParticipantRequest>,
    ) -> Answer<pb::RegisterParticipantResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.registry.register(caller, request.into_inner()).await?,
        ))
    }

    async fn get_participant(
        &self,
        request: Request<pb::GetParticipantRequest>,
    ) -> Answer<pb::GetParticipantResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.registry.get(caller, request.into_inner()).await?,
        ))
    }

    async fn list_participants(
        &self,
        request: Request<pb::ListParticipantsRequest>,
    ) -> Answer<pb::ListParticipantsResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.registry.list(caller, request.into_inner()).await?,
        ))
    }

    async fn assign_mentor(
        &self,
        request: Request<pb::AssignMentorRequest>,
    ) -> Answer<pb::AssignMentorResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.registry
                .assign_mentor(caller, request.into_inner())
                .await?,
        ))
    }

    async fn get_participant_history(
        &self,
        request: Request<pb::GetParticipantHistoryRequest>,
    ) -> Answer<pb::GetParticipantHistoryResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.registry.history(caller, request.into_inner()).await?,
        ))
    }

    async fn move_school(
        &self,
        _: Request<pb::MoveSchoolRequest>,
    ) -> Answer<pb::MoveSchoolResponse> {
        Err(not_yet("MoveSchool"))
    }

    async fn pause_participant(
        &self,
        _: Request<pb::PauseParticipantRequest>,
    ) -> Answer<pb::PauseParticipantResponse> {
        Err(not_yet("PauseParticipant"))
    }

    async fn extend_pause(
        &self,
        _: Request<pb::ExtendPauseRequest>,
    ) -> Answer<pb::ExtendPauseResponse> {
        Err(not_yet("ExtendPause"))
    }

    async fn end_pause(&self, _: Request<pb::EndPauseRequest>) -> Answer<pb::EndPauseResponse> {
        Err(not_yet("EndPause"))
    }

    async fn defer_participant(
        &self,
        _: Request<pb::DeferParticipantRequest>,
    ) -> Answer<pb::DeferParticipantResponse> {
        Err(not_yet("DeferParticipant"))
    }

    async fn change_return_date(
        &self,
        _: Request<pb::ChangeReturnDateRequest>,
    ) -> Answer<pb::ChangeReturnDateResponse> {
        Err(not_yet("ChangeReturnDate"))
    }

    async fn record_return(
        &self,
        _: Request<pb::RecordReturnRequest>,
    ) -> Answer<pb::RecordReturnResponse> {
        Err(not_yet("RecordReturn"))
    }

    async fn withdraw_participant(
        &self,
        _: Request<pb::WithdrawParticipantRequest>,
    ) -> Answer<pb::WithdrawParticipantResponse> {
        Err(not_yet("WithdrawParticipant"))
    }

    async fn request_reinstatement(
        &self,
        _: Request<pb::RequestReinstatementRequest>,
    ) -> Answer<pb::RequestReinstatementResponse> {
        Err(not_yet("RequestReinstatement"))
    }

    async fn request_release_start_change(
        &self,
        _: Request<pb::RequestReleaseStartChangeRequest>,
    ) -> Answer<pb::RequestReleaseStartChangeResponse> {
        Err(not_yet("RequestReleaseStartChange"))
    }

    async fn request_keep_mentor(
        &self,
        _: Request<pb::RequestKeepMentorRequest>,
    ) -> Answer<pb::RequestKeepMentorResponse> {
        Err(not_yet("RequestKeepMentor"))
    }

    async fn decide_request(
        &self,
        _: Request<pb::DecideRequestRequest>,
    ) -> Answer<pb::DecideRequestResponse> {
        Err(not_yet("DecideRequest"))
    }

    async fn list_requests(
        &self,
        _: Request<pb::ListRequestsRequest>,
    ) -> Answer<pb::ListRequestsResponse> {
        Err(not_yet("ListRequests"))
    }

    async fn list_notifications(
        &self,
        _: Request<pb::ListNotificationsRequest>,
    ) -> Answer<pb::ListNotificationsResponse> {
        Err(not_yet("ListNotifications"))
    }

    type WatchEventsStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::WatchEventsResponse, Status>> + Send>>;

    async fn watch_events(
        &self,
        _: Request<pb::WatchEventsRequest>,
    ) -> Answer<Self::WatchEventsStream> {
        Err(not_yet("WatchEvents"))
    }

    async fn get_sync_status(
        &self,
        _: Request<pb::GetSyncStatusRequest>,
    ) -> Answer<pb::GetSyncStatusResponse> {
        Err(not_yet("GetSyncStatus"))
    }
}
