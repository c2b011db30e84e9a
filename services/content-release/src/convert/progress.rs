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
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::content::v1 as pb;

fn request_key(caller_sub: &str, request_id: &str) -> Result<Option<IdempotencyKey>, steplab_platform::FieldViolation> {
    IdempotencyKey::parse("idempotency_key", caller_sub, request_id)
}

/// A validated RecordModuleAccess or RecordAttendance: a learner used one
/// module or event on one day; the caller's optional request key makes a
/// resend harmless (D11).
#[derive(Debug, Clone)]
pub struct ProgressRecord {
    pub key: Option<IdempotencyKey>,
    pub participant_id: String,
    /// The module accessed or the event attended.
    pub item_id: String,
    pub on: NaiveDate,
}

/// Both records check the same fields; only the item's and the day's names
/// on the wire differ, and each violation is reported under its own name.
fn progress_record(
    caller_sub: &str,
    participant_id: &str,
    (item_field, item_id): (&str, &str),
    (on_field, on): (&str, Option<&Date>),
    request_id: &str,
) -> Result<ProgressRecord, FieldViolations> {
    let mut v = FieldViolations::default();
    let participant_id = v.check(id("participant_id", participant_id));
    let item_id = v.check(id(item_field, item_id));
    let on = v.check(date::PROGRAMME_DATES.required(on_field, on));
    let key = v.check(request_key(caller_sub, request_id));
    v.finish(|| Some(ProgressRecord { key: key?, participant_id: participant_id?, item_id: item_id?, on: on? }))
}

pub fn record_module_access(
    req: &pb::RecordModuleAccessRequest,
    caller_sub: &str,
) -> Result<ProgressRecord, FieldViolations> {
    let module = ("module_id", req.module_id.as_str());
    progress_record(
        caller_sub,
        &req.participant_id,
        module,
        ("accessed_on", req.accessed_on.as_ref()),
        &req.idempotency_key,
    )
}

pub fn record_attendance(
    req: &pb::RecordAttendanceRequest,
    caller_sub: &str,
) -> Result<ProgressRecord, FieldViolations> {
    let event = ("event_id", req.event_id.as_str());
    progress_record(
        caller_sub,
        &req.participant_id,
        event,
        ("attended_on", req.attended_on.as_ref()),
        &req.idempotency_key,
    )
}

pub fn module_ref(module: &Module) -> pb::ModuleRef {
    pb::ModuleRef { module_id: module.module_id.clone(), title: module.title.clone() }
}

pub fn attendance(a: &Attendance) -> pb::Attendance {
    pb::Attendance { event_id: a.event_id.clone(), attended_on: Some(date::to_proto(a.attended_on)) }
}
