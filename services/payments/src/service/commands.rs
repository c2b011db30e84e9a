//! The participant service's commands that change a payee's facts:
//! suspend, resume, withdraw (end), reinstate (reopen), coverage and scope.
//! The decisions are the domain's ([`crate::domain::commands`]); here they
//! are loaded, stored and recomputed in one transaction.

use super::{Payments, Prepared, denied};
use crate::convert;
use crate::domain::RuleViolation;
use crate::domain::accrual;
use crate::domain::commands::{self, Change};
use crate::domain::policy;
use crate::store;
use chrono::NaiveDateTime;
use steplab_platform::db::DbConn;
use steplab_platform::error::ServiceError;
use steplab_platform::{Caller, FieldViolations};
use steplab_proto::steplab::payments::v1 as pb;

/// Applies a change to a payee's end/reopen history (W5, W9), decided by
/// `decide` over the closures stored so far.
fn change_closures(
    conn: &mut DbConn,
    participant_id: &str,
    now: NaiveDateTime,
    decide: impl FnOnce(&[accrual::Closure]) -> Result<Change<accrual::Closure>, RuleViolation>,
) -> Result<(), ServiceError> {
    let rows = store::closures_of(conn, participant_id)?;
    let known: Vec<_> = rows.iter().map(|r| r.domain()).collect();
    match decide(&known)? {
        Change::Insert(c) => store::insert_closure(conn, participant_id, &c, now),
        Change::Update(i, c) => match rows.get(i) {
            Some(row) => store::update_closure(conn, row.id, &c, now),
            None => Err(ServiceError::Internal("closure index out of range".into())),
        },
        Change::Unchanged => Ok(()),
    }
}

impl Payments {
    pub async fn suspend_accrual(
        &self,
        caller: Caller,
        req: pb::SuspendAccrualRequest,
    ) -> Result<pb::SuspendAccrualResponse, ServiceError> {
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, "SuspendAccrual", d))?;
        let command = self.prepare_suspend_accrual(&req)?;
        self.run(command).await
    }

    pub(super) fn prepare_suspend_accrual(
        &self,
        req: &pb::SuspendAccrualRequest,
    ) -> Result<Prepared<pb::SuspendAccrualResponse>, FieldViolations> {
        const RPC: &str = "SuspendAccrual";
        let cmd = convert::suspend(req)?;
        let participant_id = cmd.participant_id.clone();
        Ok(self.command(
            RPC,
            cmd.key,
            req.idempotency_key.clone(),
            cmd.participant_id.clone(),
            req,
            move |conn, now| {
                let rows = store::suspensions_of(conn, &participant_id)?;
                let known: Vec<_> = rows.iter().map(|r| r.domain()).collect();
                match commands::suspend(&known, &cmd.suspension_id, cmd.from, cmd.until) {
                    Change::Insert(s) => store::insert_suspension(conn, &participant_id, &s, now),
                    Change::Update(i, s) => match rows.get(i) {
                        Some(row) => store::update_suspension(conn, row.id, &s, now),
                        None => Err(ServiceError::Internal("suspension index out of range".into())),
                    },
                    Change::Unchanged => Ok(()),
                }
            },
        ))
    }

    pub async fn resume_accrual(
        &self,
        caller: Caller,
        req: pb::ResumeAccrualRequest,
    ) -> Result<pb::ResumeAccrualResponse, ServiceError> {
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, "ResumeAccrual", d))?;
        let command = self.prepare_resume_accrual(&req)?;
        self.run(command).await
    }

    pub(super) fn prepare_resume_accrual(
        &self,
        req: &pb::ResumeAccrualRequest,
    ) -> Result<Prepared<pb::ResumeAccrualResponse>, FieldViolations> {
        const RPC: &str = "ResumeAccrual";
        let cmd = convert::resume(req)?;
        let participant_id = cmd.participant_id.clone();
        Ok(self.command(
            RPC,
            cmd.key,
            req.idempotency_key.clone(),
            cmd.participant_id.clone(),
            req,
            move |conn, now| {
                let rows = store::suspensions_of(conn, &participant_id)?;
                let row = rows.iter().find(|r| r.suspension_id == cmd.suspension_id).ok_or_else(|| {
                    ServiceError::not_found(
                        "suspension",
                        cmd.suspension_id.clone(),
                        format!(
                            "participant {participant_id} has no suspension {}: send SuspendAccrual for it first",
                            cmd.suspension_id
                        ),
                    )
                })?;
                match commands::resume(&row.domain(), cmd.on) {
                    Some(s) => store::update_suspension(conn, row.id, &s, now),
                    None => Ok(()),
                }
            },
        ))
    }

    pub async fn end_accrual(
        &self,
        caller: Caller,
        req: pb::EndAccrualRequest,
    ) -> Result<pb::EndAccrualResponse, ServiceError> {
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, "EndAccrual", d))?;
        let command = self.prepare_end_accrual(&req)?;
        self.run(command).await
    }

    pub(super) fn prepare_end_accrual(
        &self,
        req: &pb::EndAccrualRequest,
    ) -> Result<Prepared<pb::EndAccrualResponse>, FieldViolations> {
        const RPC: &str = "EndAccrual";
        let cmd = convert::end(req)?;
        let participant_id = cmd.participant_id.clone();
        Ok(self.command(
            RPC,
            cmd.key,
            req.idempotency_key.clone(),
            cmd.participant_id.clone(),
            req,
            move |conn, now| {
                change_closures(conn, &participant_id, now, |known| commands::end(known, cmd.effective_date))
            },
        ))
    }

    pub async fn reopen_accrual(
        &self,
        caller: Caller,
        req: pb::ReopenAccrualRequest,
    ) -> Result<pb::ReopenAccrualResponse, ServiceError> {
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, "ReopenAccrual", d))?;
        let command = self.prepare_reopen_accrual(&req)?;
        self.run(command).await
    }

    pub(super) fn prepare_reopen_accrual(
        &self,
        req: &pb::ReopenAccrualRequest,
    ) -> Result<Prepared<pb::ReopenAccrualResponse>, FieldViolations> {
        const RPC: &str = "ReopenAccrual";
        let cmd = convert::reopen(req)?;
        let participant_id = cmd.participant_id.clone();
        Ok(self.command(
            RPC,
            cmd.key,
            req.idempotency_key.clone(),
            cmd.participant_id.clone(),
            req,
            move |conn, now| {
                change_closures(conn, &participant_id, now, |known| commands::reopen(known, cmd.effective_date))
            },
        ))
    }

    pub async fn set_area_covered(
        &self,
        caller: Caller,
        req: pb::SetAreaCoveredRequest,
    ) -> Result<pb::SetAreaCoveredResponse, ServiceError> {
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, "SetAreaCovered", d))?;
        let command = self.prepare_set_area_covered(&req)?;
        self.run(command).await
    }

    pub(super) fn prepare_set_area_covered(
        &self,
        req: &pb::SetAreaCoveredRequest,
    ) -> Result<Prepared<pb::SetAreaCoveredResponse>, FieldViolations> {
        const RPC: &str = "SetAreaCovered";
        let cmd = convert::coverage(req)?;
        let participant_id = cmd.participant_id.clone();
        let change = accrual::CoverageChange { from: cmd.from, covered: cmd.covered };
        Ok(self.command(RPC, cmd.key, req.idempotency_key.clone(), cmd.participant_id, req, move |conn, now| {
            store::set_coverage(conn, &participant_id, &change, now)
        }))
    }

    pub async fn set_participant_scope(
        &self,
        caller: Caller,
        req: pb::SetParticipantScopeRequest,
    ) -> Result<pb::SetParticipantScopeResponse, ServiceError> {
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, "SetParticipantScope", d))?;
        let command = self.prepare_set_participant_scope(&req)?;
        self.run(command).await
    }

    pub(super) fn prepare_set_participant_scope(
        &self,
        req: &pb::SetParticipantScopeRequest,
    ) -> Result<Prepared<pb::SetParticipantScopeResponse>, FieldViolations> {
        const RPC: &str = "SetParticipantScope";
        let cmd = convert::placement(req)?;
        let participant_id = cmd.participant_id.clone();
        let change = accrual::PlacementChange {
            from: cmd.from,
            placement: accrual::Placement {
                school_id: cmd.school_id.into(),
                delivery_partner_id: cmd.delivery_partner_id.into(),
            },
        };
        Ok(self.command(RPC, cmd.key, req.idempotency_key.clone(), cmd.participant_id, req, move |conn, now| {
            store::set_placement(conn, &participant_id, &change, now)
        }))
    }
}
