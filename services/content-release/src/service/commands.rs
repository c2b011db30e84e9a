//! The participant service's commands on a learner's enrolment and access:
//! EnrolLearner, RevokeAccess, RestoreAccess, SetReleaseStart and
//! SetParticipantScope.

use super::{ContentRelease, Effect, Prepared, Received, load, permit};
use crate::convert;
use crate::domain::{holds, learner, policy, release};
use crate::store;
use steplab_platform::error::ServiceError;
use steplab_platform::{Caller, FieldViolations};
use steplab_proto::steplab::common::v1::CommandAck;
use steplab_proto::steplab::content::v1 as pb;

impl From<learner::AlreadyEnrolled> for ServiceError {
    fn from(refusal: learner::AlreadyEnrolled) -> Self {
        ServiceError::AlreadyExists(refusal.0)
    }
}

impl ContentRelease {
    pub async fn enrol_learner(
        &self,
        caller: Caller,
        req: pb::EnrolLearnerRequest,
    ) -> Result<CommandAck, ServiceError> {
        permit(&caller, "EnrolLearner", policy::may_send_commands(&caller))?;
        let command = self.prepare_enrol_learner(&req)?;
        self.command(command).await
    }

    pub(super) fn prepare_enrol_learner(&self, req: &pb::EnrolLearnerRequest) -> Result<Prepared, FieldViolations> {
        let cmd = convert::enrol(req)?;
        let now = self.clock.now();
        let learner = cmd.learner;
        let mut received = Received::new("EnrolLearner", cmd.key, &req.idempotency_key, req, &learner.participant_id);
        received.lock = false;
        Ok(Prepared::new(received, move |conn, _| {
            let existing = store::load_learner(conn, &learner.participant_id)?;
            let enrol = learner::enrol(existing.as_ref(), &learner)?;
            if enrol {
                store::insert_learner(conn, &learner, now)?;
            }
            Ok(Effect::changed_if(enrol))
        }))
    }

    pub async fn revoke_access(
        &self,
        caller: Caller,
        req: pb::RevokeAccessRequest,
    ) -> Result<CommandAck, ServiceError> {
        permit(&caller, "RevokeAccess", policy::may_send_commands(&caller))?;
        let command = self.prepare_revoke_access(&req)?;
        self.command(command).await
    }

    pub(super) fn prepare_revoke_access(&self, req: &pb::RevokeAccessRequest) -> Result<Prepared, FieldViolations> {
        let cmd = convert::revoke_access(req)?;
        let now = self.clock.now();
        let (envelope, from) = (cmd.envelope, cmd.effective_date);
        let participant_id = envelope.participant_id.clone();
        let received = Received::new("RevokeAccess", envelope.key, &req.idempotency_key, req, &participant_id);
        Ok(Prepared::new(received, move |conn, _| {
            if store::open_revocation(conn, &participant_id)?.is_some() {
                return Ok(Effect::Unchanged);
            }
            store::insert_revocation(conn, &participant_id, from, now)?;
            Ok(Effect::Changed)
        }))
    }

    pub async fn restore_access(
        &self,
        caller: Caller,
        req: pb::RestoreAccessRequest,
    ) -> Result<CommandAck, ServiceError> {
        permit(&caller, "RestoreAccess", policy::may_send_commands(&caller))?;
        let command = self.prepare_restore_access(&req)?;
        self.command(command).await
    }

    pub(super) fn prepare_restore_access(&self, req: &pb::RestoreAccessRequest) -> Result<Prepared, FieldViolations> {
        let cmd = convert::restore_access(req)?;
        let (envelope, on) = (cmd.envelope, cmd.effective_date);
        let participant_id = envelope.participant_id.clone();
        let received = Received::new("RestoreAccess", envelope.key, &req.idempotency_key, req, &participant_id);
        Ok(Prepared::new(received, move |conn, _| {
            let Some((revocation, revoked_from)) = store::open_revocation(conn, &participant_id)? else {
                return Ok(Effect::Unchanged);
            };
            holds::restore(revoked_from, on)?;
            store::restore(conn, revocation, on)?;
            Ok(Effect::Changed)
        }))
    }

    pub async fn set_release_start(
        &self,
        caller: Caller,
        req: pb::SetReleaseStartRequest,
    ) -> Result<CommandAck, ServiceError> {
        permit(&caller, "SetReleaseStart", policy::may_send_commands(&caller))?;
        let command = self.prepare_set_release_start(&req)?;
        self.command(command).await
    }

    pub(super) fn prepare_set_release_start(
        &self,
        req: &pb::SetReleaseStartRequest,
    ) -> Result<Prepared, FieldViolations> {
        let cmd = convert::set_release_start(req)?;
        let today = self.clock.today();
        let (envelope, start) = (cmd.envelope, cmd.release_start);
        let participant_id = envelope.participant_id.clone();
        let received = Received::new("SetReleaseStart", envelope.key, &req.idempotency_key, req, &participant_id);
        Ok(Prepared::new(received, move |conn, curriculum| {
            let learner = load(conn, &participant_id)?;
            let schedule = release::schedule(curriculum.programme(learner.programme), learner.facts());
            let moved = learner::change_release_start(&learner, &schedule, start, today)?;
            if moved {
                store::set_release_start(conn, &participant_id, start)?;
            }
            Ok(Effect::changed_if(moved))
        }))
    }

    pub async fn set_participant_scope(
        &self,
        caller: Caller,
        req: pb::SetParticipantScopeRequest,
    ) -> Result<CommandAck, ServiceError> {
        permit(&caller, "SetParticipantScope", policy::may_send_commands(&caller))?;
        let command = self.prepare_set_participant_scope(&req)?;
        self.command(command).await
    }

    pub(super) fn prepare_set_participant_scope(
        &self,
        req: &pb::SetParticipantScopeRequest,
    ) -> Result<Prepared, FieldViolations> {
        let cmd = convert::set_participant_scope(req)?;
        let now = self.clock.now();
        let participant_id = cmd.envelope.participant_id.clone();
        let received =
            Received::new("SetParticipantScope", cmd.envelope.key.clone(), &req.idempotency_key, req, &participant_id);
        Ok(Prepared::new(received, move |conn, _| {
            store::insert_scope_change(conn, &participant_id, &cmd.school_id, &cmd.delivery_partner_id, cmd.from, now)?;
            // Scope decides who reads, not what is released (S1).
            Ok(Effect::Unchanged)
        }))
    }
}
