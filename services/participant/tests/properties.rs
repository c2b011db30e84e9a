//! Property tests (issue 9, item 1): every request converter and the pure
//! lifecycle engine under random input.
//!
//! The converters get arbitrary messages: huge, unicode and control-character
//! strings, unknown enum values and dates at and beyond the calendar's edges
//! (year 0, 1, 9999, 10000, negative, month 0 and 13, day 0 and 32, 29
//! February in leap and common years). Each answer is compared with a small
//! independent model of what a valid field is: a converter never panics,
//! answers Ok exactly when the model says every field is valid, and an Err
//! names exactly the malformed fields, each one a field of the request.
//!
//! The lifecycle engine gets random sequences of pause, extend, end, defer,
//! change return date, record return, withdraw and reinstate over random
//! dates (including the first and last years a request can name). Refusals
//! change nothing; only the decisions the engine accepts are recorded, and
//! after each the history keeps the rules' invariants: a status on every date
//! from registration (none before), no pause longer than 42 days (P2), no
//! deferral longer than 12 months (D3).

use chrono::{Datelike, Months, NaiveDate, NaiveTime};
use proptest::prelude::*;
use std::collections::BTreeSet;
use steplab_participant::convert;
use steplab_participant::domain::events::{Actor, DeferralReason, Event, EventKind, NewEvent, WithdrawalReason};
use steplab_participant::domain::lifecycle::{
    self, Command, Decision, Deferral, MAX_PAUSE_DAYS, MentorCircle, SchoolCircle, Withdrawal,
};
use steplab_participant::domain::view::ParticipantRecord;
use steplab_participant::domain::{Enrolment, ParticipantKind, RuleViolation, TrainingStatus};
use steplab_platform::FieldViolation;
use steplab_platform::paging::Pages;
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_testkit::{calendar, check_answer, shift};

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

/// Any char, with the awkward ones (controls, line breaks, zero-width and
/// unicode spaces, a BOM, multi-byte letters) and digits and hex often.
fn awkward_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        2 => proptest::char::range('0', '9'),
        1 => proptest::char::range('a', 'f'),
        2 => proptest::sample::select(vec![
            '\0', '\n', '\r', '\t', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}', '\u{9f}', '\u{200b}', '\u{2028}',
            '\u{feff}', ' ', '\u{a0}', '\u{3000}', '\u{200d}', '\u{202e}', '\u{2066}', '\u{ad}', 'é', '字', '🦀', '-', '{', '}', ':', '/', '.',
        ]),
    ]
}

fn chars(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(awkward_char(), 0..max).prop_map(String::from_iter)
}

/// Arbitrary text: short and awkward, empty, huge (up to 70,000 chars), or
/// within a few chars of the 200-char name cap and the 2,000-char note cap,
/// with whitespace padding that trimming removes.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => chars(48),
        1 => Just(String::new()),
        1 => (awkward_char(), 0..70_000usize).prop_map(|(c, n)| c.to_string().repeat(n)),
        2 => (proptest::sample::select(vec!['a', 'é', '🦀', '\n']), 195..=205usize, 0..3usize)
            .prop_map(|(c, n, pad)| format!("{}{}{}", " ".repeat(pad), c.to_string().repeat(n), "\t".repeat(pad))),
        2 => (proptest::sample::select(vec!['a', 'é', '\n', '\t', '\r']), 1995..=2005usize, 0..3usize)
            .prop_map(|(c, n, pad)| format!("{}{}", " ".repeat(pad), c.to_string().repeat(n))),
    ]
}

/// A few fixed UUIDs, so two id fields often name the same one.
const UUID_POOL: [u128; 3] = [0x0190_a1b2_c3d4_7e5f_8a9b_0c1d_2e3f_4a5b, 0, u128::MAX];

/// A UUID in one of the forms `uuid` parses, or one it does not.
fn format_uuid(n: u128, form: u8) -> String {
    let hex = format!("{n:032x}");
    let hyphenated = format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32]);
    match form {
        0 => hyphenated,
        1 => hyphenated.to_uppercase(),
        2 => hex,
        3 => format!("{{{hyphenated}}}"),
        4 => format!("urn:uuid:{hyphenated}"),
        5 => format!(" {hyphenated}"),
        6 => format!("{{{hex}}}"),
        _ => hyphenated.replacen('-', "", 1),
    }
}

fn uuid_text() -> impl Strategy<Value = String> {
    let value = prop_oneof![proptest::sample::select(UUID_POOL.to_vec()), any::<u128>()];
    (value, prop_oneof![4 => 0..5u8, 1 => 5..8u8]).prop_map(|(n, form)| format_uuid(n, form))
}

fn id_text() -> impl Strategy<Value = String> {
    prop_oneof![6 => uuid_text(), 2 => text(), 1 => Just(String::new())]
}

/// A plausible name or note (mostly valid), or any text.
fn words() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ '.-]{0,40}",
        1 => "[ \t]{0,2}[a-z0-9 ,.!?\n]{0,80}",
        2 => text(),
    ]
}

/// Digits of about the right length (6 for a URN, 7 for a TRN), or anything.
fn digit_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => ("[0-9]{6,7}", 0..2usize).prop_map(|(d, pad)| format!("{}{d}{}", " ".repeat(pad), "\n".repeat(pad))),
        1 => "[0-9]{5,8}",
        1 => "[0-9０-９٠-٩]{6,7}",
        2 => text(),
    ]
}

/// Enum numbers: mostly defined ones, then just outside them, or any i32.
fn enum_value() -> impl Strategy<Value = i32> {
    prop_oneof![3 => 0..=7i32, 2 => -2..=12i32, 1 => any::<i32>()]
}

/// Mostly the valid value, else anything: each field of a request is valid
/// four times in five, so whole requests are often accepted too.
fn mostly<T: std::fmt::Debug + Clone>(
    valid: impl Strategy<Value = T> + 'static,
    anything: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    prop_oneof![4 => valid, 1 => anything].boxed()
}

fn good_id() -> BoxedStrategy<String> {
    let value = prop_oneof![proptest::sample::select(UUID_POOL.to_vec()), any::<u128>()];
    mostly((value, 0..5u8).prop_map(|(n, form)| format_uuid(n, form)), id_text())
}

fn good_name() -> BoxedStrategy<String> {
    mostly("[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ '.-]{0,40}", words())
}

fn good_note() -> BoxedStrategy<String> {
    mostly("[a-z0-9 ,.!?\n]{0,80}", words())
}

fn good_enum(valid: std::ops::RangeInclusive<i32>) -> BoxedStrategy<i32> {
    mostly(valid, enum_value())
}

fn good_date() -> BoxedStrategy<Option<Date>> {
    mostly(
        (2024..=2028i32, 1..=12i32, 1..=28i32).prop_map(|(year, month, day)| Some(Date { year, month, day })),
        opt_date(),
    )
}

/// Dates at and beyond every edge a `google.type.Date` can carry.
fn date_msg() -> impl Strategy<Value = Date> {
    let years = vec![i32::MIN, -1, 0, 1, 2, 4, 1900, 2000, 2023, 2024, 2025, 2026, 2100, 9996, 9999, 10000, i32::MAX];
    prop_oneof![
        3 => (proptest::sample::select(years), -1..=14i32, -1..=33i32),
        2 => (1..=9999i32, 1..=12i32, 1..=31i32),
        5 => (2024..=2028i32, 1..=12i32, 1..=28i32),
        1 => (proptest::sample::select(vec![1900, 2000, 2023, 2024, 2100, 9996, 9999]), Just(2), 28..=30i32),
        1 => (any::<i32>(), any::<i32>(), any::<i32>()),
        1 => Just((0, 0, 0)),
    ]
    .prop_map(|(year, month, day)| Date { year, month, day })
}

fn opt_date() -> impl Strategy<Value = Option<Date>> {
    proptest::option::weighted(0.85, date_msg())
}

// ---------------------------------------------------------------------------
// The independent model of a valid field
// ---------------------------------------------------------------------------

/// What `uuid` parses: 32 hex digits, or the hyphenated 8-4-4-4-12 form
/// alone, in braces or after `urn:uuid:`. The value, to compare two ids.
fn uuid_model(s: &str) -> Option<u128> {
    let body = match s.len() {
        38 => s.strip_prefix('{')?.strip_suffix('}')?,
        45 => s.strip_prefix("urn:uuid:")?,
        _ => s,
    };
    let bytes = body.as_bytes();
    let hex: String = match bytes.len() {
        32 if s.len() == 32 => body.to_owned(),
        36 => {
            if [8, 13, 18, 23].iter().any(|&i| bytes[i] != b'-') {
                return None;
            }
            body.chars().filter(|c| *c != '-').collect()
        }
        _ => return None,
    };
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

/// The days a schedule-feeding date may name (pauses, deferrals, moves...):
/// the first cohort's registration (2021-06-01) to the end of 2040.
const PROGRAMME_DAYS: std::ops::RangeInclusive<(i32, i32, i32)> = (2021, 6, 1)..=(2040, 12, 31);
/// C1: the registration periods of cohorts 2021..=2030.
const REGISTRATION_DAYS: std::ops::RangeInclusive<(i32, i32, i32)> = (2021, 6, 1)..=(2031, 5, 31);

fn required_date(d: Option<&Date>) -> Option<(i32, i32, i32)> {
    d.and_then(calendar).filter(|t| PROGRAMME_DAYS.contains(t))
}

/// `Err(())` when set but not a real day inside `window`; all-zero means not set.
fn optional_date_in(
    d: Option<&Date>,
    window: &std::ops::RangeInclusive<(i32, i32, i32)>,
) -> Result<Option<(i32, i32, i32)>, ()> {
    match d {
        None => Ok(None),
        Some(Date { year: 0, month: 0, day: 0 }) => Ok(None),
        Some(d) => calendar(d).filter(|t| window.contains(t)).map(Some).ok_or(()),
    }
}

fn optional_date(d: Option<&Date>) -> Result<Option<(i32, i32, i32)>, ()> {
    optional_date_in(d, &PROGRAMME_DAYS)
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A name: trimmed, 1..=200 chars, one line, no bidirectional control, and
/// something visible (the platform's list of invisible characters, unit
/// tested there).
fn name_ok(s: &str) -> bool {
    let t = s.trim();
    !t.is_empty()
        && t.chars().count() <= 200
        && !t.chars().any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}' || is_bidi_control(c))
        && !t.chars().all(steplab_platform::text::is_invisible)
}

fn note_ok(s: &str) -> bool {
    s.chars().count() <= 2000
        && s.chars().all(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r'))
        && !s.chars().any(is_bidi_control)
}

fn digits_ok(s: &str, count: usize) -> bool {
    let t = s.trim();
    t.len() == count && t.bytes().all(|b| b.is_ascii_digit())
}

fn ymd(d: NaiveDate) -> (i32, i32, i32) {
    (d.year(), d.month() as i32, d.day() as i32)
}

fn check_single<T: std::fmt::Debug>(
    answer: &Result<T, FieldViolation>,
    valid: bool,
    field: &str,
) -> Result<(), TestCaseError> {
    match answer {
        Ok(value) => prop_assert!(valid, "accepted {value:?}"),
        Err(v) => {
            prop_assert!(!valid, "refused a valid value: {v:?}");
            prop_assert_eq!(&v.field, field);
            prop_assert!(!v.description.is_empty());
        }
    }
    Ok(())
}

const REGISTER_FIELDS: &[&str] =
    &["school_id", "kind", "full_name", "trn", "registered_on", "previous_pilot_mentor", "idempotency_key"];
const SCHOOL_FIELDS: &[&str] = &["urn", "name", "delivery_partner_id", "area_covered", "idempotency_key"];
const MENTOR_FIELDS: &[&str] = &["ect_id", "mentor_id", "interim", "effective_date", "idempotency_key"];
const LIST_FIELDS: &[&str] = &["school_id", "delivery_partner_id", "status", "kind", "page_size", "page_token"];
const PAUSE_FIELDS: &[&str] = &["participant_id", "start_date", "expected_end_date", "note", "idempotency_key"];
const DEFER_FIELDS: &[&str] =
    &["participant_id", "reason", "deferral_date", "expected_return_date", "note", "idempotency_key"];
const WITHDRAW_FIELDS: &[&str] = &["participant_id", "reason", "withdrawal_date", "note", "idempotency_key"];

fn register_request() -> impl Strategy<Value = pb::RegisterParticipantRequest> {
    (
        good_id(),
        good_enum(1..=3),
        good_name(),
        mostly("[0-9]{7}", digit_text()),
        good_date(),
        any::<Option<bool>>(),
        text(),
    )
        .prop_map(|(school_id, kind, full_name, trn, registered_on, previous_pilot_mentor, idempotency_key)| {
            pb::RegisterParticipantRequest {
                validate_only: false,
                school_id,
                kind,
                full_name,
                trn,
                registered_on,
                previous_pilot_mentor,
                idempotency_key,
                dfe_participant_id: String::new(),
            }
        })
}

fn pause_request() -> impl Strategy<Value = pb::PauseParticipantRequest> {
    (good_id(), good_date(), good_date(), good_note(), text()).prop_map(
        |(participant_id, start_date, expected_end_date, note, idempotency_key)| pb::PauseParticipantRequest {
            validate_only: false,
            alongside_ect_id: String::new(),
            participant_id,
            start_date,
            expected_end_date,
            note,
            idempotency_key,
        },
    )
}

fn defer_request() -> impl Strategy<Value = pb::DeferParticipantRequest> {
    (good_id(), good_enum(1..=5), good_date(), good_date(), good_note(), text()).prop_map(
        |(participant_id, reason, deferral_date, expected_return_date, note, idempotency_key)| {
            pb::DeferParticipantRequest {
                validate_only: false,
                participant_id,
                reason,
                deferral_date,
                expected_return_date,
                note,
                idempotency_key,
            }
        },
    )
}

fn withdraw_request() -> impl Strategy<Value = pb::WithdrawParticipantRequest> {
    (good_id(), good_enum(1..=7), good_date(), good_note(), text()).prop_map(
        |(participant_id, reason, withdrawal_date, note, idempotency_key)| pb::WithdrawParticipantRequest {
            validate_only: false,
            replacement_induction_coordinator_id: String::new(),
            participant_id,
            reason,
            withdrawal_date,
            note,
            idempotency_key,
        },
    )
}

// ---------------------------------------------------------------------------
// Converter properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn register_accepts_exactly_the_valid_requests_and_names_every_bad_field(req in register_request()) {
        let answer = convert::register(&req);
        let mut expected = Vec::new();
        if uuid_model(&req.school_id).is_none() {
            expected.push("school_id");
        }
        let kind_ok = (1..=3).contains(&req.kind);
        if !kind_ok {
            expected.push("kind");
        }
        if !name_ok(&req.full_name) {
            expected.push("full_name");
        }
        // An induction coordinator may have no TRN; anyone else has 7 digits.
        let ic_without_trn = req.kind == 3 && req.trn.trim().is_empty();
        if !ic_without_trn && !digits_ok(&req.trn, 7) {
            expected.push("trn");
        }
        let registered_on = optional_date_in(req.registered_on.as_ref(), &REGISTRATION_DAYS);
        if registered_on.is_err() {
            expected.push("registered_on");
        }
        // M4: only a mentor can be a previous pilot mentor, and a mentor must say.
        let pilot_refused = match req.previous_pilot_mentor {
            None => req.kind == 2,
            Some(true) => kind_ok && req.kind != 2,
            Some(false) => false,
        };
        if pilot_refused {
            expected.push("previous_pilot_mentor");
        }
        check_answer(&answer, &expected, REGISTER_FIELDS)?;
        if let Ok(r) = answer {
            prop_assert_eq!(r.full_name.as_str(), req.full_name.trim());
            prop_assert_eq!(Some(r.school_id), uuid_model(&req.school_id).map(|n| format_uuid(n, 0)));
            prop_assert_eq!(r.registered_on.map(ymd), registered_on.ok().flatten());
            prop_assert_eq!(r.previous_pilot_mentor, req.previous_pilot_mentor.unwrap_or(false));
        }
    }

    #[test]
    fn create_school_accepts_exactly_the_valid_requests_and_names_every_bad_field(
        urn in mostly("[0-9]{6}", digit_text()),
        name in good_name(),
        dp in good_id(),
        area_covered in any::<Option<bool>>(),
    ) {
        let req =
            pb::CreateSchoolRequest { validate_only: false, urn, name, delivery_partner_id: dp, area_covered, idempotency_key: String::new() };
        let mut expected = Vec::new();
        if !digits_ok(&req.urn, 6) {
            expected.push("urn");
        }
        if !name_ok(&req.name) {
            expected.push("name");
        }
        if uuid_model(&req.delivery_partner_id).is_none() {
            expected.push("delivery_partner_id");
        }
        // S2, explicit presence: an omitted area_covered is refused.
        if req.area_covered.is_none() {
            expected.push("area_covered");
        }
        let answer = convert::create_school(&req);
        check_answer(&answer, &expected, SCHOOL_FIELDS)?;
        if let Ok(s) = answer {
            prop_assert_eq!(s.urn.as_str(), req.urn.trim());
            prop_assert_eq!(Some(s.area_covered), req.area_covered);
        }
    }

    #[test]
    fn assign_mentor_accepts_exactly_the_valid_requests_and_refuses_self_mentoring(
        ect_id in good_id(),
        mentor_id in good_id(),
        interim in any::<bool>(),
        effective_date in opt_date(),
    ) {
        let req =
            pb::AssignMentorRequest { validate_only: false, ect_id, mentor_id, interim, effective_date, idempotency_key: String::new(), until: None };
        let (ect, mentor) = (uuid_model(&req.ect_id), uuid_model(&req.mentor_id));
        let mut expected = Vec::new();
        if ect.is_none() {
            expected.push("ect_id");
        }
        if mentor.is_none() {
            expected.push("mentor_id");
        }
        if optional_date(req.effective_date.as_ref()).is_err() {
            expected.push("effective_date");
        }
        // The same UUID however it is written (case, braces, urn:uuid:).
        if ect.is_some() && ect == mentor {
            expected.push("mentor_id");
        }
        check_answer(&convert::assign_mentor(&req), &expected, MENTOR_FIELDS)?;
    }

    #[test]
    fn list_accepts_exactly_the_valid_filters_and_pages(
        school_id in prop_oneof![Just(String::new()), good_id()],
        dp in prop_oneof![Just(String::new()), good_id()],
        status in good_enum(0..=4),
        kind in good_enum(0..=3),
        page_size in prop_oneof![2 => 0..=1000i32, 1 => -2..=1002i32, 1 => any::<i32>()],
        page_token in prop_oneof![
            3 => Just(String::new()),
            2 => Just("issued".to_owned()),
            2 => words().prop_map(|t| format!("after:{t}")),
            1 => (95..=105usize).prop_map(|n| format!("after:{}", "k".repeat(n))),
            1 => text(),
        ],
    ) {
        let mut req = pb::ListParticipantsRequest {
            school_id,
            delivery_partner_id: dp,
            status,
            kind,
            page_size,
            page_token,
        };
        let mut expected = Vec::new();
        if !req.school_id.is_empty() && uuid_model(&req.school_id).is_none() {
            expected.push("school_id");
        }
        if !req.delivery_partner_id.is_empty() && uuid_model(&req.delivery_partner_id).is_none() {
            expected.push("delivery_partner_id");
        }
        if !(0..=4).contains(&req.status) {
            expected.push("status");
        }
        if !(0..=3).contains(&req.kind) {
            expected.push("kind");
        }
        if req.page_size < 0 {
            expected.push("page_size");
        }
        // Only a token this request was issued is accepted (AIP-158).
        let pages = Pages::of("ada", &req);
        let issued = req.page_token == "issued";
        if issued {
            req.page_token = pages.token(Some("p-1"));
        } else if !req.page_token.is_empty() {
            expected.push("page_token");
        }
        let answer = convert::list(&req, &pages);
        check_answer(&answer, &expected, LIST_FIELDS)?;
        if let Ok(q) = answer {
            prop_assert!((1..=1000).contains(&q.page_size));
            prop_assert_eq!(q.after.as_deref(), issued.then_some("p-1"));
        }
    }

    #[test]
    fn pause_accepts_exactly_the_valid_requests_and_names_every_bad_field(req in pause_request()) {
        let start = required_date(req.start_date.as_ref());
        let end = required_date(req.expected_end_date.as_ref());
        let mut expected = Vec::new();
        if uuid_model(&req.participant_id).is_none() {
            expected.push("participant_id");
        }
        if start.is_none() {
            expected.push("start_date");
        }
        if end.is_none() {
            expected.push("expected_end_date");
        }
        if !note_ok(&req.note) {
            expected.push("note");
        }
        if let (Some(s), Some(e)) = (start, end) && e <= s {
            expected.push("expected_end_date");
        }
        let answer = convert::pause(&req);
        check_answer(&answer, &expected, PAUSE_FIELDS)?;
        if let Ok(p) = answer {
            prop_assert_eq!((Some(ymd(p.start)), Some(ymd(p.expected_end))), (start, end));
            prop_assert_eq!(p.note.as_str(), req.note.trim());
        }
    }

    #[test]
    fn defer_accepts_exactly_the_valid_requests_and_names_every_bad_field(req in defer_request()) {
        let from = required_date(req.deferral_date.as_ref());
        let until = required_date(req.expected_return_date.as_ref());
        let mut expected = Vec::new();
        if uuid_model(&req.participant_id).is_none() {
            expected.push("participant_id");
        }
        if !(1..=5).contains(&req.reason) {
            expected.push("reason");
        }
        if from.is_none() {
            expected.push("deferral_date");
        }
        if until.is_none() {
            expected.push("expected_return_date");
        }
        if !note_ok(&req.note) {
            expected.push("note");
        }
        if let (Some(f), Some(u)) = (from, until) && u <= f {
            expected.push("expected_return_date");
        }
        let answer = convert::defer(&req);
        check_answer(&answer, &expected, DEFER_FIELDS)?;
        if let Ok(command) = answer {
            let d = command.deferral;
            prop_assert_eq!((Some(ymd(d.deferral_date)), Some(ymd(d.expected_return))), (from, until));
        }
    }

    #[test]
    fn withdraw_accepts_exactly_the_valid_requests_and_names_every_bad_field(req in withdraw_request()) {
        let date = optional_date(req.withdrawal_date.as_ref());
        let mut expected = Vec::new();
        if uuid_model(&req.participant_id).is_none() {
            expected.push("participant_id");
        }
        if !(1..=7).contains(&req.reason) {
            expected.push("reason");
        }
        if date.is_err() {
            expected.push("withdrawal_date");
        }
        if !note_ok(&req.note) {
            expected.push("note");
        }
        let answer = convert::withdraw(&req);
        check_answer(&answer, &expected, WITHDRAW_FIELDS)?;
        if let Ok(command) = answer {
            prop_assert_eq!(command.withdrawal_date.map(ymd), date.ok().flatten());
        }
    }

    #[test]
    fn single_date_converters_name_the_fields_they_were_given(
        id in good_id(),
        date in good_date(),
        required in any::<bool>(),
    ) {
        // ExtendPause must give its date; EndPause may leave it out (today).
        let (answer, date_field) = if required {
            let req = pb::ExtendPauseRequest {
                participant_id: id.clone(),
                expected_end_date: date,
                ..Default::default()
            };
            (convert::extend_pause(&req).map(|c| (c.participant_id, Some(c.date))), "expected_end_date")
        } else {
            let req = pb::EndPauseRequest { participant_id: id.clone(), end_date: date, ..Default::default() };
            (convert::end_pause(&req).map(|c| (c.participant_id, c.date)), "end_date")
        };
        let mut expected = Vec::new();
        if uuid_model(&id).is_none() {
            expected.push("participant_id");
        }
        let when = if required {
            required_date(date.as_ref()).map(Some).ok_or(())
        } else {
            optional_date(date.as_ref())
        };
        if when.is_err() {
            expected.push(date_field);
        }
        check_answer(&answer, &expected, &["participant_id", date_field])?;
        if let Ok((_, on)) = answer {
            prop_assert_eq!(on.map(ymd), when.ok().flatten());
        }
    }

    #[test]
    fn id_and_note_names_the_fields_it_was_given(id in good_id(), note in good_note()) {
        let mut expected = Vec::new();
        if uuid_model(&id).is_none() {
            expected.push("participant_id");
        }
        if !note_ok(&note) {
            expected.push("note");
        }
        check_answer(&convert::id_and_note("participant_id", &id, &note), &expected, &["participant_id", "note"])?;
    }

    #[test]
    fn single_field_converters_accept_exactly_the_valid_values(
        value in prop_oneof![id_text(), words(), digit_text()],
        number in enum_value(),
    ) {
        let id = convert::id("some_id", &value);
        check_single(&id, uuid_model(&value).is_some(), "some_id")?;
        if let Ok(canonical) = &id {
            // Canonical: however it was written, one UUID has one id.
            prop_assert_eq!(Some(canonical.clone()), uuid_model(&value).map(|n| format_uuid(n, 0)));
        }
        check_single(
            &convert::optional_id("filter_id", &value),
            value.is_empty() || uuid_model(&value).is_some(),
            "filter_id",
        )?;
        let name = convert::name("full_name", &value);
        check_single(&name, name_ok(&value), "full_name")?;
        if let Ok(n) = name {
            prop_assert!(n.chars().count() <= convert::MAX_NAME_CHARS);
        }
        let note = convert::note("note", &value);
        check_single(&note, note_ok(&value), "note")?;
        if let Ok(n) = note {
            prop_assert!(n.chars().count() <= convert::MAX_NOTE_CHARS);
        }
        check_single(&convert::kind("kind", number), (1..=3).contains(&number), "kind")?;
        check_single(&convert::deferral_reason("reason", number), (1..=5).contains(&number), "reason")?;
        check_single(&convert::withdrawal_reason("reason", number), (1..=7).contains(&number), "reason")?;
        check_single(&convert::request_status("status", number), (0..=3).contains(&number), "status")?;
    }
}

// ---------------------------------------------------------------------------
// The lifecycle engine
// ---------------------------------------------------------------------------

const ECT_ID: &str = "ect";
const MENTOR_ID: &str = "mentor";
/// The first and last days a request can name (the converters refuse others).
const FIRST_DAY: NaiveDate = NaiveDate::from_ymd_opt(1, 1, 1).expect("first day");
const LAST_DAY: NaiveDate = NaiveDate::from_ymd_opt(9999, 12, 31).expect("last day");

/// A date a request could carry: `days` from `day`, kept within 1..=9999.
fn request_day(day: NaiveDate, days: i64) -> NaiveDate {
    shift(day, days).clamp(FIRST_DAY, LAST_DAY)
}

fn twelve_months_after(day: NaiveDate) -> NaiveDate {
    day.checked_add_months(Months::new(12)).unwrap_or(NaiveDate::MAX)
}

/// Appends the events meant for `p`, as the store would.
fn record(p: &mut ParticipantRecord, events: &[NewEvent], today: NaiveDate) {
    for e in events.iter().filter(|e| e.participant_id == p.id) {
        p.version += 1;
        p.events.push(Event {
            cursor: p.version,
            participant_id: p.id.clone(),
            sequence: p.version,
            effective_date: e.effective_date,
            recorded_at: today.and_time(NaiveTime::MIN),
            actor: Actor { sub: "proptest".into(), role: "ecf_lead".into() },
            caused_by: e.caused_by.clone(),
            kind: e.kind.clone(),
        });
    }
}

fn person(id: &str, kind: ParticipantKind, registered_on: NaiveDate) -> ParticipantRecord {
    let mut p = ParticipantRecord {
        id: id.into(),
        kind,
        full_name: id.into(),
        trn: None,
        registered_on,
        previous_pilot_mentor: false,
        version: 0,
        created_at: registered_on.and_time(NaiveTime::MIN),
        events: vec![],
    };
    let registered = NewEvent {
        participant_id: id.into(),
        effective_date: registered_on,
        kind: EventKind::Registered {
            kind,
            school_id: "school".into(),
            delivery_partner_id: "dp".into(),
            enrolment: (kind != ParticipantKind::InductionCoordinator).then(|| Enrolment::default_for(registered_on)),
            previous_pilot_mentor: false,
            area_covered: true,
        },
        caused_by: None,
    };
    record(&mut p, &[registered], registered_on);
    p
}

#[derive(Debug, Clone)]
enum Action {
    /// A pause `[today + start, +days)`; days beyond 42 are refused (P2).
    Pause {
        start: i64,
        days: i64,
        on_mentor: bool,
    },
    /// The pause in force (else the next planned) to end `start + days`.
    ExtendPause {
        days_after_start: i64,
    },
    /// The pause in force (else the next planned) ends on `start + days`.
    EndPause {
        days_after_start: i64,
    },
    /// Deferral from `today + from` for `days`; beyond 12 months is refused (D3).
    Defer {
        reason: DeferralReason,
        from: i64,
        days: i64,
        on_mentor: bool,
    },
    /// The deferral in force (else the next planned) returns on `from + days`.
    ChangeReturnDate {
        days: i64,
    },
    /// The deferral in force (else the next planned) ended on `from + days`,
    /// recorded today.
    RecordReturn {
        days: i64,
    },
    Withdraw {
        reason: WithdrawalReason,
        on: i64,
        on_mentor: bool,
    },
    /// A DPL's approval today (the service reinstates on the approval day).
    Reinstate {
        on_mentor: bool,
    },
    /// Time passes.
    Wait {
        days: i64,
    },
}

fn deferral_reason() -> impl Strategy<Value = DeferralReason> {
    proptest::sample::select(vec![
        DeferralReason::Bereavement,
        DeferralReason::LongTermSickness,
        DeferralReason::ParentalLeave,
        DeferralReason::CareerBreak,
        DeferralReason::Other,
    ])
}

fn withdrawal_reason() -> impl Strategy<Value = WithdrawalReason> {
    proptest::sample::select(vec![
        WithdrawalReason::LeftTeachingProfession,
        WithdrawalReason::MovedSchool,
        WithdrawalReason::MentorNoLongerBeingMentor,
        WithdrawalReason::SwitchedToSchoolLed,
        WithdrawalReason::NotEligible,
        WithdrawalReason::LeftRole,
        WithdrawalReason::Other,
    ])
}

fn action() -> impl Strategy<Value = Action> {
    let mostly_ect = proptest::bool::weighted(0.15);
    prop_oneof![
        3 => (-60..=60i64, 1..=50i64, mostly_ect)
            .prop_map(|(start, days, on_mentor)| Action::Pause { start, days, on_mentor }),
        1 => (1..=50i64).prop_map(|days_after_start| Action::ExtendPause { days_after_start }),
        2 => (-3..=45i64).prop_map(|days_after_start| Action::EndPause { days_after_start }),
        3 => (deferral_reason(), -120..=120i64, 1..=380i64, mostly_ect)
            .prop_map(|(reason, from, days, on_mentor)| Action::Defer { reason, from, days, on_mentor }),
        2 => (-10..=380i64).prop_map(|days| Action::ChangeReturnDate { days }),
        2 => prop_oneof![0..=40i64, -3..=380i64].prop_map(|days| Action::RecordReturn { days }),
        2 => (withdrawal_reason(), -200..=5i64, mostly_ect)
            .prop_map(|(reason, on, on_mentor)| Action::Withdraw { reason, on, on_mentor }),
        1 => mostly_ect.prop_map(|on_mentor| Action::Reinstate { on_mentor }),
        3 => prop_oneof![3 => 0..=20i64, 1 => 0..=120i64].prop_map(|days| Action::Wait { days }),
    ]
}

/// Registration days, mostly now, sometimes in the first or last year a
/// request can name.
fn registration_day() -> impl Strategy<Value = NaiveDate> {
    prop_oneof![
        6 => (0..=4_500i64).prop_map(|n| shift(NaiveDate::from_ymd_opt(2020, 1, 1).expect("day"), n)),
        1 => (0..=400i64).prop_map(|n| shift(FIRST_DAY, n)),
        1 => (0..=400i64).prop_map(|n| shift(LAST_DAY, -n)),
        1 => Just(NaiveDate::from_ymd_opt(2024, 2, 29).expect("leap day")),
    ]
}

/// The target of most actions (an ECT, sometimes a mentor or an induction
/// coordinator, whom the rules refuse to pause or defer) and an ECT's mentor.
#[derive(Debug, Clone)]
struct World {
    ect: ParticipantRecord,
    mentor: ParticipantRecord,
    /// Another ECT of the mentor, active throughout (D9, W6).
    other_ect: ParticipantRecord,
    today: NaiveDate,
    keep_mentor: bool,
    next_id: u64,
}

fn world() -> impl Strategy<Value = World> {
    let kind = proptest::sample::select(vec![
        ParticipantKind::Ect,
        ParticipantKind::Ect,
        ParticipantKind::Ect,
        ParticipantKind::Ect,
        ParticipantKind::Ect,
        ParticipantKind::Mentor,
        ParticipantKind::InductionCoordinator,
    ]);
    (registration_day(), 0..=120i64, 0..=200i64, kind, any::<bool>()).prop_map(
        |(registered_on, mentor_earlier, wait, kind, keep_mentor)| World {
            ect: person(ECT_ID, kind, registered_on),
            mentor: person(MENTOR_ID, ParticipantKind::Mentor, shift(registered_on, -mentor_earlier)),
            other_ect: person("other-ect", ParticipantKind::Ect, shift(registered_on, -mentor_earlier)),
            today: shift(registered_on, wait),
            keep_mentor,
            next_id: 1,
        },
    )
}

impl World {
    fn circle(&self, other_ect_active: bool) -> MentorCircle {
        MentorCircle {
            mentor: self.mentor.clone(),
            other_ects: if other_ect_active { vec![self.other_ect.clone()] } else { vec![] },
            keep_approved: self.keep_mentor,
        }
    }

    fn target(&self, on_mentor: bool) -> &ParticipantRecord {
        if on_mentor { &self.mentor } else { &self.ect }
    }

    /// Whether the converters would let the request through: a pause ends
    /// after its start and a deferral's return is after its date. (Near
    /// 9999-12-31 a clamped end can fall on the start.)
    fn passes_converters(&self, action: &Action) -> bool {
        match *action {
            Action::Pause { start, days, .. } => {
                let start = request_day(self.today, start);
                request_day(start, days) > start
            }
            Action::Defer { from, days, .. } => {
                let from = request_day(self.today, from);
                request_day(from, days) > from
            }
            _ => true,
        }
    }

    /// Where pause dates are counted from: the start of the ECT's pause in
    /// force, else of the next one planned, else today.
    fn pause_anchor(&self) -> NaiveDate {
        let in_force = self.ect.as_of(self.today).and_then(|v| v.pause).map(|p| p.start);
        in_force.or_else(|| self.ect.timeline().open_pause(self.today).map(|p| p.start)).unwrap_or(self.today)
    }

    /// The same for deferrals.
    fn deferral_anchor(&self) -> NaiveDate {
        let in_force = self.ect.as_of(self.today).and_then(|v| v.deferral).map(|d| d.from);
        in_force.or_else(|| self.ect.timeline().open_deferral(self.today).map(|d| d.from)).unwrap_or(self.today)
    }

    /// What the engine decides for `action`: a pure function of the world.
    fn decide(&self, action: &Action) -> Result<Decision, RuleViolation> {
        let today = self.today;
        let id = format!("id-{}", self.next_id);
        match *action {
            Action::Pause { start, days, on_mentor } => {
                let start = request_day(today, start);
                let end = request_day(start, days);
                lifecycle::pause(self.target(on_mentor), id, start, end, "note".into(), today)
            }
            Action::ExtendPause { days_after_start } => {
                lifecycle::extend_pause(&self.ect, request_day(self.pause_anchor(), days_after_start), today)
            }
            Action::EndPause { days_after_start } => {
                lifecycle::end_pause(&self.ect, request_day(self.pause_anchor(), days_after_start), today)
            }
            // D9: the mentor's deferral is derived afterwards (`mentoring`).
            Action::Defer { reason, from, days, on_mentor } => {
                let deferral_date = request_day(today, from);
                let request = Deferral {
                    reason,
                    deferral_date,
                    expected_return: request_day(deferral_date, days),
                    note: String::new(),
                };
                let mut n = self.next_id;
                let new_id = move || {
                    n += 1;
                    format!("id-{n}")
                };
                lifecycle::defer(self.target(on_mentor), request, new_id, today)
            }
            Action::ChangeReturnDate { days } => {
                let to = request_day(self.deferral_anchor(), days);
                lifecycle::change_return_date(&self.ect, to, today)
            }
            Action::RecordReturn { days } => {
                let on = request_day(self.deferral_anchor(), days);
                lifecycle::record_return(&self.ect, on, today)
            }
            Action::Withdraw { reason, on, on_mentor } => {
                let request = Withdrawal { reason, withdrawal_date: request_day(today, on), note: String::new() };
                let school =
                    SchoolCircle { school_id: "school".into(), delivery_partner_id: "dp".into(), others: vec![] };
                lifecycle::withdraw(self.target(on_mentor), request, Some(&self.circle(false)), &school, today)
            }
            Action::Reinstate { on_mentor } => lifecycle::reinstate(self.target(on_mentor), &id, today, None),
            Action::Wait { .. } => Ok(Decision::default()),
        }
    }

    fn apply(&mut self, action: &Action, decision: &Decision) {
        record(&mut self.ect, &decision.events, self.today);
        record(&mut self.mentor, &decision.events, self.today);
        self.next_id += 3;
        if let Action::Wait { days } = *action {
            self.today = shift(self.today, days);
        }
    }
}

fn status(p: &ParticipantRecord, on: NaiveDate) -> Option<TrainingStatus> {
    p.as_of(on).map(|v| v.status)
}

fn is_upper_snake(reason: &str) -> bool {
    !reason.is_empty() && reason.chars().all(|c| c.is_ascii_uppercase() || c == '_')
}

/// The invariants every recorded history keeps.
fn check_history(p: &ParticipantRecord, today: NaiveDate) -> Result<(), TestCaseError> {
    let timeline = p.timeline();
    for pause in &timeline.pauses {
        // P2: a pause, as planned and as it ends, covers at most 42 days.
        prop_assert!((pause.expected_end - pause.start).num_days() <= MAX_PAUSE_DAYS, "{pause:?} too long");
        prop_assert!((pause.end() - pause.start).num_days() <= MAX_PAUSE_DAYS, "{pause:?} too long");
    }
    for deferral in &timeline.deferrals {
        // D3, D6: the expected return is at most 12 months after the deferral date.
        prop_assert!(deferral.expected_return <= twelve_months_after(deferral.from), "{deferral:?} too long");
        prop_assert!(deferral.expected_return > deferral.from, "{deferral:?} returns before it starts");
    }
    // Every date of interest: registration, today, each event and each
    // interval boundary, and the days either side.
    let mut days: BTreeSet<NaiveDate> = BTreeSet::from([p.registered_on, today]);
    days.extend(p.events.iter().map(|e| e.effective_date));
    days.extend(timeline.pauses.iter().flat_map(|s| [s.start, s.expected_end, s.end()]));
    days.extend(timeline.deferrals.iter().flat_map(|s| [s.from, s.expected_return, s.end()]));
    days.extend(timeline.withdrawals.iter().flat_map(|w| [Some(w.date), w.reinstated_on]).flatten());
    for day in days.clone() {
        days.extend([shift(day, -1), shift(day, 1)]);
    }
    for day in days {
        let Some(view) = p.as_of(day) else {
            prop_assert!(day < p.registered_on, "no status on {day}, registered on {}", p.registered_on);
            continue;
        };
        prop_assert!(day >= p.registered_on, "a status on {day}, before registration on {}", p.registered_on);
        // The status is the one the intervals in force on the day imply.
        let implied = if view.withdrawal.is_some() {
            TrainingStatus::Withdrawn
        } else if view.deferral.is_some() {
            TrainingStatus::Deferred
        } else if view.pause.is_some() {
            TrainingStatus::Paused
        } else {
            TrainingStatus::Active
        };
        prop_assert_eq!(view.status, implied, "on {}", day);
    }
    Ok(())
}

/// What every decision the engine takes keeps, whoever it is about.
fn check_decision(decision: &Decision, target: &str) -> Result<(), TestCaseError> {
    for e in &decision.events {
        prop_assert!([ECT_ID, MENTOR_ID].contains(&e.participant_id.as_str()), "event for {}", e.participant_id);
        if e.participant_id != target {
            prop_assert_eq!(e.caused_by.as_deref(), Some(target), "a cascade names its cause");
        }
    }
    for c in &decision.commands {
        // Content release and payments refuse an empty hold or suspension
        // (their converters), so the engine must never send one.
        match c {
            Command::PlaceHold { from, until, .. } | Command::SuspendAccrual { from, until, .. } => {
                prop_assert!(from < until, "{c:?} is empty")
            }
            _ => {}
        }
    }
    Ok(())
}

/// The rules that refuse whatever the history: P1, P2, D3, D10, D13, W2.
fn check_always_refused(
    world: &World,
    action: &Action,
    answer: &Result<Decision, RuleViolation>,
) -> Result<(), TestCaseError> {
    let refusal = match *action {
        Action::Pause { on_mentor, .. } if world.target(on_mentor).kind != ParticipantKind::Ect => {
            Some("PAUSE_ONLY_FOR_ECTS")
        }
        Action::Pause { start, days, .. } => {
            let start = request_day(world.today, start);
            ((request_day(start, days) - start).num_days() > MAX_PAUSE_DAYS).then_some("PAUSE_TOO_LONG")
        }
        Action::Defer { on_mentor, .. } if world.target(on_mentor).kind == ParticipantKind::Mentor => {
            Some("MENTOR_CANNOT_BE_DEFERRED")
        }
        Action::Defer { on_mentor, .. } if world.target(on_mentor).kind != ParticipantKind::Ect => {
            Some("DEFERRAL_ONLY_FOR_ECTS")
        }
        Action::Defer { from, days, on_mentor, .. } => {
            let target = world.target(on_mentor);
            let from = request_day(world.today, from);
            let until = request_day(from, days);
            // D13 applies once the programme has started (D8): on or after
            // the release start, and so after registration too.
            let started = target.as_of(from).and_then(|v| v.enrolment).is_some_and(|e| from >= e.release_start);
            if until > twelve_months_after(from) {
                Some("RETURN_DATE_TOO_FAR")
            } else if started && (until - from).num_days() <= lifecycle::MIN_DEFERRAL_DAYS {
                Some("DEFERRAL_TOO_SHORT")
            } else {
                None
            }
        }
        Action::Withdraw { on, .. } if request_day(world.today, on) > world.today => Some("WITHDRAWAL_DATE_IN_FUTURE"),
        Action::Withdraw { reason: WithdrawalReason::MentorNoLongerBeingMentor, on_mentor, .. } => {
            (world.target(on_mentor).kind != ParticipantKind::Mentor).then_some("REASON_FOR_MENTORS_ONLY")
        }
        _ => None,
    };
    if let Some(reason) = refusal {
        prop_assert_eq!(answer.as_ref().map_err(|e| e.reason).err(), Some(reason), "{:?}", action);
    }
    Ok(())
}

/// Pairs of non-empty pauses and deferrals (or deferrals only) that share a
/// day: the engine refuses such overlaps (OVERLAPS_ANOTHER_ABSENCE, P3, P8).
fn overlaps(p: &ParticipantRecord, with_pauses: bool) -> usize {
    let t = p.timeline();
    let mut spans: Vec<(NaiveDate, NaiveDate)> = if with_pauses {
        t.pauses.iter().filter(|x| x.end() > x.start).map(|x| (x.start, x.end())).collect()
    } else {
        Vec::new()
    };
    spans.extend(t.deferrals.iter().filter(|x| x.end() > x.from).map(|x| (x.from, x.end())));
    let mut count = 0;
    for (i, a) in spans.iter().enumerate() {
        count += spans.iter().skip(i + 1).filter(|b| a.0 < b.1 && b.0 < a.1).count();
    }
    count
}

/// Actions the rules allow must be accepted: ending the pause in force
/// early (P4) and recording an early return from the deferral in force (D7).
fn check_allowed(
    world: &World,
    action: &Action,
    answer: &Result<Decision, RuleViolation>,
) -> Result<(), TestCaseError> {
    let today = world.today;
    let Some(now) = world.ect.as_of(today) else { return Ok(()) };
    let allowed = match *action {
        Action::EndPause { days_after_start } => {
            let end = request_day(world.pause_anchor(), days_after_start);
            now.status == TrainingStatus::Paused && now.pause.as_ref().is_some_and(|p| p.start <= end && end < p.end())
        }
        Action::RecordReturn { days } => {
            let on = request_day(world.deferral_anchor(), days);
            now.status == TrainingStatus::Deferred
                && now.deferral.as_ref().is_some_and(|d| d.from <= on && on < d.end() && on <= today)
        }
        _ => false,
    };
    if allowed {
        prop_assert!(answer.is_ok(), "{:?} refused: {:?}", action, answer.as_ref().err());
    }
    Ok(())
}

/// What an accepted decision promises about the status afterwards.
fn check_effect(before: &World, after: &World, action: &Action, decision: &Decision) -> Result<(), TestCaseError> {
    let today = before.today;
    match *action {
        Action::Pause { start, on_mentor: false, .. } => {
            let start = request_day(today, start);
            // P3: only from active, and paused from its start.
            prop_assert_eq!(status(&before.ect, start), Some(TrainingStatus::Active));
            prop_assert_eq!(status(&after.ect, start), Some(TrainingStatus::Paused));
        }
        Action::Defer { from, on_mentor: false, .. } => {
            let from = request_day(today, from);
            // D2: only from active or paused; deferred from its date.
            prop_assert!(matches!(status(&before.ect, from), Some(TrainingStatus::Active | TrainingStatus::Paused)));
            prop_assert_eq!(status(&after.ect, from), Some(TrainingStatus::Deferred));
        }
        Action::ChangeReturnDate { .. } | Action::RecordReturn { .. } => {
            let changed = decision.events.iter().find_map(|e| match &e.kind {
                EventKind::ReturnDateChanged { deferral_id, expected_return } if e.participant_id == ECT_ID => {
                    Some((deferral_id.clone(), *expected_return))
                }
                EventKind::Returned { deferral_id, return_date } if e.participant_id == ECT_ID => {
                    Some((deferral_id.clone(), *return_date))
                }
                _ => None,
            });
            prop_assert!(changed.is_some(), "no return recorded: {:?}", decision);
            if let Some((id, back)) = changed {
                // D6, D7: the deferral changed is the one in force today (a
                // return: on the return date), if one is.
                let on = match *action {
                    Action::RecordReturn { days } => request_day(before.deferral_anchor(), days).min(today),
                    _ => today,
                };
                if let Some(in_force) = before.ect.as_of(on).and_then(|v| v.deferral) {
                    prop_assert_eq!(&id, &in_force.id, "changed another deferral than the one in force on {}", on);
                }
                // The deferral now ends on the new return date, and the
                // participant is deferred up to the day before.
                let span = after.ect.timeline().deferrals.into_iter().find(|d| d.id == id);
                prop_assert!(span.as_ref().is_some_and(|d| d.end() == back && d.from <= back), "{:?}", span);
                if span.is_some_and(|d| d.from < back) {
                    prop_assert_eq!(status(&after.ect, shift(back, -1)), Some(TrainingStatus::Deferred));
                }
            }
        }
        Action::ExtendPause { .. } | Action::EndPause { .. } => {
            // P4: the pause changed is the one in force today (ending it:
            // on the end date, if earlier), if one is.
            let on = match *action {
                Action::EndPause { days_after_start } => {
                    request_day(before.pause_anchor(), days_after_start).min(today)
                }
                _ => today,
            };
            let changed = decision.events.iter().find_map(|e| match &e.kind {
                EventKind::PauseExtended { pause_id, .. } | EventKind::PauseEnded { pause_id, .. } => Some(pause_id),
                _ => None,
            });
            if let (Some(id), Some(in_force)) = (changed, before.ect.as_of(on).and_then(|v| v.pause)) {
                prop_assert_eq!(id, &in_force.id, "changed another pause than the one in force on {}", on);
            }
        }
        Action::Withdraw { on, on_mentor, .. } => {
            let on = request_day(today, on);
            let p = |w: &World| w.target(on_mentor).clone();
            // W4: from active, paused or deferral; withdrawn from its date.
            prop_assert_ne!(status(&p(before), on), Some(TrainingStatus::Withdrawn));
            prop_assert_eq!(status(&p(after), on), Some(TrainingStatus::Withdrawn));
            prop_assert_eq!(status(&p(after), today), Some(TrainingStatus::Withdrawn));
        }
        Action::Reinstate { on_mentor } => {
            let on = today;
            let p = |w: &World| w.target(on_mentor).clone();
            // W9: only a withdrawn participant, and no longer withdrawn from the date.
            prop_assert_eq!(status(&p(before), on), Some(TrainingStatus::Withdrawn));
            prop_assert_ne!(status(&p(after), on), Some(TrainingStatus::Withdrawn));
        }
        _ => {}
    }
    Ok(())
}

fn run_actions(mut world: World, actions: &[Action]) -> Result<(), TestCaseError> {
    check_history(&world.ect, world.today)?;
    for action in actions {
        if !world.passes_converters(action) {
            continue;
        }
        let before = world.clone();
        let answer = world.decide(action);
        // Pure: the same facts give the same answer, and deciding changes nothing.
        prop_assert_eq!(&answer, &world.decide(action), "not deterministic: {:?}", action);
        prop_assert_eq!(&world.ect, &before.ect);
        prop_assert_eq!(&world.mentor, &before.mentor);
        check_always_refused(&world, action, &answer)?;
        check_allowed(&world, action, &answer)?;
        match answer {
            // A refused action records nothing: the world stays as it was.
            Err(refusal) => {
                prop_assert!(is_upper_snake(refusal.reason), "reason {:?}", refusal.reason);
                prop_assert!(!refusal.message.is_empty());
            }
            Ok(decision) => {
                let target = match action {
                    Action::Pause { on_mentor: true, .. }
                    | Action::Defer { on_mentor: true, .. }
                    | Action::Withdraw { on_mentor: true, .. }
                    | Action::Reinstate { on_mentor: true, .. } => MENTOR_ID,
                    _ => ECT_ID,
                };
                check_decision(&decision, target)?;
                world.apply(action, &decision);
                check_effect(&before, &world, action, &decision)?;
                // No accepted action makes two absences overlap.
                let with_pauses = true;
                for (was, now) in [(&before.ect, &world.ect), (&before.mentor, &world.mentor)] {
                    prop_assert!(
                        overlaps(now, with_pauses) <= overlaps(was, with_pauses),
                        "{:?} made absences overlap: {:?}",
                        action,
                        now.timeline()
                    );
                }
            }
        }
        check_history(&world.ect, world.today)?;
        check_history(&world.mentor, world.today)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn lifecycle_sequences_keep_every_invariant(
        world in world(),
        actions in proptest::collection::vec(action(), 1..24),
    ) {
        run_actions(world, &actions)?;
    }
}

// ---------------------------------------------------------------------------
// Bugs the properties found (since fixed), kept as minimal regression tests.
// ---------------------------------------------------------------------------

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
}

/// An ECT registered on 2026-09-01 who, on 2027-01-01, planned a pause
/// 10-20 January and then another 1-10 February.
fn ect_with_two_planned_pauses() -> ParticipantRecord {
    let mut ect = person(ECT_ID, ParticipantKind::Ect, day("2026-09-01"));
    let planned_on = day("2027-01-01");
    for (id, start, end) in [("p1", "2027-01-10", "2027-01-20"), ("p2", "2027-02-01", "2027-02-10")] {
        let decision = lifecycle::pause(&ect, id.into(), day(start), day(end), String::new(), planned_on)
            .expect("a planned pause");
        record(&mut ect, &decision.events, planned_on);
    }
    ect
}

/// An ECT registered on 2026-09-01 who, on 2026-12-01, was deferred from
/// 1 January to 1 March and then, for another absence, from 1 April to 1 May.
fn ect_with_two_planned_deferrals() -> ParticipantRecord {
    let mut ect = person(ECT_ID, ParticipantKind::Ect, day("2026-09-01"));
    let planned_on = day("2026-12-01");
    for (id, from, until) in [("d1", "2027-01-01", "2027-03-01"), ("d2", "2027-04-01", "2027-05-20")] {
        let request = Deferral {
            reason: DeferralReason::LongTermSickness,
            deferral_date: day(from),
            expected_return: day(until),
            note: String::new(),
        };
        let decision = lifecycle::defer(&ect, request, || id.to_owned(), planned_on).expect("a planned deferral");
        record(&mut ect, &decision.events, planned_on);
    }
    ect
}

#[test]
fn bug_p4_the_pause_in_force_can_be_ended_early_when_a_later_one_is_planned() {
    let ect = ect_with_two_planned_pauses();
    let today = day("2027-01-15");
    assert_eq!(status(&ect, today), Some(TrainingStatus::Paused));
    // Today: Err(PAUSE_END_BEFORE_START "the pause starts on 2027-02-01").
    let decision = lifecycle::end_pause(&ect, day("2027-01-16"), today).expect("P4: a pause may be ended early");
    assert!(matches!(&decision.events[0].kind, EventKind::PauseEnded { pause_id, .. } if pause_id == "p1"));
}

#[test]
fn bug_p4_the_pause_in_force_can_be_extended_when_a_later_one_is_planned() {
    let ect = ect_with_two_planned_pauses();
    let today = day("2027-01-15");
    // Today: Err(PAUSE_NOT_EXTENDED "the pause already ends on 2027-02-10").
    let decision = lifecycle::extend_pause(&ect, day("2027-01-25"), today).expect("P4: a pause may be extended");
    assert!(matches!(&decision.events[0].kind, EventKind::PauseExtended { pause_id, .. } if pause_id == "p1"));
}

#[test]
fn bug_d7_an_early_return_from_the_deferral_in_force_is_recorded_when_a_later_one_is_planned() {
    let ect = ect_with_two_planned_deferrals();
    let today = day("2027-02-01");
    assert_eq!(status(&ect, today), Some(TrainingStatus::Deferred));
    // Today: Err(RETURN_BEFORE_DEFERRAL "the deferral starts on 2027-04-01").
    let decision = lifecycle::record_return(&ect, today, today).expect("D7: an earlier return can be recorded");
    assert!(matches!(&decision.events[0].kind, EventKind::Returned { deferral_id, .. } if deferral_id == "d1"));
}

#[test]
fn bug_d6_the_return_date_of_the_deferral_in_force_can_be_changed_when_a_later_one_is_planned() {
    let ect = ect_with_two_planned_deferrals();
    let today = day("2027-02-01");
    // Today: Err(RETURN_NOT_AFTER_DEFERRAL "the deferral starts on 2027-04-01").
    let decision = lifecycle::change_return_date(&ect, day("2027-02-20"), today)
        .expect("D6: the expected return date can be changed");
    assert!(
        matches!(&decision.events[0].kind, EventKind::ReturnDateChanged { deferral_id, .. } if deferral_id == "d1")
    );
}

#[test]
fn bug_d6_a_later_return_date_does_not_swallow_a_pause_planned_after_the_deferral() {
    let today = day("2026-12-01");
    let mut ect = person(ECT_ID, ParticipantKind::Ect, day("2026-09-01"));
    let request = Deferral {
        reason: DeferralReason::ParentalLeave,
        deferral_date: day("2027-01-01"),
        expected_return: day("2027-03-01"),
        note: String::new(),
    };
    let deferred = lifecycle::defer(&ect, request, || "d1".to_owned(), today).expect("deferred");
    record(&mut ect, &deferred.events, today);
    let paused = lifecycle::pause(&ect, "p1".into(), day("2027-03-10"), day("2027-03-20"), String::new(), today)
        .expect("a pause after the return");
    record(&mut ect, &paused.events, today);
    // Today: accepted as is, leaving pause p1 inside deferral d1 (the ECT
    // is deferred on 15 March yet has a pause there: P3 pauses only an active
    // ECT). Either refuse (OVERLAPS_ANOTHER_ABSENCE) or end the pause (P8).
    if let Ok(changed) = lifecycle::change_return_date(&ect, day("2027-04-01"), today) {
        record(&mut ect, &changed.events, today);
    }
    assert_eq!(overlaps(&ect, true), 0, "{:?}", ect.timeline());
}

#[test]
fn bug_p8_a_deferral_leaves_a_pause_planned_after_its_return_alone() {
    let today = day("2026-12-01");
    let mut ect = person(ECT_ID, ParticipantKind::Ect, day("2026-09-01"));
    let paused = lifecycle::pause(&ect, "p1".into(), day("2027-06-01"), day("2027-06-20"), String::new(), today)
        .expect("a pause in June");
    record(&mut ect, &paused.events, today);
    let request = Deferral {
        reason: DeferralReason::ParentalLeave,
        deferral_date: day("2027-01-01"),
        expected_return: day("2027-03-01"),
        note: String::new(),
    };
    // Today: the decision also holds PauseEnded { p1, end: 2027-06-01 } and a
    // LiftHold of p1, so the June absence silently disappears.
    let deferred = lifecycle::defer(&ect, request, || "d1".to_owned(), today).expect("deferred");
    assert!(
        !deferred.events.iter().any(|e| matches!(&e.kind, EventKind::PauseEnded { pause_id, .. } if pause_id == "p1")),
        "{:?}",
        deferred.events
    );
}
