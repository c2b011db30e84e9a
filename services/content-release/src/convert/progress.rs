//! Progress and attendance (R3, D11): RecordModuleAccess from Steplab and
//! RecordAttendance from delivery partners' systems, each with an optional
//! `request_id`.

use super::id;
use crate::domain::Module;
use crate::domain::progress::Attendance;
use chrono::NaiveDate;
use steplab_platform::FieldViolations;
use steplab_platform::date;
use steplab_platform::idempotency::IdempotencyKey;
use steplab_proto::steplab::content::v1 as pb;

fn request_key(caller_sub: &str, request_id: &str) -> Result<Option<IdempotencyKey>, steplab_platform::FieldViolation> {
    IdempotencyKey::parse("request_id", caller_sub, request_id)
}

/// A validated RecordModuleAccess.
#[derive(Debug, Clone)]
pub struct ModuleAccessRecord {
    pub key: Option<IdempotencyKey>,
    pub participant_id: String,
    pub module_id: String,
    pub accessed_on: NaiveDate,
}

pub fn record_module_access(
    req: &pb::RecordModuleAccessRequest,
    caller_sub: &str,
) -> Result<ModuleAccessRecord, FieldViolations> {
    let mut v = FieldViolations::default();
    let participant_id = v.check(id("participant_id", &req.participant_id));
    let module_id = v.check(id("module_id", &req.module_id));
    let accessed_on = v.check(date::PROGRAMME_DATES.required("accessed_on", req.accessed_on.as_ref()));
    let key = v.check(request_key(caller_sub, &req.request_id));
    v.finish(|| {
        Some(ModuleAccessRecord {
            key: key?,
            participant_id: participant_id?,
            module_id: module_id?,
            accessed_on: accessed_on?,
        })
    })
}

/// A validated RecordAttendance.
#[derive(Debug, Clone)]
pub struct AttendanceRecord {
    pub key: Option<IdempotencyKey>,
    pub participant_id: String,
    pub event_id: String,
    pub attended_on: NaiveDate,
}

pub fn record_attendance(
    req: &pb::RecordAttendanceRequest,
    caller_sub: &str,
) -> Result<AttendanceRecord, FieldViolations> {
    let mut v = FieldViolations::default();
    let participant_id = v.check(id("participant_id", &req.participant_id));
    let event_id = v.check(id("event_id", &req.event_id));
    let attended_on = v.check(date::PROGRAMME_DATES.required("attended_on", req.attended_on.as_ref()));
    let key = v.check(request_key(caller_sub, &req.request_id));
    v.finish(|| {
        Some(AttendanceRecord {
            key: key?,
            participant_id: participant_id?,
            event_id: event_id?,
            attended_on: attended_on?,
        })
    })
}

pub fn module_ref(module: &Module) -> pb::ModuleRef {
    pb::ModuleRef { module_id: module.module_id.clone(), title: module.title.clone() }
}

pub fn attendance(a: &Attendance) -> pb::Attendance {
    pb::Attendance { event_id: a.event_id.clone(), attended_on: Some(date::to_proto(a.attended_on)) }
}
