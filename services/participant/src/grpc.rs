//! The gRPC adapter: each handler takes the caller, calls the use case, and
//! maps the error. No rules and no SQL here.
//! A handler whose request names a participant notes it first, so the
//! call's audit entry names it even when the call is refused.

use crate::service::Registry;
use std::pin::Pin;
use steplab_platform::observability;
use steplab_platform::{Caller, audit};
use steplab_proto::steplab::common::v1 as common;
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

const FEED_BATCH: i64 = 500;

/// Sends reportable events from `after` on, then waits for new ones, until the
/// client goes away. Each event carries its cursor, so a client that
/// reconnects with the last cursor it saw misses nothing and sees nothing twice.
async fn follow_feed(
    registry: Registry,
    caller: Caller,
    mut after: i64,
    mut batch: Vec<pb::ParticipantEvent>,
    tx: tokio::sync::mpsc::Sender<Result<pb::WatchEventsResponse, Status>>,
) {
    let feed = registry.feed();
    loop {
        for event in batch.drain(..) {
            after = event.cursor;
            if tx.send(Ok(pb::WatchEventsResponse { event: Some(event) })).await.is_err() {
                return;
            }
        }
        let woken = feed.notified();
        batch = match registry.reportable_events(&caller, after, FEED_BATCH).await {
            Ok(events) => events,
            Err(e) => {
                let _ = tx.send(Err(e.into())).await;
                return;
            }
        };
        if batch.is_empty() {
            tokio::select! {
                () = woken => {}
                () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                () = tx.closed() => return,
            }
        }
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl ParticipantService for ParticipantGrpc {
    async fn create_delivery_partner(
        &self,
        request: Request<pb::CreateDeliveryPartnerRequest>,
    ) -> Answer<pb::CreateDeliveryPartnerResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.create_delivery_partner(caller, request.into_inner()).await?))
    }

    async fn create_school(&self, request: Request<pb::CreateSchoolRequest>) -> Answer<pb::CreateSchoolResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.create_school(caller, request.into_inner()).await?))
    }

    async fn register_participant(
        &self,
        request: Request<pb::RegisterParticipantRequest>,
    ) -> Answer<pb::RegisterParticipantResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.register(caller, request.into_inner()).await?))
    }

    async fn get_participant(&self, request: Request<pb::GetParticipantRequest>) -> Answer<pb::GetParticipantResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.get(caller, request.into_inner()).await?))
    }

    async fn list_participants(
        &self,
        request: Request<pb::ListParticipantsRequest>,
    ) -> Answer<pb::ListParticipantsResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.list(caller, request.into_inner()).await?))
    }

    async fn assign_mentor(&self, request: Request<pb::AssignMentorRequest>) -> Answer<pb::AssignMentorResponse> {
        observability::note_participant(&request.get_ref().ect_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.assign_mentor(caller, request.into_inner()).await?))
    }

    async fn end_mentor_cover(
        &self,
        request: Request<pb::EndMentorCoverRequest>,
    ) -> Answer<pb::EndMentorCoverResponse> {
        observability::note_participant(&request.get_ref().ect_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.end_mentor_cover(caller, request.into_inner()).await?))
    }

    async fn get_participant_history(
        &self,
        request: Request<pb::GetParticipantHistoryRequest>,
    ) -> Answer<pb::GetParticipantHistoryResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.history(caller, request.into_inner()).await?))
    }

    async fn move_school(&self, request: Request<pb::MoveSchoolRequest>) -> Answer<pb::MoveSchoolResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.move_school(caller, request.into_inner()).await?))
    }

    async fn pause_participant(
        &self,
        request: Request<pb::PauseParticipantRequest>,
    ) -> Answer<pb::PauseParticipantResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.pause(caller, request.into_inner()).await?))
    }

    async fn extend_pause(&self, request: Request<pb::ExtendPauseRequest>) -> Answer<pb::ExtendPauseResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.extend_pause(caller, request.into_inner()).await?))
    }

    async fn end_pause(&self, request: Request<pb::EndPauseRequest>) -> Answer<pb::EndPauseResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.end_pause(caller, request.into_inner()).await?))
    }

    async fn defer_participant(
        &self,
        request: Request<pb::DeferParticipantRequest>,
    ) -> Answer<pb::DeferParticipantResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.defer(caller, request.into_inner()).await?))
    }

    async fn change_return_date(
        &self,
        request: Request<pb::ChangeReturnDateRequest>,
    ) -> Answer<pb::ChangeReturnDateResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.change_return_date(caller, request.into_inner()).await?))
    }

    async fn record_return(&self, request: Request<pb::RecordReturnRequest>) -> Answer<pb::RecordReturnResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.record_return(caller, request.into_inner()).await?))
    }

    async fn withdraw_participant(
        &self,
        request: Request<pb::WithdrawParticipantRequest>,
    ) -> Answer<pb::WithdrawParticipantResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.withdraw(caller, request.into_inner()).await?))
    }

    async fn request_reinstatement(
        &self,
        request: Request<pb::RequestReinstatementRequest>,
    ) -> Answer<pb::RequestReinstatementResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.request_reinstatement(caller, request.into_inner()).await?))
    }

    async fn request_release_start_change(
        &self,
        request: Request<pb::RequestReleaseStartChangeRequest>,
    ) -> Answer<pb::RequestReleaseStartChangeResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.request_release_start_change(caller, request.into_inner()).await?))
    }

    async fn request_keep_mentor(
        &self,
        request: Request<pb::RequestKeepMentorRequest>,
    ) -> Answer<pb::RequestKeepMentorResponse> {
        observability::note_participant(&request.get_ref().mentor_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.request_keep_mentor(caller, request.into_inner()).await?))
    }

    async fn request_long_deferral(
        &self,
        request: Request<pb::RequestLongDeferralRequest>,
    ) -> Answer<pb::RequestLongDeferralResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.request_long_deferral(caller, request.into_inner()).await?))
    }

    async fn decide_request(&self, request: Request<pb::DecideRequestRequest>) -> Answer<pb::DecideRequestResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.decide_request(caller, request.into_inner()).await?))
    }

    async fn list_requests(&self, request: Request<pb::ListRequestsRequest>) -> Answer<pb::ListRequestsResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.list_requests(caller, request.into_inner()).await?))
    }

    async fn list_notifications(
        &self,
        request: Request<pb::ListNotificationsRequest>,
    ) -> Answer<pb::ListNotificationsResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.list_notifications(caller, request.into_inner()).await?))
    }

    type WatchEventsStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::WatchEventsResponse, Status>> + Send>>;

    async fn watch_events(&self, request: Request<pb::WatchEventsRequest>) -> Answer<Self::WatchEventsStream> {
        let caller = Caller::from_request(&request)?;
        let after = request.into_inner().after_cursor;
        // Refuse up front (permission, database) rather than inside the stream.
        let first = self.registry.reportable_events(&caller, after, FEED_BATCH).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(FEED_BATCH as usize);
        let registry = self.registry.clone();
        tokio::spawn(follow_feed(registry, caller, after, first, tx));
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn set_dfe_participant_id(
        &self,
        request: Request<pb::SetDfeParticipantIdRequest>,
    ) -> Answer<pb::SetDfeParticipantIdResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.set_dfe_participant_id(caller, request.into_inner()).await?))
    }

    async fn retry_parked_commands(
        &self,
        request: Request<pb::RetryParkedCommandsRequest>,
    ) -> Answer<pb::RetryParkedCommandsResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.retry_parked(caller, request.into_inner()).await?))
    }

    async fn check_consistency(
        &self,
        request: Request<pb::CheckConsistencyRequest>,
    ) -> Answer<pb::CheckConsistencyResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.check_consistency(caller, request.into_inner()).await?))
    }

    async fn get_sync_status(&self, request: Request<pb::GetSyncStatusRequest>) -> Answer<pb::GetSyncStatusResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.registry.sync_status(caller, request.into_inner()).await?))
    }

    async fn list_audit_entries(
        &self,
        request: Request<common::ListAuditEntriesRequest>,
    ) -> Answer<common::ListAuditEntriesResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(audit::list_entries(self.registry.database(), &caller, request.into_inner()).await?))
    }
}
