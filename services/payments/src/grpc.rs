//! The gRPC adapter: each handler takes the caller, calls the use case, and
//! maps the error. No rules and no SQL here.

use crate::service::Payments;
use steplab_platform::Caller;
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
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.payments.enrol_payee(caller, request.into_inner()).await?))
    }

    async fn suspend_accrual(&self, request: Request<pb::SuspendAccrualRequest>) -> Answer<pb::SuspendAccrualResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.payments.suspend_accrual(caller, request.into_inner()).await?))
    }

    async fn resume_accrual(&self, request: Request<pb::ResumeAccrualRequest>) -> Answer<pb::ResumeAccrualResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.payments.resume_accrual(caller, request.into_inner()).await?))
    }

    async fn end_accrual(&self, request: Request<pb::EndAccrualRequest>) -> Answer<pb::EndAccrualResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.payments.end_accrual(caller, request.into_inner()).await?))
    }

    async fn reopen_accrual(&self, request: Request<pb::ReopenAccrualRequest>) -> Answer<pb::ReopenAccrualResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.payments.reopen_accrual(caller, request.into_inner()).await?))
    }

    async fn set_area_covered(
        &self,
        request: Request<pb::SetAreaCoveredRequest>,
    ) -> Answer<pb::SetAreaCoveredResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.payments.set_area_covered(caller, request.into_inner()).await?))
    }

    async fn set_participant_scope(
        &self,
        request: Request<pb::SetParticipantScopeRequest>,
    ) -> Answer<pb::SetParticipantScopeResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.payments.set_participant_scope(caller, request.into_inner()).await?))
    }

    async fn record_engagement(
        &self,
        request: Request<pb::RecordEngagementRequest>,
    ) -> Answer<pb::RecordEngagementResponse> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.payments.record_engagement(caller, request.into_inner()).await?))
    }

    async fn get_accrual(&self, request: Request<pb::GetAccrualRequest>) -> Answer<pb::GetAccrualResponse> {
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
}
