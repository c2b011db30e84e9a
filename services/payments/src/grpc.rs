//! The gRPC adapter: each handler takes the caller, calls the use case, and
//! maps the error. No rules and no SQL here.
//! A handler whose request names a participant notes it first, so the
//! call's audit entry names it even when the call is refused.

use crate::service::Payments;
use steplab_platform::observability;
use steplab_platform::{Caller, audit};
use steplab_proto::steplab::common::v1 as common;
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

#[tonic::async_trait]
impl PaymentsService for PaymentsGrpc {
    async fn enrol_payee(&self, request: Request<pb::EnrolPayeeRequest>) -> Answer<pb::EnrolPayeeResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.payments.enrol_payee(caller, request.into_inner()).await?))
    }

    async fn suspend_accrual(&self, request: Request<pb::SuspendAccrualRequest>) -> Answer<pb::SuspendAccrualResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.payments.suspend_accrual(caller, request.into_inner()).await?))
    }

    async fn resume_accrual(&self, request: Request<pb::ResumeAccrualRequest>) -> Answer<pb::ResumeAccrualResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.payments.resume_accrual(caller, request.into_inner()).await?))
    }

    async fn end_accrual(&self, request: Request<pb::EndAccrualRequest>) -> Answer<pb::EndAccrualResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.payments.end_accrual(caller, request.into_inner()).await?))
    }

    async fn reopen_accrual(&self, request: Request<pb::ReopenAccrualRequest>) -> Answer<pb::ReopenAccrualResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.payments.reopen_accrual(caller, request.into_inner()).await?))
    }

    async fn set_area_covered(
        &self,
        request: Request<pb::SetAreaCoveredRequest>,
    ) -> Answer<pb::SetAreaCoveredResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.payments.set_area_covered(caller, request.into_inner()).await?))
    }

    async fn set_participant_scope(
        &self,
        request: Request<pb::SetParticipantScopeRequest>,
    ) -> Answer<pb::SetParticipantScopeResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.payments.set_participant_scope(caller, request.into_inner()).await?))
    }

    async fn record_engagement(
        &self,
        request: Request<pb::RecordEngagementRequest>,
    ) -> Answer<pb::RecordEngagementResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.payments.record_engagement(caller, request.into_inner()).await?))
    }

    async fn get_accrual(&self, request: Request<pb::GetAccrualRequest>) -> Answer<pb::GetAccrualResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.payments.get_accrual(caller, request.into_inner()).await?))
    }

    async fn get_statement(&self, request: Request<pb::GetStatementRequest>) -> Answer<pb::GetStatementResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.payments.get_statement(caller, request.into_inner()).await?))
    }

    async fn list_schedules(&self, request: Request<pb::ListSchedulesRequest>) -> Answer<pb::ListSchedulesResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.payments.list_schedules(caller, request.into_inner()).await?))
    }

    async fn list_audit_entries(
        &self,
        request: Request<common::ListAuditEntriesRequest>,
    ) -> Answer<common::ListAuditEntriesResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(audit::list_entries(self.payments.database(), &caller, request.into_inner()).await?))
    }

    async fn record_declaration_state(
        &self,
        request: Request<pb::RecordDeclarationStateRequest>,
    ) -> Answer<pb::RecordDeclarationStateResponse> {
        observability::note_participant(&request.get_ref().participant_id);
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.payments.record_declaration_state(caller, request.into_inner()).await?))
    }
}
