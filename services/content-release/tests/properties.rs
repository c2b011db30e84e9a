//! Property tests (issue 9, item 1): the request converters and the release
//! engine under random input.
//!
//! The converters get arbitrary commands and queries (huge, unicode and
//! control-character ids, unknown enum values, dates at and beyond the
//! calendar's edges, forged page tokens). Each answer is compared with a
//! small independent model: never a panic, Ok exactly when every field is
//! valid, and an Err that names exactly the malformed fields of the request.
//!
//! The release engine (R2) gets random release starts, curricula, pause and
//! deferral holds (some cancelled by a lift) and access revocations. Its
//! schedule never releases a module on a held or revoked day (D4, P5, W5),
//! keeps curriculum order, never releases a module before its offset, moves
//! the planned end for deferrals but never for pauses (D5, P6), only ever
//! gets later when a hold or revocation is added, and is the same for the
//! same facts in any order (R2). After a deferral or a reinstatement the
//! remaining modules run in term time: never on a school-holiday day, each
//! with the term days it still had to wait (D5, W9).

use chrono::{Datelike, NaiveDate};
use proptest::prelude::*;
use steplab_content_release::convert;
use steplab_content_release::domain::feed::{FeedPosition, Release};
use steplab_content_release::domain::period::{self, Period};
use steplab_content_release::domain::release::{ReleaseFacts, Schedule, schedule};
use steplab_content_release::domain::term;
use steplab_content_release::domain::{Curriculum, Hold, HoldKind, Module, Programme, ProgrammeCurriculum, Revocation};
use steplab_platform::paging::{self, Pages};
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::content::v1 as pb;
use steplab_testkit::{calendar, check_answer, flag, opt_date, optional_date_ok, shift};

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

fn awkward_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        3 => proptest::char::range('!', '~'),
        2 => proptest::sample::select(vec![
            '\0', '\n', '\r', '\t', '\u{7f}', '\u{85}', '\u{200b}', '\u{feff}', ' ', '\u{a0}', 'é', '字', '🦀',
        ]),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => proptest::collection::vec(awkward_char(), 0..48).prop_map(String::from_iter),
        1 => Just(String::new()),
        1 => (awkward_char(), 0..70_000usize).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

/// Ids issued elsewhere: printable ASCII, around the 100-byte cap, or anything.
fn id_text() -> BoxedStrategy<String> {
    prop_oneof![
        8 => "[!-~]{1,40}",
        1 => (98..=102usize).prop_map(|n| "i".repeat(n)),
        1 => "[!-~]{0,10}[ é\t][!-~]{0,10}",
        2 => text(),
    ]
    .boxed()
}

fn enum_value(valid: std::ops::RangeInclusive<i32>) -> BoxedStrategy<i32> {
    prop_oneof![4 => valid, 1 => -2..=6i32, 1 => any::<i32>()].boxed()
}

// ---------------------------------------------------------------------------
// The independent model of a valid field
// ---------------------------------------------------------------------------

fn id_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 100 && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

fn required_date(d: Option<&Date>) -> Option<(i32, i32, i32)> {
    d.and_then(calendar)
}

/// A required date a command feeds into a schedule: a calendar day from the
/// first cohort's registration (2021-06-01) to the end of 2040.
fn programme_date(d: Option<&Date>) -> Option<(i32, i32, i32)> {
    required_date(d).filter(|t| ((2021, 6, 1)..=(2040, 12, 31)).contains(t))
}

fn naive(t: (i32, i32, i32)) -> NaiveDate {
    NaiveDate::from_ymd_opt(t.0, t.1 as u32, t.2 as u32).expect("a calendar day")
}

fn ymd(d: NaiveDate) -> (i32, i32, i32) {
    (d.year(), d.month() as i32, d.day() as i32)
}

// ---------------------------------------------------------------------------
// Converter properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn enrol_accepts_exactly_the_valid_commands(
        idempotency_key in id_text(),
        participant_id in id_text(),
        programme in enum_value(1..=2),
        release_start in opt_date(),
        school_id in id_text(),
        delivery_partner_id in id_text(),
    ) {
        let req = pb::EnrolLearnerRequest {
            idempotency_key, participant_id, programme, release_start, school_id, delivery_partner_id,
        };
        let mut expected = Vec::new();
        flag(&mut expected, !id_ok(&req.idempotency_key), "idempotency_key");
        flag(&mut expected, !id_ok(&req.participant_id), "participant_id");
        flag(&mut expected, !(1..=2).contains(&req.programme), "programme");
        flag(&mut expected, programme_date(req.release_start.as_ref()).is_none(), "release_start");
        flag(&mut expected, !id_ok(&req.school_id), "school_id");
        flag(&mut expected, !id_ok(&req.delivery_partner_id), "delivery_partner_id");
        let answer = convert::enrol(&req);
        check_answer(&answer, &expected, &[
            "idempotency_key", "participant_id", "programme", "release_start", "school_id", "delivery_partner_id",
        ])?;
        if let Ok(e) = answer {
            prop_assert_eq!(Some(ymd(e.learner.release_start)), programme_date(req.release_start.as_ref()));
        }
    }

    #[test]
    fn place_hold_accepts_exactly_the_valid_commands_and_never_an_empty_hold(
        idempotency_key in id_text(),
        participant_id in id_text(),
        hold_id in id_text(),
        kind in enum_value(1..=2),
        start_date in opt_date(),
        until in opt_date(),
    ) {
        let req = pb::PlaceHoldRequest { idempotency_key, participant_id, hold_id, kind, start_date, until };
        let (from, until) = (programme_date(req.start_date.as_ref()), programme_date(req.until.as_ref()));
        let mut expected = Vec::new();
        flag(&mut expected, !id_ok(&req.idempotency_key), "idempotency_key");
        flag(&mut expected, !id_ok(&req.participant_id), "participant_id");
        flag(&mut expected, !id_ok(&req.hold_id), "hold_id");
        flag(&mut expected, !(1..=2).contains(&req.kind), "kind");
        flag(&mut expected, from.is_none(), "start_date");
        flag(&mut expected, until.is_none(), "until");
        flag(&mut expected, matches!((from, until), (Some(f), Some(u)) if u <= f), "until");
        let answer = convert::place_hold(&req);
        check_answer(&answer, &expected, &["idempotency_key", "participant_id", "hold_id", "kind", "start_date", "until"])?;
        if let Ok(h) = answer {
            prop_assert!(h.hold.from < h.hold.until);
        }
    }

    #[test]
    fn lift_hold_accepts_exactly_the_valid_commands(
        idempotency_key in id_text(),
        participant_id in id_text(),
        hold_id in id_text(),
        on in opt_date(),
    ) {
        let req = pb::LiftHoldRequest { idempotency_key, participant_id, hold_id, on };
        let mut expected = Vec::new();
        flag(&mut expected, !id_ok(&req.idempotency_key), "idempotency_key");
        flag(&mut expected, !id_ok(&req.participant_id), "participant_id");
        flag(&mut expected, !id_ok(&req.hold_id), "hold_id");
        flag(&mut expected, programme_date(req.on.as_ref()).is_none(), "on");
        check_answer(&convert::lift_hold(&req), &expected, &["idempotency_key", "participant_id", "hold_id", "on"])?;
    }

    #[test]
    fn access_and_release_start_commands_accept_exactly_the_valid_ones(
        idempotency_key in id_text(),
        participant_id in id_text(),
        date in opt_date(),
    ) {
        let mut expected = Vec::new();
        flag(&mut expected, !id_ok(&idempotency_key), "idempotency_key");
        flag(&mut expected, !id_ok(&participant_id), "participant_id");
        let mut dated = expected.clone();
        flag(&mut dated, programme_date(date.as_ref()).is_none(), "effective_date");
        let fields = ["idempotency_key", "participant_id", "effective_date"];
        let revoke = pb::RevokeAccessRequest {
            idempotency_key: idempotency_key.clone(), participant_id: participant_id.clone(), effective_date: date,
        };
        check_answer(&convert::revoke_access(&revoke), &dated, &fields)?;
        let restore = pb::RestoreAccessRequest {
            idempotency_key: idempotency_key.clone(), participant_id: participant_id.clone(), effective_date: date,
        };
        check_answer(&convert::restore_access(&restore), &dated, &fields)?;
        flag(&mut expected, programme_date(date.as_ref()).is_none(), "release_start");
        let start = pb::SetReleaseStartRequest { idempotency_key, participant_id, release_start: date };
        check_answer(
            &convert::set_release_start(&start),
            &expected,
            &["idempotency_key", "participant_id", "release_start"],
        )?;
    }

    #[test]
    fn set_participant_scope_accepts_exactly_the_valid_commands(
        idempotency_key in id_text(),
        participant_id in id_text(),
        school_id in id_text(),
        delivery_partner_id in id_text(),
        start_date in opt_date(),
    ) {
        let req = pb::SetParticipantScopeRequest { idempotency_key, participant_id, school_id, delivery_partner_id, start_date };
        let mut expected = Vec::new();
        flag(&mut expected, !id_ok(&req.idempotency_key), "idempotency_key");
        flag(&mut expected, !id_ok(&req.participant_id), "participant_id");
        flag(&mut expected, !id_ok(&req.school_id), "school_id");
        flag(&mut expected, !id_ok(&req.delivery_partner_id), "delivery_partner_id");
        flag(&mut expected, programme_date(req.start_date.as_ref()).is_none(), "start_date");
        check_answer(
            &convert::set_participant_scope(&req),
            &expected,
            &["idempotency_key", "participant_id", "school_id", "delivery_partner_id", "start_date"],
        )?;
    }

    #[test]
    fn reads_and_progress_records_accept_exactly_the_valid_requests(
        participant_id in id_text(),
        item_id in id_text(),
        date in opt_date(),
        idempotency_key in prop_oneof![Just(String::new()), id_text()],
        caller in text(),
    ) {
        let mut expected = Vec::new();
        flag(&mut expected, !id_ok(&participant_id), "participant_id");
        let mut state = expected.clone();
        flag(&mut state, !optional_date_ok(date.as_ref()), "as_of");
        let query = pb::GetReleaseStateRequest { participant_id: participant_id.clone(), as_of: date };
        check_answer(&convert::get_release_state(&query), &state, &["participant_id", "as_of"])?;

        let record = |item: &'static str, on: &'static str| {
            let mut e = expected.clone();
            flag(&mut e, !id_ok(&item_id), item);
            flag(&mut e, programme_date(date.as_ref()).is_none(), on);
            // The request id is optional: empty means no idempotency.
            flag(&mut e, !idempotency_key.is_empty() && !id_ok(&idempotency_key), "idempotency_key");
            e
        };
        let access = pb::RecordModuleAccessRequest {
            participant_id: participant_id.clone(), module_id: item_id.clone(), accessed_on: date,
            idempotency_key: idempotency_key.clone(),
        };
        check_answer(
            &convert::record_module_access(&access, &caller),
            &record("module_id", "accessed_on"),
            &["participant_id", "module_id", "accessed_on", "idempotency_key"],
        )?;
        let attendance = pb::RecordAttendanceRequest {
            participant_id, event_id: item_id.clone(), attended_on: date, idempotency_key: idempotency_key.clone(),
        };
        check_answer(
            &convert::record_attendance(&attendance, &caller),
            &record("event_id", "attended_on"),
            &["participant_id", "event_id", "attended_on", "idempotency_key"],
        )?;
    }

    #[test]
    fn list_releases_accepts_exactly_the_valid_ranges_pages_and_tokens(
        start_date in opt_date(),
        end_date in opt_date(),
        page_size in prop_oneof![0..=1200i32, any::<i32>()],
        // 0: no token, 1: a token for this range, 2: for another range, 3: forged.
        token_kind in 0..4u8,
        forged in prop_oneof![text(), text().prop_map(|t| format!("r1.{t}")), "r1\\.[0-9a-f]{0,64}"],
        last_participant in text(),
        last_module in text(),
        last_day in (1i32..=9999, 1i32..=12, 1i32..=28),
    ) {
        let (f, t) = (required_date(start_date.as_ref()), required_date(end_date.as_ref()));
        let last = Release {
            participant_id: last_participant,
            module_id: last_module,
            release_date: naive(last_day),
            optional: false,
        };
        let anchor = Some(Date { year: 2026, month: 9, day: 1 });
        let mut req = pb::ListReleasesRequest { start_date, end_date, page_size, page_token: String::new() };
        let pages = Pages::of("svc", &req);
        let anchored = pb::ListReleasesRequest { start_date: anchor, end_date: anchor, ..req.clone() };
        req.page_token = match token_kind {
            0 => String::new(),
            1 => pages.token(Some(&convert::feed_key(&last))),
            2 => Pages::of("svc", &anchored).token(Some(&convert::feed_key(&last))),
            _ => forged,
        };
        let mut expected = Vec::new();
        flag(&mut expected, f.is_none(), "start_date");
        flag(&mut expected, t.is_none(), "end_date");
        flag(&mut expected, matches!((f, t), (Some(f), Some(t)) if t < f), "end_date");
        flag(&mut expected, req.page_size < 0, "page_size");
        // A token must be one made for exactly this request's range (AIP-158).
        let token_ok = match token_kind {
            0 | 1 => true,
            2 => req.start_date == anchor && req.end_date == anchor,
            _ => req.page_token.is_empty(),
        };
        flag(&mut expected, !token_ok, "page_token");
        let answer = convert::list_releases(&req, &pages);
        check_answer(&answer, &expected, &["start_date", "end_date", "page_size", "page_token"])?;
        if let Ok(q) = answer {
            prop_assert!((1..=paging::MAX_PAGE_SIZE).contains(&q.page_size));
            // A token round-trips whatever the ids in it (unicode, controls, huge).
            if !req.page_token.is_empty() {
                prop_assert_eq!(q.after, Some(FeedPosition {
                    release_date: last.release_date,
                    participant_id: last.participant_id,
                    module_id: last.module_id,
                }));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The release engine
// ---------------------------------------------------------------------------

/// The built-in ECT and mentor programmes, or a random valid one: offsets in
/// release order within `0..length_days` (R1, as the curriculum loader checks).
fn curriculum() -> impl Strategy<Value = ProgrammeCurriculum> {
    let random = (1..=3660i64, proptest::collection::vec(0.0..1.0f64, 1..30)).prop_map(|(length_days, fractions)| {
        let mut offsets: Vec<i64> = fractions.iter().map(|f| ((length_days as f64) * f) as i64).collect();
        offsets.sort_unstable();
        ProgrammeCurriculum {
            programme: Programme::Ect,
            length_days,
            modules: offsets
                .into_iter()
                .enumerate()
                .map(|(i, release_offset_days)| Module {
                    module_id: format!("m-{i:02}"),
                    title: format!("Module {i}"),
                    strand: "s".into(),
                    term: 1,
                    release_offset_days: release_offset_days.min(length_days - 1),
                })
                .collect(),
            clinics: vec![],
            conferences: vec![],
        }
    });
    let built_in = Curriculum::built_in().expect("the built-in curriculum");
    let ect = built_in.programme(Programme::Ect).clone();
    let mentor = built_in.programme(Programme::Mentor).clone();
    prop_oneof![2 => Just(ect), 1 => Just(mentor), 2 => random]
}

/// Release starts now, or in the first or last year a command can name.
fn release_start() -> impl Strategy<Value = NaiveDate> {
    let base = NaiveDate::from_ymd_opt(2024, 1, 1).expect("day");
    let first = NaiveDate::from_ymd_opt(1, 1, 1).expect("day");
    let last = NaiveDate::from_ymd_opt(9999, 12, 31).expect("day");
    prop_oneof![
        8 => (0..=2_500i64).prop_map(move |n| shift(base, n)),
        1 => (0..=400i64).prop_map(move |n| shift(first, n)),
        1 => (0..=400i64).prop_map(move |n| shift(last, -n)),
    ]
}

/// Holds as PlaceHold makes them (`from < until`), some shortened or
/// cancelled by a LiftHold (`until <= from`), around the release start.
fn holds(start: NaiveDate) -> impl Strategy<Value = Vec<Hold>> {
    let hold = (
        any::<bool>(),
        -200..=1500i64,
        prop_oneof![3 => 1..=42i64, 2 => 1..=366i64],
        proptest::option::weighted(0.2, -10..=400i64),
    );
    proptest::collection::vec(hold, 0..5).prop_map(move |raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (pause, from, days, lift))| {
                let from = shift(start, from);
                let until = shift(from, days);
                let hold = Hold {
                    hold_id: format!("h{i}"),
                    kind: if pause { HoldKind::Pause } else { HoldKind::Deferral },
                    from,
                    until,
                };
                let until = lift.map_or(until, |l| hold.until_after_lift(shift(from, l)));
                Hold { until, ..hold }
            })
            .collect()
    })
}

/// Revocations as RevokeAccess and RestoreAccess make them (a restore on or
/// after the revocation), some for good.
fn revocations(start: NaiveDate) -> impl Strategy<Value = Vec<Revocation>> {
    let revocation = (-100..=1500i64, proptest::option::weighted(0.7, 0..=400i64));
    proptest::collection::vec(revocation, 0..3).prop_map(move |raw| {
        raw.into_iter()
            .map(|(from, restored)| {
                let revoked_from = shift(start, from);
                Revocation { revoked_from, restored_on: restored.map(|r| shift(revoked_from, r)) }
            })
            .collect()
    })
}

#[derive(Debug, Clone)]
struct Case {
    curriculum: ProgrammeCurriculum,
    start: NaiveDate,
    holds: Vec<Hold>,
    revocations: Vec<Revocation>,
}

fn case() -> impl Strategy<Value = Case> {
    (curriculum(), release_start()).prop_flat_map(|(curriculum, start)| {
        (Just(curriculum), Just(start), holds(start), revocations(start))
            .prop_map(|(curriculum, start, holds, revocations)| Case { curriculum, start, holds, revocations })
    })
}

impl Case {
    fn schedule_with<'c>(&'c self, holds: &[Hold], revocations: &[Revocation]) -> Schedule<'c> {
        schedule(&self.curriculum, ReleaseFacts { release_start: self.start, holds, revocations })
    }

    fn schedule(&self) -> Schedule<'_> {
        self.schedule_with(&self.holds, &self.revocations)
    }
}

/// Release dates by curriculum position; `None` (never released) counts as
/// later than any date.
fn dates_by_position(s: &Schedule<'_>, modules: usize) -> Vec<Option<NaiveDate>> {
    let mut dates = vec![None; modules];
    for m in s.modules() {
        if let Some(slot) = dates.get_mut(m.position) {
            *slot = m.release_date;
        }
    }
    dates
}

fn not_earlier(later: Option<NaiveDate>, earlier: Option<NaiveDate>) -> bool {
    match (later, earlier) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => a >= b,
    }
}

/// The days the programme clock stands still (deferrals and revoked access
/// from the release start on), as the engine counts them.
fn stops(case: &Case, holds: &[Hold], revocations: &[Revocation]) -> Vec<Period> {
    let deferred = holds.iter().filter(|h| h.kind == HoldKind::Deferral).map(|h| Period::new(h.from, Some(h.until)));
    let revoked = revocations.iter().map(|r| Period::new(r.revoked_from, r.restored_on));
    period::union(deferred.chain(revoked).filter_map(|p| p.clipped_to_start_at(case.start)))
}

/// The stop that only starts the programme later (D8): one from the
/// release start, before anything was released.
fn late_start(case: &Case, holds: &[Hold], revocations: &[Revocation]) -> Option<Period> {
    stops(case, holds, revocations).into_iter().next().filter(|p| p.from <= case.start)
}

fn revoked_on(revocations: &[Revocation], day: NaiveDate) -> bool {
    revocations.iter().any(|r| r.revoked_from <= day && r.restored_on.is_none_or(|until| day < until))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn d4_p5_w5_released_modules_avoid_held_and_revoked_days_in_curriculum_order(case in case()) {
        let s = case.schedule();
        let modules = &case.curriculum.modules;
        // Every module once, in release order.
        prop_assert_eq!(s.modules().len(), modules.len());
        let mut positions: Vec<usize> = s.modules().iter().map(|m| m.position).collect();
        positions.sort_unstable();
        prop_assert_eq!(positions, (0..modules.len()).collect::<Vec<_>>());
        for m in s.modules() {
            prop_assert_eq!(&modules[m.position], m.module);
            let Some(day) = m.release_date else { continue };
            // D4, P5: never on a day a deferral or a pause holds release.
            for h in &case.holds {
                prop_assert!(!(h.from <= day && day < h.until), "{} on {} inside {:?}", m.module.module_id, day, h);
            }
            // W5: never on a day access is revoked.
            prop_assert!(!revoked_on(&case.revocations, day), "{} on {} while revoked", m.module.module_id, day);
            // Holds only delay: never before the module's offset.
            prop_assert!(day >= shift(case.start, m.module.release_offset_days), "{} early", m.module.module_id);
        }
        // R1: in curriculum order (a never-released module is last).
        let dates = dates_by_position(&s, modules.len());
        for pair in dates.windows(2) {
            prop_assert!(not_earlier(pair[1], pair[0]), "out of curriculum order: {:?}", dates);
        }
        // The release order lists released modules by date.
        for pair in s.modules().windows(2) {
            prop_assert!(not_earlier(pair[1].release_date, pair[0].release_date));
        }
        // P6: only a module that fell due during a pause is optional.
        if !case.holds.iter().any(|h| h.kind == HoldKind::Pause && h.from < h.until) {
            prop_assert!(s.modules().iter().all(|m| !m.optional));
        }
    }

    #[test]
    fn p6_a_pause_never_moves_the_planned_end_and_only_delays(case in case()) {
        let s = case.schedule();
        let without_pauses: Vec<Hold> = case.holds.iter().filter(|h| h.kind != HoldKind::Pause).cloned().collect();
        let plain = case.schedule_with(&without_pauses, &case.revocations);
        // P6: the planned end does not move for a pause.
        prop_assert_eq!(s.planned_end(), plain.planned_end());
        let (with, without) = (
            dates_by_position(&s, case.curriculum.modules.len()),
            dates_by_position(&plain, case.curriculum.modules.len()),
        );
        for (w, p) in with.iter().zip(&without) {
            prop_assert!(not_earlier(*w, *p), "a pause brought a release forward: {:?} < {:?}", w, p);
        }
    }

    #[test]
    fn r2_more_holds_or_revocations_never_bring_a_release_forward(case in case()) {
        let s = case.schedule();
        let n = case.curriculum.modules.len();
        let all = dates_by_position(&s, n);
        for i in 0..case.holds.len() {
            let mut fewer = case.holds.clone();
            fewer.remove(i);
            // A late start (D8) lays the programme out afresh on the
            // calendar (R1) while a restart part way is term-aligned (D5):
            // a hold that makes a later stop part of the late start can
            // release a module in a holiday sooner than term time would.
            if late_start(&case, &case.holds, &case.revocations) != late_start(&case, &fewer, &case.revocations) {
                continue;
            }
            let less = dates_by_position(&case.schedule_with(&fewer, &case.revocations), n);
            for (a, b) in all.iter().zip(&less) {
                prop_assert!(not_earlier(*a, *b), "hold {:?} brought a release forward", case.holds[i]);
            }
        }
        for i in 0..case.revocations.len() {
            let mut fewer = case.revocations.clone();
            fewer.remove(i);
            if late_start(&case, &case.holds, &case.revocations) != late_start(&case, &case.holds, &fewer) {
                continue;
            }
            let less = dates_by_position(&case.schedule_with(&case.holds, &fewer), n);
            for (a, b) in all.iter().zip(&less) {
                prop_assert!(not_earlier(*a, *b), "revocation {:?} brought a release forward", case.revocations[i]);
            }
        }
    }

    #[test]
    fn r2_the_same_facts_in_any_order_give_the_same_schedule(
        case in case(),
        as_of in -100..=4000i64,
        seed in any::<u64>(),
    ) {
        let s = case.schedule();
        // R2: a pure function of the facts, whatever order they are stored in.
        prop_assert_eq!(&s, &case.schedule());
        let mut holds = case.holds.clone();
        let mut revocations = case.revocations.clone();
        let rotate = |len: usize| if len == 0 { 0 } else { (seed as usize) % len };
        let by = rotate(holds.len());
        holds.rotate_left(by);
        holds.reverse();
        let by = rotate(revocations.len());
        revocations.rotate_left(by);
        prop_assert_eq!(&s, &case.schedule_with(&holds, &revocations));
        // Released-by is a prefix of the one schedule, and next-after its next.
        let day = shift(case.start, as_of);
        let released = s.released_by(day).count();
        prop_assert!(s.modules()[..released].iter().all(|m| m.release_date.is_some_and(|d| d <= day)));
        prop_assert_eq!(s.next_after(day), s.modules()[released..].iter().find(|m| m.release_date.is_some()));
    }

    #[test]
    fn d5_w9_no_module_is_ever_released_on_a_school_holiday_day_after_a_deferral_or_reinstatement(case in case()) {
        let s = case.schedule();
        let Some(restart) = stops(&case, &case.holds, &case.revocations)
            .into_iter()
            .find(|p| late_start(&case, &case.holds, &case.revocations) != Some(*p))
        else {
            return Ok(());
        };
        for m in s.modules() {
            let Some(day) = m.release_date else { continue };
            if day >= restart.from {
                prop_assert!(term::is_term_day(day), "{} on {} after the stop of {}", m.module.module_id, day, restart.from);
            }
        }
        if let Some(end) = s.planned_end() && end >= restart.from {
            prop_assert!(term::is_term_day(end), "planned end {}", end);
        }
    }

    #[test]
    fn d5_after_one_deferral_the_rest_keeps_its_term_days_from_the_return(
        curriculum in curriculum(),
        start in release_start(),
        from in 1..=1500i64,
        days in 43..=366i64,
    ) {
        let case = Case { curriculum, start, holds: vec![], revocations: vec![] };
        let (from, until) = (shift(start, from), shift(shift(start, from), days));
        let deferral = [Hold { hold_id: "d".into(), kind: HoldKind::Deferral, from, until }];
        let n = case.curriculum.modules.len();
        let plain = dates_by_position(&case.schedule(), n);
        let deferred_schedule = case.schedule_with(&deferral, &[]);
        let deferred = dates_by_position(&deferred_schedule, n);
        let Some(back) = term::first_term_day(until) else { return Ok(()) };
        for (p, d) in plain.iter().zip(&deferred) {
            match (p, d) {
                // Released before the deferral: kept.
                (Some(p), _) if *p < from => prop_assert_eq!(Some(*p), *d),
                // D5: the term days it still had to wait, from the return.
                (Some(p), Some(d)) => {
                    prop_assert!(term::is_term_day(*d));
                    prop_assert_eq!(term::term_days_between(back, *d), term::term_days_between(from, *p));
                }
                // Past the calendar's end: never.
                _ => {}
            }
        }
        if let (Some(p), Some(d)) = (case.schedule().planned_end(), deferred_schedule.planned_end()) && p >= from {
            prop_assert_eq!(term::term_days_between(back, d), term::term_days_between(from, p));
        }
    }
}
