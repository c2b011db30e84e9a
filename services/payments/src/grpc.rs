//! The gRPC adapter. Every RPC answers UNIMPLEMENTED until the payments issue
//! builds it, so callers can code against v1 today and get a clear answer.

use steplab_proto::steplab::payments::v1 as pb;
use steplab_proto::steplab::payments::v1::payments_service_server::PaymentsService;
use tonic::{Request, Response, Status};

#[derive(Debug, Default)]
pub struct PaymentsGrpc;

fn not_yet(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is not available yet: it arrives with the payments issue"
    ))
}

#[tonic::async_trait]
impl PaymentsService for PaymentsGrpc {
    async fn enrol_payee(
        &self,
        _: Request<pb::EnrolPayeeRequest>,
    ) -> Result<Response<pb::EnrolPayeeResponse>, Status> {
        Err(not_yet("EnrolPayee"))
    }

    async fn suspend_accrual(
        &self,
        _: Request<pb::SuspendAccrualRequest>,
    ) -> Result<Response<pb::SuspendAccrualResponse>, Status> {
        Err(not_yet("SuspendAccrual"))
    }

    async fn resume_accrual(
        &self,
        _: Request<pb::ResumeAccrualRequest>,
    ) -> Result<Response<pb::ResumeAccrualResponse>, Status> {
        Err(not_yet("ResumeAccrual"))
    }

    async fn end_accrual(
        &self,
        _: Request<pb::EndAccrualRequest>,
    ) -> Result<Response<pb::EndAccrualResponse>, Status> {
        Err(not_yet("EndAccrual"))
    }

    async fn reopen_accrual(
        &self,
        _: Request<pb::ReopenAccrualRequest>,
    ) -> Result<Response<pb::ReopenAccrualResponse>, Status> {
        Err(not_yet("ReopenAccrual"))
    }

    async fn set_area_covered(
        &self,
        _: Request<pb::SetAreaCoveredRequest>,
    ) -> Result<Response<pb::SetAreaCoveredResponse>, Status> {
        Err(not_yet("SetAreaCovered"))
    }

    async fn set_participant_scope(
        &self,
        _: Request<pb::SetParticipantScopeRequest>,
    ) -> Result<Response<pb::SetParticipantScopeResponse>, Status> {
        Err(not_yet("SetParticipantScope"))
    }

    async fn record_engagement(
        &self,
        _: Request<pb::RecordEngagementRequest>,
    ) -> Result<Response<pb::RecordEngagementResponse>, Status> {
        Err(not_yet("RecordEngagement"))
    }

    async fn get_accrual(
        &self,
        _: Request<pb::GetAccrualRequest>,
    ) -> Result<Response<pb::GetAccrualResponse>, Status> {
        Err(not_yet("GetAccrual"))
    }

    async fn get_statement(
        &self,
        _: Request<pb::GetStatementRequest>,
    ) -> Result<Response<pb::GetStatementResponse>, Status> {
        Err(not_yet("GetStatement"))
    }

    async fn list_schedules(
        &self,
        _: Request<pb::ListSchedulesRequest>,
    ) -> Result<Response<pb::ListSchedulesResponse>, Status> {
        Err(not_yet("ListSchedules"))
    }
}
