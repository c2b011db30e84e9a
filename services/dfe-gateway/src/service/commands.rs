//! The commands of the participant service and payments: TrackParticipant
//! (X1), ReportStatusChange (X4), DeclareMilestone (X5) and VoidMilestone
//! (X6). Each stores the DfE call it decides, for the delivery worker.

use super::{Gateway, Origin, Prepared, Received, denied, new_call};
use crate::convert::{Declare, Report, Track, Void};
use crate::domain::commands as rules;
use crate::domain::mapping::{self, Course, StatusChange};
use crate::domain::policy;
use crate::store::{self, DeclarationRow, TrackedRow};
use steplab_platform::Caller;
use steplab_platform::FieldViolations;
use steplab_platform::error::ServiceError;
use steplab_proto::steplab::dfe::v1 as pb;

/// The course a tracked participant was stored with.
fn stored_course(tracked: &TrackedRow) -> Result<Course, ServiceError> {
    Course::parse(&tracked.course)
        .ok_or_else(|| ServiceError::Internal(format!("stored course `{}` unknown", tracked.course)))
}

impl Gateway {
    /// X1: a participant to report, and their DfE id once known; waiting
    /// calls leave, in order, when the id arrives.
    pub async fn track_participant(
        &self,
        caller: Caller,
        req: pb::TrackParticipantRequest,
    ) -> Result<pb::TrackParticipantResponse, ServiceError> {
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, "TrackParticipant", d))?;
        let command = Self::prepare_track_participant(&req)?;
        self.run(command).await
    }

    pub(super) fn prepare_track_participant(
        req: &pb::TrackParticipantRequest,
    ) -> Result<Prepared<pb::TrackParticipantResponse>, FieldViolations> {
        let Track { envelope, course, dfe_participant_id, trn, cohort, schedule_identifier } = Track::try_from(req)?;
        let participant_id = envelope.participant_id;
        let received = Received::new("TrackParticipant", envelope.key, &req.idempotency_key, req);
        Ok(Self::command(received, move |conn, &Origin { now, .. }| {
            match store::tracked(conn, &participant_id)? {
                None => store::insert_tracked(
                    conn,
                    &TrackedRow {
                        participant_id: participant_id.to_string(),
                        course: course.as_str().to_owned(),
                        trn,
                        cohort,
                        dfe_participant_id: dfe_participant_id.clone(),
                        training_status: "active".into(),
                        schedule_identifier,
                        created_at: now,
                        updated_at: now,
                    },
                )?,
                Some(mut row) => {
                    rules::keep_course(&participant_id, &row.course, course)?;
                    row.trn = trn;
                    row.cohort = cohort;
                    if !schedule_identifier.is_empty() {
                        row.schedule_identifier = schedule_identifier;
                    }
                    // An empty id never clears one already known.
                    if dfe_participant_id.is_some() {
                        row.dfe_participant_id.clone_from(&dfe_participant_id);
                    }
                    row.updated_at = now;
                    store::update_tracked(conn, &row)?;
                }
            }
            if let Some(id) = &dfe_participant_id {
                store::release_waiting(conn, &participant_id, id, now)?;
            }
            Ok(())
        }))
    }

    /// X4: one status change becomes one PUT, after the participant's
    /// earlier calls.
    pub async fn report_status_change(
        &self,
        caller: Caller,
        req: pb::ReportStatusChangeRequest,
    ) -> Result<pb::ReportStatusChangeResponse, ServiceError> {
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, "ReportStatusChange", d))?;
        let command = Self::prepare_report_status_change(&req)?;
        self.run(command).await
    }

    pub(super) fn prepare_report_status_change(
        req: &pb::ReportStatusChangeRequest,
    ) -> Result<Prepared<pb::ReportStatusChangeResponse>, FieldViolations> {
        let Report { envelope, change } = Report::try_from(req)?;
        let received = Received::new("ReportStatusChange", envelope.key, &req.idempotency_key, req);
        Ok(Self::tracked_command(received, envelope.participant_id, move |conn, origin, mut tracked| {
            let request = mapping::status_change_request(stored_course(&tracked)?, &change);
            store::insert_call(conn, &new_call(&tracked, origin, None, request))?;
            if let Some(status) = change.training_status_after() {
                tracked.training_status = status.to_owned();
            }
            if let StatusChange::ChangeSchedule { schedule_identifier, .. } = &change {
                tracked.schedule_identifier.clone_from(schedule_identifier);
            }
            tracked.updated_at = origin.now;
            Ok(store::update_tracked(conn, &tracked)?)
        }))
    }

    /// X5: a milestone earned becomes one declaration POST.
    pub async fn declare_milestone(
        &self,
        caller: Caller,
        req: pb::DeclareMilestoneRequest,
    ) -> Result<pb::DeclareMilestoneResponse, ServiceError> {
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, "DeclareMilestone", d))?;
        let command = Self::prepare_declare_milestone(&req)?;
        self.run(command).await
    }

    pub(super) fn prepare_declare_milestone(
        req: &pb::DeclareMilestoneRequest,
    ) -> Result<Prepared<pb::DeclareMilestoneResponse>, FieldViolations> {
        let Declare { envelope, declaration_type, declaration_date, evidence_held } = Declare::try_from(req)?;
        let received = Received::new("DeclareMilestone", envelope.key, &req.idempotency_key, req);
        Ok(Self::tracked_command(received, envelope.participant_id, move |conn, origin, tracked| {
            let participant_id = tracked.participant_id.as_str();
            let course = stored_course(&tracked)?;
            let existing = store::declaration(conn, participant_id, &declaration_type)?;
            rules::may_declare(participant_id, &declaration_type, existing.as_ref().map(|d| d.state.as_str()))?;
            store::save_declaration(
                conn,
                &DeclarationRow {
                    participant_id: participant_id.to_owned(),
                    declaration_type: declaration_type.clone(),
                    declaration_date,
                    dfe_declaration_id: None,
                    state: "to-submit".into(),
                    updated_at: origin.now,
                },
            )?;
            let request =
                mapping::declaration_request(course, &declaration_type, declaration_date, evidence_held.as_deref());
            Ok(store::insert_call(conn, &new_call(&tracked, origin, Some(declaration_type), request))?)
        }))
    }

    /// X6: a declaration no longer earned is voided, after its POST.
    pub async fn void_milestone(
        &self,
        caller: Caller,
        req: pb::VoidMilestoneRequest,
    ) -> Result<pb::VoidMilestoneResponse, ServiceError> {
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, "VoidMilestone", d))?;
        let command = Self::prepare_void_milestone(&req)?;
        self.run(command).await
    }

    pub(super) fn prepare_void_milestone(
        req: &pb::VoidMilestoneRequest,
    ) -> Result<Prepared<pb::VoidMilestoneResponse>, FieldViolations> {
        let Void { envelope, declaration_type } = Void::try_from(req)?;
        let received = Received::new("VoidMilestone", envelope.key, &req.idempotency_key, req);
        Ok(Self::tracked_command(received, envelope.participant_id, move |conn, origin, tracked| {
            let Some(mut declaration) = store::declaration(conn, &tracked.participant_id, &declaration_type)?
                .filter(|d| rules::stands(&d.state))
            else {
                return Err(rules::not_declared(&tracked.participant_id, &declaration_type).into());
            };
            declaration.state = "to-void".into();
            declaration.updated_at = origin.now;
            store::save_declaration(conn, &declaration)?;
            Ok(store::insert_call(conn, &new_call(&tracked, origin, Some(declaration_type), mapping::void_request()))?)
        }))
    }
}
