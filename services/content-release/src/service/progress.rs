//! Progress and attendance (R3, D11): the modules a learner opened, from
//! Steplab, and the clinics and conferences they attended, from delivery
//! partners' systems.

use super::{ContentRelease, learner_in_reach, load, not_enrolled, permit};
use crate::convert;
use crate::domain::policy;
use crate::domain::progress::{self, AttendanceDecision};
use crate::domain::release;
use crate::store;
use prost::Message;
use steplab_platform::Caller;
use steplab_platform::error::ServiceError;
use steplab_proto::steplab::content::v1 as pb;

impl ContentRelease {
    pub async fn record_module_access(
        &self,
        caller: Caller,
        req: pb::RecordModuleAccessRequest,
    ) -> Result<pb::RecordModuleAccessResponse, ServiceError> {
        permit(&caller, "RecordModuleAccess", policy::may_record_module_access(&caller))?;
        let cmd = convert::record_module_access(&req, &caller.sub)?;
        let (today, now) = (self.clock.today(), self.clock.now());
        self.mutate("RecordModuleAccess", cmd.key.clone(), req.encode_to_vec(), move |conn, curriculum| {
            if !store::lock_learner(conn, &cmd.participant_id, now)? {
                return Err(not_enrolled(&cmd.participant_id));
            }
            let learner = load(conn, &cmd.participant_id)?;
            let programme = curriculum.programme(learner.programme);
            let schedule = release::schedule(programme, learner.facts());
            let module =
                progress::check_module_access(programme, &schedule, &learner.revocations, &cmd.item_id, cmd.on, today)?;
            store::insert_module_access(conn, &cmd.participant_id, &module.module_id, cmd.on, now)?;
            let accesses = store::module_accesses(conn, &cmd.participant_id)?;
            Ok(pb::RecordModuleAccessResponse {
                last_accessed_module_id: progress::last_accessed(&accesses, today)
                    .map(|a| a.module_id.clone())
                    .unwrap_or_default(),
                resume_module: progress::resume_module(programme, &schedule, &accesses, today).map(convert::module_ref),
            })
        })
        .await
    }

    pub async fn record_attendance(
        &self,
        caller: Caller,
        req: pb::RecordAttendanceRequest,
    ) -> Result<pb::RecordAttendanceResponse, ServiceError> {
        permit(&caller, "RecordAttendance", policy::may_record_attendance_somewhere(&caller))?;
        let cmd = convert::record_attendance(&req, &caller.sub)?;
        let (today, now) = (self.clock.today(), self.clock.now());
        self.mutate("RecordAttendance", cmd.key.clone(), req.encode_to_vec(), move |conn, curriculum| {
            let found = if store::lock_learner(conn, &cmd.participant_id, now)? {
                Some(load(conn, &cmd.participant_id)?)
            } else {
                None
            };
            let learner = learner_in_reach(
                &caller,
                "RecordAttendance",
                found,
                &cmd.participant_id,
                today,
                policy::may_record_attendance,
            )?;
            let attended = store::attendances(conn, &cmd.participant_id)?;
            let decision = progress::check_attendance(
                curriculum.programme(learner.programme),
                &attended,
                &learner.revocations,
                &cmd.item_id,
                cmd.on,
                today,
            )?;
            let attendance = match decision {
                AttendanceDecision::AlreadyRecorded(first) => first,
                AttendanceDecision::Record(new) => {
                    store::insert_attendance(conn, &cmd.participant_id, &new, now)?;
                    new
                }
            };
            Ok(pb::RecordAttendanceResponse { attendance: Some(convert::attendance(&attendance)) })
        })
        .await
    }
}
