//! The gRPC adapter: each handler takes the caller, calls the use case, and
//! maps the error. No rules and no SQL here.
//! A handler whose request names a participant notes it first, so the
//! call's audit entry names it even when the call is refused.

use crate::service::Registry;
use std::pin::Pin;
use steplab_platform::{Caller, audit};
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

/// Sends every event from `after` on, then waits for new ones, until the
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
            if tx.send(Ok(pb::WatchEventsResponse { participant_event: Some(event) })).await.is_err() {
                return;
            }
        }
        let woken = feed.notified();
        batch = match registry.events_after(&caller, after, FEED_BATCH).await {
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

steplab_platform::delegating_grpc_service! {
    impl ParticipantService for ParticipantGrpc, calling registry;
    rpc create_delivery_partner(pb::CreateDeliveryPartnerRequest) -> pb::CreateDeliveryPartnerResponse => create_delivery_partner;
    rpc create_school(pb::CreateSchoolRequest) -> pb::CreateSchoolResponse => create_school;
    rpc register_participant(pb::RegisterParticipantRequest) -> pb::RegisterParticipantResponse => register;
    rpc get_participant(pb::GetParticipantRequest) -> pb::GetParticipantResponse => get, noting participant_id;
    rpc list_participants(pb::ListParticipantsRequest) -> pb::ListParticipantsResponse => list;
    rpc assign_mentor(pb::AssignMentorRequest) -> pb::AssignMentorResponse => assign_mentor, noting ect_id;
    rpc end_mentor_cover(pb::EndMentorCoverRequest) -> pb::EndMentorCoverResponse => end_mentor_cover, noting ect_id;
    rpc get_participant_history(pb::GetParticipantHistoryRequest) -> pb::GetParticipantHistoryResponse => history, noting participant_id;
    rpc move_school(pb::MoveSchoolRequest) -> pb::MoveSchoolResponse => move_school, noting participant_id;
    rpc pause_participant(pb::PauseParticipantRequest) -> pb::PauseParticipantResponse => pause, noting participant_id;
    rpc extend_pause(pb::ExtendPauseRequest) -> pb::ExtendPauseResponse => extend_pause, noting participant_id;
    rpc end_pause(pb::EndPauseRequest) -> pb::EndPauseResponse => end_pause, noting participant_id;
    rpc defer_participant(pb::DeferParticipantRequest) -> pb::DeferParticipantResponse => defer, noting participant_id;
    rpc change_return_date(pb::ChangeReturnDateRequest) -> pb::ChangeReturnDateResponse => change_return_date, noting participant_id;
    rpc record_return(pb::RecordReturnRequest) -> pb::RecordReturnResponse => record_return, noting participant_id;
    rpc withdraw_participant(pb::WithdrawParticipantRequest) -> pb::WithdrawParticipantResponse => withdraw, noting participant_id;
    rpc request_reinstatement(pb::RequestReinstatementRequest) -> pb::RequestReinstatementResponse => request_reinstatement, noting participant_id;
    rpc request_release_start_change(pb::RequestReleaseStartChangeRequest) -> pb::RequestReleaseStartChangeResponse => request_release_start_change, noting participant_id;
    rpc request_keep_mentor(pb::RequestKeepMentorRequest) -> pb::RequestKeepMentorResponse => request_keep_mentor, noting mentor_id;
    rpc request_long_deferral(pb::RequestLongDeferralRequest) -> pb::RequestLongDeferralResponse => request_long_deferral, noting participant_id;
    rpc decide_request(pb::DecideRequestRequest) -> pb::DecideRequestResponse => decide_request;
    rpc list_requests(pb::ListRequestsRequest) -> pb::ListRequestsResponse => list_requests;
    rpc list_notifications(pb::ListNotificationsRequest) -> pb::ListNotificationsResponse => list_notifications;
    rpc set_dfe_participant_id(pb::SetDfeParticipantIdRequest) -> pb::SetDfeParticipantIdResponse => set_dfe_participant_id, noting participant_id;
    rpc retry_parked_commands(pb::RetryParkedCommandsRequest) -> pb::RetryParkedCommandsResponse => retry_parked, noting participant_id;
    rpc check_consistency(pb::CheckConsistencyRequest) -> pb::CheckConsistencyResponse => check_consistency;
    rpc get_sync_status(pb::GetSyncStatusRequest) -> pb::GetSyncStatusResponse => sync_status, noting participant_id;
    handwritten {
        type WatchEventsStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::WatchEventsResponse, Status>> + Send>>;

        async fn watch_events(&self, request: Request<pb::WatchEventsRequest>) -> Answer<Self::WatchEventsStream> {
            let caller = Caller::from_request(&request)?;
            let after = request.into_inner().after_cursor;
            // Refuse up front (permission, database) rather than inside the stream.
            let first = self.registry.events_after(&caller, after, FEED_BATCH).await?;
            let (tx, rx) = tokio::sync::mpsc::channel(FEED_BATCH as usize);
            let registry = self.registry.clone();
            tokio::spawn(follow_feed(registry, caller, after, first, tx));
            Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
        }

        async fn list_audit_entries(
            &self,
            request: Request<pb::ListAuditEntriesRequest>,
        ) -> Answer<pb::ListAuditEntriesResponse> {
            let caller = Caller::from_request(&request)?;
            Ok(Response::new(audit::list_entries(self.registry.database(), &caller, request.into_inner()).await?.into()))
        }
    }
}
