//! The gRPC adapter: each handler takes the caller, calls the use case, and
//! maps the error. No rules and no SQL here.
//! A handler whose request names a participant notes it first, so the
//! call's audit entry names it even when the call is refused.

use crate::service::Payments;
use steplab_platform::{Caller, audit};
use steplab_proto::steplab::payments::v1 as pb;
use steplab_proto::steplab::payments::v1::payments_service_server::PaymentsService;
use tonic::{Request, Response, Status};

pub struct PaymentsGrpc {
    payments: Payments,
}

impl PaymentsGrpc {
    pub fn new(payments: Payments) -> Self {
        Self { payments }
    }
}

type Answer<T> = Result<Response<T>, Status>;

steplab_platform::delegating_grpc_service! {
    impl PaymentsService for PaymentsGrpc, calling payments;
    rpc enrol_payee(pb::EnrolPayeeRequest) -> pb::EnrolPayeeResponse => enrol_payee, noting participant_id;
    rpc suspend_accrual(pb::SuspendAccrualRequest) -> pb::SuspendAccrualResponse => suspend_accrual, noting participant_id;
    rpc resume_accrual(pb::ResumeAccrualRequest) -> pb::ResumeAccrualResponse => resume_accrual, noting participant_id;
    rpc end_accrual(pb::EndAccrualRequest) -> pb::EndAccrualResponse => end_accrual, noting participant_id;
    rpc reopen_accrual(pb::ReopenAccrualRequest) -> pb::ReopenAccrualResponse => reopen_accrual, noting participant_id;
    rpc set_area_covered(pb::SetAreaCoveredRequest) -> pb::SetAreaCoveredResponse => set_area_covered, noting participant_id;
    rpc set_participant_scope(pb::SetParticipantScopeRequest) -> pb::SetParticipantScopeResponse => set_participant_scope, noting participant_id;
    rpc record_engagement(pb::RecordEngagementRequest) -> pb::RecordEngagementResponse => record_engagement, noting participant_id;
    rpc get_accrual(pb::GetAccrualRequest) -> pb::GetAccrualResponse => get_accrual, noting participant_id;
    rpc get_statement(pb::GetStatementRequest) -> pb::GetStatementResponse => get_statement;
    rpc list_schedules(pb::ListSchedulesRequest) -> pb::ListSchedulesResponse => list_schedules;
    rpc record_declaration_state(pb::RecordDeclarationStateRequest) -> pb::RecordDeclarationStateResponse => record_declaration_state, noting participant_id;
    rpc preview_commands(pb::PreviewCommandsRequest) -> pb::PreviewCommandsResponse => preview_commands;
    // Each command is audited as its own RPC, with its own participant.
    rpc apply_commands(pb::ApplyCommandsRequest) -> pb::ApplyCommandsResponse => apply_commands;
    handwritten {

        async fn list_audit_entries(
            &self,
            request: Request<pb::ListAuditEntriesRequest>,
        ) -> Answer<pb::ListAuditEntriesResponse> {
            let caller = Caller::from_request(&request)?;
            Ok(Response::new(audit::list_entries(self.payments.database(), &caller, request.into_inner()).await?.into()))
        }
    }
}
