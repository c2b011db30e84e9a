//! Wire <-> domain. Requests become commands that cannot be invalid (every
//! malformed field is reported at once as a field violation); domain answers
//! become response messages.

use crate::domain::state::ReleaseState;
use crate::domain::{
    Event, EventKind, Hold, HoldKind, Module, Programme, ProgrammeCurriculum, release::ScheduledModule,
};
use crate::store::{FeedPosition, NewLearner, ReleaseRow};
use chrono::NaiveDate;
use steplab_platform::date;
use steplab_platform::idempotency::IdempotencyKey;
use steplab_platform::{FieldViolation, FieldViolations};
use steplab_proto::steplab::common::v1 as common;
use steplab_proto::steplab::content::v1 as pb;

/// The longest id accepted: ids are issued elsewhere (UUIDs, curriculum ids).
pub const MAX_ID_LEN: usize = 100;

/// A required id issued by another system: printable ASCII, no spaces.
pub fn id(field: &str, value: &str) -> Result<String, FieldViolation> {
    if value.is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    if value.len() > MAX_ID_LEN || !value.chars().all(|c| c.is_ascii_graphic()) {
        return Err(FieldViolation::new(
            field,
            format!("must be at most {MAX_ID_LEN} printable ASCII characters without spaces"),
        ));
    }
    Ok(value.to_owned())
}

pub fn programme(field: &str, value: i32) -> Result<Programme, FieldViolation> {
    match common::Programme::try_from(value) {
        Ok(common::Programme::Ect) => Ok(Programme::Ect),
        Ok(common::Programme::Mentor) => Ok(Programme::Mentor),
        Ok(common::Programme::Unspecified) | Err(_) => {
            Err(FieldViolation::new(field, "must be PROGRAMME_ECT or PROGRAMME_MENTOR"))
        }
    }
}

fn hold_kind(field: &str, value: i32) -> Result<HoldKind, FieldViolation> {
    match pb::HoldKind::try_from(value) {
        Ok(pb::HoldKind::Pause) => Ok(HoldKind::Pause),
        Ok(pb::HoldKind::Deferral) => Ok(HoldKind::Deferral),
        Ok(pb::HoldKind::Unspecified) | Err(_) => {
            Err(FieldViolation::new(field, "must be HOLD_KIND_PAUSE or HOLD_KIND_DEFERRAL"))
        }
    }
}

fn command_key(command_id: &str) -> Result<IdempotencyKey, FieldViolation> {
    IdempotencyKey::command("command_id", command_id)
}

fn request_key(caller_sub: &str, request_id: &str) -> Result<Option<IdempotencyKey>, FieldViolation> {
    IdempotencyKey::parse("request_id", caller_sub, request_id)
}

/// A validated EnrolLearner.
#[derive(Debug, Clone)]
pub struct Enrol {
    pub key: IdempotencyKey,
    pub learner: NewLearner,
}

pub fn enrol(req: &pb::EnrolLearnerRequest) -> Result<Enrol, FieldViolations> {
    let mut v = FieldViolations::default();
    let key = v.check(command_key(&req.command_id));
    let participant_id = v.check(id("participant_id", &req.participant_id));
    let programme = v.check(programme("programme", req.programme));
    let release_start = v.check(date::PROGRAMME_DATES.required("release_start", req.release_start.as_ref()));
    let school_id = v.check(id("school_id", &req.school_id));
    let delivery_partner_id = v.check(id("delivery_partner_id", &req.delivery_partner_id));
    v.finish(|| {
        Some(Enrol {
            key: key?,
            learner: NewLearner {
                participant_id: participant_id?,
                programme: programme?,
                release_start: release_start?,
                school_id: school_id?,
                delivery_partner_id: delivery_partner_id?,
            },
        })
    })
}

/// A validated PlaceHold.
#[derive(Debug, Clone)]
pub struct PlaceHold {
    pub key: IdempotencyKey,
    pub participant_id: String,
    pub hold: Hold,
}

pub fn place_hold(req: &pb::PlaceHoldRequest) -> Result<PlaceHold, FieldViolations> {
    let mut v = FieldViolations::default();
    let key = v.check(command_key(&req.command_id));
    let participant_id = v.check(id("participant_id", &req.participant_id));
    let hold_id = v.check(id("hold_id", &req.hold_id));
    let kind = v.check(hold_kind("kind", req.kind));
    let from = v.check(date::PROGRAMME_DATES.required("from", req.from.as_ref()));
    let until = v.check(date::PROGRAMME_DATES.required("until", req.until.as_ref()));
    if let (Some(from), Some(until)) = (from, until)
        && until <= from
    {
        v.push(FieldViolation::new(
            "until",
            format!("{until} is not after from ({from}): `until` is the first day no longer held"),
        ));
    }
    v.finish(|| {
        Some(PlaceHold {
            key: key?,
            participant_id: participant_id?,
            hold: Hold { hold_id: hold_id?, kind: kind?, from: from?, until: until? },
        })
    })
}

/// A validated LiftHold.
#[derive(Debug, Clone)]
pub struct LiftHold {
    pub key: IdempotencyKey,
    pub participant_id: String,
    pub hold_id: String,
    pub on: NaiveDate,
}

pub fn lift_hold(req: &pb::LiftHoldRequest) -> Result<LiftHold, FieldViolations> {
    let mut v = FieldViolations::default();
    let key = v.check(command_key(&req.command_id));
    let participant_id = v.check(id("participant_id", &req.participant_id));
    let hold_id = v.check(id("hold_id", &req.hold_id));
    let on = v.check(date::PROGRAMME_DATES.required("on", req.on.as_ref()));
    v.finish(|| Some(LiftHold { key: key?, participant_id: participant_id?, hold_id: hold_id?, on: on? }))
}

/// A validated RevokeAccess or RestoreAccess.
#[derive(Debug, Clone)]
pub struct AccessChange {
    pub key: IdempotencyKey,
    pub participant_id: String,
    pub effective_date: NaiveDate,
}

fn access_change(
    command_id: &str,
    participant_id: &str,
    effective_date: Option<&steplab_proto::google::r#type::Date>,
) -> Result<AccessChange, FieldViolations> {
    let mut v = FieldViolations::default();
    let key = v.check(command_key(command_id));
    let participant_id = v.check(id("participant_id", participant_id));
    let effective_date = v.check(date::PROGRAMME_DATES.required("effective_date", effective_date));
    v.finish(|| Some(AccessChange { key: key?, participant_id: participant_id?, effective_date: effective_date? }))
}

pub fn revoke_access(req: &pb::RevokeAccessRequest) -> Result<AccessChange, FieldViolations> {
    access_change(&req.command_id, &req.participant_id, req.effective_date.as_ref())
}

pub fn restore_access(req: &pb::RestoreAccessRequest) -> Result<AccessChange, FieldViolations> {
    access_change(&req.command_id, &req.participant_id, req.effective_date.as_ref())
}

/// A validated SetReleaseStart.
#[derive(Debug, Clone)]
pub struct ReleaseStartChange {
    pub key: IdempotencyKey,
    pub participant_id: String,
    pub release_start: NaiveDate,
}

pub fn set_release_start(req: &pb::SetReleaseStartRequest) -> Result<ReleaseStartChange, FieldViolations> {
    let mut v = FieldViolations::default();
    let key = v.check(command_key(&req.command_id));
    let participant_id = v.check(id("participant_id", &req.participant_id));
    let release_start = v.check(date::PROGRAMME_DATES.required("release_start", req.release_start.as_ref()));
    v.finish(|| Some(ReleaseStartChange { key: key?, participant_id: participant_id?, release_start: release_start? }))
}

/// A validated SetParticipantScope.
#[derive(Debug, Clone)]
pub struct ScopeMove {
    pub key: IdempotencyKey,
    pub participant_id: String,
    pub school_id: String,
    pub delivery_partner_id: String,
    pub from: NaiveDate,
}

pub fn set_participant_scope(req: &pb::SetParticipantScopeRequest) -> Result<ScopeMove, FieldViolations> {
    let mut v = FieldViolations::default();
    let key = v.check(command_key(&req.command_id));
    let participant_id = v.check(id("participant_id", &req.participant_id));
    let school_id = v.check(id("school_id", &req.school_id));
    let delivery_partner_id = v.check(id("delivery_partner_id", &req.delivery_partner_id));
    let from = v.check(date::PROGRAMME_DATES.required("from", req.from.as_ref()));
    v.finish(|| {
        Some(ScopeMove {
            key: key?,
            participant_id: participant_id?,
            school_id: school_id?,
            delivery_partner_id: delivery_partner_id?,
            from: from?,
        })
    })
}

/// A validated GetReleaseState.
#[derive(Debug, Clone)]
pub struct StateQuery {
    pub participant_id: String,
    /// `None`: today.
    pub as_of: Option<NaiveDate>,
}

pub fn get_release_state(req: &pb::GetReleaseStateRequest) -> Result<StateQuery, FieldViolations> {
    let mut v = FieldViolations::default();
    let participant_id = v.check(id("participant_id", &req.participant_id));
    let as_of = v.check(date::optional("as_of", req.as_of.as_ref()));
    v.finish(|| Some(StateQuery { participant_id: participant_id?, as_of: as_of? }))
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

/// ListReleases page sizes (content.proto): 0 means 500, above 1000 is 1000.
pub const FEED_DEFAULT_PAGE_SIZE: i64 = 500;
pub const FEED_MAX_PAGE_SIZE: i64 = 1000;

/// A validated ListReleases.
#[derive(Debug, Clone)]
pub struct FeedQuery {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub page_size: i64,
    pub after: Option<FeedPosition>,
}

fn feed_page_size(requested: i32) -> Result<i64, FieldViolation> {
    match i64::from(requested) {
        n if n < 0 => Err(FieldViolation::new(
            "page_size",
            format!("{n} is negative: use 0 for the default of {FEED_DEFAULT_PAGE_SIZE}, at most {FEED_MAX_PAGE_SIZE}"),
        )),
        0 => Ok(FEED_DEFAULT_PAGE_SIZE),
        n => Ok(n.min(FEED_MAX_PAGE_SIZE)),
    }
}

const TOKEN_PREFIX: &str = "r1.";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// The page token after `last`, bound to the range it was made for so that
/// it cannot be replayed against another one.
pub fn feed_token(from: NaiveDate, to: NaiveDate, last: &ReleaseRow) -> String {
    let parts = [
        from.to_string(),
        to.to_string(),
        last.release_date.to_string(),
        last.participant_id.clone(),
        last.module_id.clone(),
    ];
    // Serialising five strings cannot fail; an empty token would only end
    // the listing early, never skip rows.
    let json = serde_json::to_vec(&parts).unwrap_or_default();
    format!("{TOKEN_PREFIX}{}", hex(&json))
}

fn feed_position(
    token: &str,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<Option<FeedPosition>, FieldViolation> {
    if token.is_empty() {
        return Ok(None);
    }
    let not_ours = || {
        FieldViolation::new(
            "page_token",
            "is not a next_page_token of ListReleases: pass it back unchanged, or leave it empty for the first page",
        )
    };
    let json = token.strip_prefix(TOKEN_PREFIX).and_then(unhex).ok_or_else(not_ours)?;
    let parts: Vec<String> = serde_json::from_slice(&json).map_err(|_| not_ours())?;
    let [token_from, token_to, release_date, participant_id, module_id] =
        <[String; 5]>::try_from(parts).map_err(|_| not_ours())?;
    let parse = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| not_ours());
    if Some(parse(&token_from)?) != from || Some(parse(&token_to)?) != to {
        return Err(FieldViolation::new(
            "page_token",
            "was made for another from/to range: repeat the request with the same from and to, or start again without a token",
        ));
    }
    Ok(Some(FeedPosition { release_date: parse(&release_date)?, participant_id, module_id }))
}

pub fn list_releases(req: &pb::ListReleasesRequest) -> Result<FeedQuery, FieldViolations> {
    let mut v = FieldViolations::default();
    let from = v.check(date::required("from", req.from.as_ref()));
    let to = v.check(date::required("to", req.to.as_ref()));
    if let (Some(from), Some(to)) = (from, to)
        && to < from
    {
        v.push(FieldViolation::new(
            "to",
            format!("{to} is before from ({from}): the range is [from, to], both included"),
        ));
    }
    let page_size = v.check(feed_page_size(req.page_size));
    let after =
        if from.is_some() && to.is_some() { v.check(feed_position(&req.page_token, from, to)) } else { Some(None) };
    v.finish(|| Some(FeedQuery { from: from?, to: to?, page_size: page_size?, after: after? }))
}

pub fn programme_to_proto(programme: Programme) -> common::Programme {
    match programme {
        Programme::Ect => common::Programme::Ect,
        Programme::Mentor => common::Programme::Mentor,
    }
}

fn hold_kind_to_proto(kind: HoldKind) -> pb::HoldKind {
    match kind {
        HoldKind::Pause => pb::HoldKind::Pause,
        HoldKind::Deferral => pb::HoldKind::Deferral,
    }
}

fn event_kind_to_proto(kind: EventKind) -> pb::EventKind {
    match kind {
        EventKind::Clinic => pb::EventKind::Clinic,
        EventKind::Conference => pb::EventKind::Conference,
    }
}

pub fn module_ref(module: &Module) -> pb::ModuleRef {
    pb::ModuleRef { module_id: module.module_id.clone(), title: module.title.clone() }
}

fn released_module(m: &ScheduledModule<'_>) -> pb::ReleasedModule {
    pb::ReleasedModule {
        module_id: m.module.module_id.clone(),
        title: m.module.title.clone(),
        strand: m.module.strand.clone(),
        release_date: date::to_proto_opt(m.release_date),
        optional: m.optional,
    }
}

pub fn attendance(a: &crate::domain::progress::Attendance) -> pb::Attendance {
    pb::Attendance { event_id: a.event_id.clone(), attended_on: Some(date::to_proto(a.attended_on)) }
}

/// The GetReleaseState answer.
pub fn release_state(
    participant_id: String,
    programme: Programme,
    release_start: NaiveDate,
    state: &ReleaseState<'_>,
) -> pb::GetReleaseStateResponse {
    pb::GetReleaseStateResponse {
        participant_id,
        as_of: Some(date::to_proto(state.as_of)),
        programme: programme_to_proto(programme) as i32,
        release_start: Some(date::to_proto(release_start)),
        access: if state.access_granted { pb::Access::Granted } else { pb::Access::Revoked } as i32,
        released_modules: state.released.iter().map(released_module).collect(),
        active_holds: state
            .active_holds
            .iter()
            .map(|h| pb::Hold {
                hold_id: h.hold_id.clone(),
                kind: hold_kind_to_proto(h.kind) as i32,
                from: Some(date::to_proto(h.from)),
                until: Some(date::to_proto(h.until)),
            })
            .collect(),
        next_module: state.next.as_ref().map(|m| pb::UpcomingModule {
            module_id: m.module.module_id.clone(),
            title: m.module.title.clone(),
            strand: m.module.strand.clone(),
            release_date: date::to_proto_opt(m.release_date),
            optional: m.optional,
        }),
        resume_module: state.resume.map(module_ref),
        last_accessed_module_id: state.last_accessed_module_id.clone().unwrap_or_default(),
        attendances: state.attendances.iter().map(attendance).collect(),
        planned_end_date: date::to_proto_opt(state.planned_end),
        schedule: state.schedule.0.standard_schedule_id().to_owned(),
        schedule_since: date::to_proto_opt(state.schedule.1),
    }
}

fn event(e: &Event) -> pb::Event {
    pb::Event {
        event_id: e.event_id.clone(),
        title: e.title.clone(),
        kind: event_kind_to_proto(e.kind) as i32,
        sequence: i32::try_from(e.sequence).unwrap_or(i32::MAX),
    }
}

/// The GetCurriculum answer.
pub fn curriculum(c: &ProgrammeCurriculum) -> pb::GetCurriculumResponse {
    pb::GetCurriculumResponse {
        programme: programme_to_proto(c.programme) as i32,
        modules: c
            .modules
            .iter()
            .map(|m| pb::Module {
                module_id: m.module_id.clone(),
                title: m.title.clone(),
                strand: m.strand.clone(),
                term: m.term,
                // Offsets are checked to lie within MAX_LENGTH_DAYS at load.
                release_offset_days: i32::try_from(m.release_offset_days).unwrap_or(i32::MAX),
            })
            .collect(),
        clinics: c.clinics.iter().map(event).collect(),
        conferences: c.conferences.iter().map(event).collect(),
        length_days: i32::try_from(c.length_days).unwrap_or(i32::MAX),
    }
}

pub fn release(row: ReleaseRow) -> pb::Release {
    pb::Release {
        participant_id: row.participant_id,
        module_id: row.module_id,
        release_date: Some(date::to_proto(row.release_date)),
        optional: row.is_optional,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use steplab_proto::google::r#type::Date;

    fn date(year: i32, month: i32, day: i32) -> Option<Date> {
        Some(Date { year, month, day })
    }

    fn fields(err: FieldViolations) -> Vec<String> {
        err.0.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn every_malformed_field_of_a_command_is_reported_at_once() {
        let req = pb::PlaceHoldRequest {
            command_id: String::new(),
            participant_id: "has space".into(),
            hold_id: String::new(),
            kind: 0,
            from: date(2026, 2, 30),
            until: None,
        };
        assert_eq!(
            fields(place_hold(&req).expect_err("invalid")),
            ["command_id", "participant_id", "hold_id", "kind", "from", "until"]
        );
    }

    #[test]
    fn a_hold_ends_after_it_starts() {
        let req = pb::PlaceHoldRequest {
            command_id: "c1".into(),
            participant_id: "p1".into(),
            hold_id: "h1".into(),
            kind: pb::HoldKind::Pause as i32,
            from: date(2026, 10, 5),
            until: date(2026, 10, 5),
        };
        assert_eq!(fields(place_hold(&req).expect_err("empty hold")), ["until"]);
    }

    #[test]
    fn an_enrolment_needs_a_programme_and_a_place() {
        let req = pb::EnrolLearnerRequest {
            command_id: "c1".into(),
            participant_id: "p1".into(),
            programme: 0,
            release_start: None,
            school_id: String::new(),
            delivery_partner_id: "dp".into(),
        };
        assert_eq!(fields(enrol(&req).expect_err("invalid")), ["programme", "release_start", "school_id"]);
    }

    fn row(day: &str, participant: &str, module: &str) -> ReleaseRow {
        ReleaseRow {
            participant_id: participant.into(),
            module_id: module.into(),
            release_date: NaiveDate::parse_from_str(day, "%Y-%m-%d").expect("date"),
            is_optional: false,
        }
    }

    #[test]
    fn r4_a_feed_token_round_trips_for_its_own_range_only() {
        let last = row("2026-09-15", "p:1", "ect-02");
        let list = |token: String, to_day: i32| pb::ListReleasesRequest {
            from: date(2026, 9, 1),
            to: date(2026, 9, to_day),
            page_size: 0,
            page_token: token,
        };
        let from = NaiveDate::from_ymd_opt(2026, 9, 1).expect("date");
        let to = NaiveDate::from_ymd_opt(2026, 9, 30).expect("date");
        let token = feed_token(from, to, &last);
        let query = list_releases(&list(token.clone(), 30)).expect("same range");
        assert_eq!(
            query.after,
            Some(FeedPosition {
                release_date: last.release_date,
                participant_id: "p:1".into(),
                module_id: "ect-02".into(),
            })
        );
        assert_eq!(query.page_size, FEED_DEFAULT_PAGE_SIZE);
        assert_eq!(fields(list_releases(&list(token, 29)).expect_err("other range")), ["page_token"]);
        assert_eq!(fields(list_releases(&list("r1.zz".into(), 30)).expect_err("forged")), ["page_token"]);
    }

    #[test]
    fn r4_page_sizes_default_to_500_cap_at_1000_and_refuse_negatives() {
        let req = |page_size| pb::ListReleasesRequest {
            from: date(2026, 9, 1),
            to: date(2026, 9, 1),
            page_size,
            page_token: String::new(),
        };
        assert_eq!(list_releases(&req(0)).expect("ok").page_size, 500);
        assert_eq!(list_releases(&req(5000)).expect("ok").page_size, 1000);
        assert_eq!(fields(list_releases(&req(-1)).expect_err("negative")), ["page_size"]);
    }

    #[test]
    fn r4_a_range_ending_before_it_starts_is_refused() {
        let req = pb::ListReleasesRequest {
            from: date(2026, 9, 2),
            to: date(2026, 9, 1),
            page_size: 0,
            page_token: String::new(),
        };
        assert_eq!(fields(list_releases(&req).expect_err("backwards")), ["to"]);
    }
}
