//! Property tests (issue 9, item 1): the request converters, the commands
//! that change a payee's facts and the accrual engine under random input.
//!
//! The converters get arbitrary commands and queries (huge, unicode and
//! control-character strings, unknown enum values, dates at and beyond the
//! calendar's edges, forged page tokens). Each answer is compared with a
//! small independent model: never a panic, Ok exactly when every field is
//! valid, and an Err that names exactly the malformed fields of the request.
//!
//! The accrual engine gets random payees on every built-in schedule: random
//! engagement, suspensions (some resumed or cancelled), ends and reopens
//! built by the same command functions the service uses, coverage changes
//! and moves. It never pays more than the schedule's total, earns each
//! milestone at most once and in order, earns nothing on a day accrual is
//! suspended, ended (until a reopen), out of area or for an ineligible
//! mentor (F2-F4, S2, M4), explains every window it does not pay (F6), and
//! a statement's total is the sum of its lines.

use chrono::{Datelike, NaiveDate};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use steplab_payments::convert;
use steplab_payments::domain::PayeeKind;
use steplab_payments::domain::accrual::{
    self, Closure, CoverageChange, ExclusionReason, Facts, Outcome, Placement, PlacementChange, Plan, Suspension,
    WindowOutcome,
};
use steplab_payments::domain::commands::{self, Change};
use steplab_payments::domain::schedule::{Schedule, ScheduleBook};
use steplab_payments::store::OutcomeRow;
use steplab_platform::ids::DeliveryPartnerId;
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::payments::v1 as pb;
use steplab_testkit::{calendar, check_answer, flag, opt_date, optional_date_ok, shift};

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

fn awkward_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        3 => proptest::char::range('!', '~'),
        2 => proptest::sample::select(vec![
            '\0', '\n', '\r', '\t', '\u{7f}', '\u{85}', '\u{200b}', '\u{feff}', '\u{202e}', ' ', '\u{a0}', 'é', '字', '🦀', '/',
            '.',
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

const UUID_POOL: [u128; 3] = [0x0190_a1b2_c3d4_7e5f_8a9b_0c1d_2e3f_4a5b, 0, u128::MAX];

fn format_uuid(n: u128, form: u8) -> String {
    let hex = format!("{n:032x}");
    let hyphenated = format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32]);
    match form {
        0 => hyphenated,
        1 => hyphenated.to_uppercase(),
        2 => hex,
        3 => format!("{{{hyphenated}}}"),
        4 => format!("urn:uuid:{hyphenated}"),
        5 => format!("{hyphenated} "),
        _ => hyphenated.replacen('-', "", 1),
    }
}

/// Participant service ids (UUIDs in any form `uuid` reads), or anything.
fn uuid_text() -> BoxedStrategy<String> {
    let value = prop_oneof![proptest::sample::select(UUID_POOL.to_vec()), any::<u128>()];
    prop_oneof![
        8 => (value, prop_oneof![4 => 0..5u8, 1 => 5..7u8]).prop_map(|(n, form)| format_uuid(n, form)),
        2 => text(),
    ]
    .boxed()
}

/// Ids chosen by a caller (command ids, suspension ids, request ids).
fn token_text() -> BoxedStrategy<String> {
    prop_oneof![
        8 => "[!-~]{1,40}",
        1 => (98..=102usize).prop_map(|n| "c".repeat(n)),
        1 => "[!-~]{0,10}[ é\t][!-~]{0,10}",
        2 => text(),
    ]
    .boxed()
}

fn enum_value(valid: std::ops::RangeInclusive<i32>) -> BoxedStrategy<i32> {
    prop_oneof![4 => valid, 1 => -2..=10i32, 1 => any::<i32>()].boxed()
}

fn note_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[ \\t\\r\\n]{0,2}[a-z0-9 ,.!?\\n]{0,80}[ \\t\\r\\n]{0,2}",
        1 => (1995..=2005usize, 0..3usize).prop_map(|(n, pad)| format!("{}{}", " ".repeat(pad), "n".repeat(n))),
        2 => text(),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// The independent model of a valid field
// ---------------------------------------------------------------------------

/// What `uuid` parses: 32 hex digits, or 8-4-4-4-12 alone, in braces or
/// after `urn:uuid:`.
fn uuid_ok(s: &str) -> bool {
    let body = match s.len() {
        38 => s.strip_prefix('{').and_then(|b| b.strip_suffix('}')),
        45 => s.strip_prefix("urn:uuid:"),
        _ => Some(s),
    };
    let Some(body) = body else { return false };
    let bytes = body.as_bytes();
    match bytes.len() {
        32 => s.len() == 32 && bytes.iter().all(u8::is_ascii_hexdigit),
        36 => bytes
            .iter()
            .enumerate()
            .all(|(i, b)| if [8, 13, 18, 23].contains(&i) { *b == b'-' } else { b.is_ascii_hexdigit() }),
        _ => false,
    }
}

fn token_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 100 && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// A required date a command feeds into a schedule: a calendar day from the
/// first cohort's registration (2021-06-01) to the end of 2040.
fn required_date(d: Option<&Date>) -> Option<(i32, i32, i32)> {
    d.and_then(calendar).filter(|t| ((2021, 6, 1)..=(2040, 12, 31)).contains(t))
}

/// Payments' note: at most 2,000 chars, no control character but line
/// breaks and tabs, no bidirectional control.
fn note_ok(s: &str) -> bool {
    let bidi =
        |c: char| matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    s.chars().count() <= 2000 && s.chars().all(|c| (!c.is_control() || matches!(c, '\n' | '\t' | '\r')) && !bidi(c))
}

/// `<schedule>/<cohort>/<milestone>` with a positive cohort.
fn window_ok(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    parts.len() == 3 && !parts[0].is_empty() && !parts[2].is_empty() && parts[1].parse::<i32>().is_ok_and(|c| c > 0)
}

// ---------------------------------------------------------------------------
// Converter properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn enrol_accepts_exactly_the_valid_commands(
        idempotency_key in token_text(),
        participant_id in uuid_text(),
        delivery_partner_id in uuid_text(),
        schedule in prop_oneof![4 => Just("ecf-standard-september".to_owned()), 1 => text()],
        cohort in prop_oneof![4 => 2021..=2030i32, 1 => any::<i32>(), 1 => -1..=1i32],
        funding_eligible in proptest::option::weighted(0.9, proptest::bool::weighted(0.8)),
        participant_kind in enum_value(1..=2),
        school_id in uuid_text(),
    ) {
        let req = pb::EnrolPayeeRequest {
            idempotency_key, participant_id, delivery_partner_id, schedule, cohort, funding_eligible, participant_kind,
            school_id,
        };
        let mut expected = Vec::new();
        flag(&mut expected, !token_ok(&req.idempotency_key), "idempotency_key");
        flag(&mut expected, !uuid_ok(&req.participant_id), "participant_id");
        flag(&mut expected, !uuid_ok(&req.delivery_partner_id), "delivery_partner_id");
        flag(&mut expected, req.schedule.trim().is_empty(), "schedule");
        flag(&mut expected, req.cohort <= 0, "cohort");
        // Induction coordinators are no payees; only ECTs and mentors enrol.
        flag(&mut expected, !(1..=2).contains(&req.participant_kind), "participant_kind");
        // M4: only a mentor may be enrolled unfunded.
        flag(
            &mut expected,
            req.funding_eligible.is_none() || (req.participant_kind == 1 && req.funding_eligible == Some(false)),
            "funding_eligible",
        );
        flag(&mut expected, !uuid_ok(&req.school_id), "school_id");
        check_answer(&convert::enrol(&req), &expected, &[
            "idempotency_key", "participant_id", "delivery_partner_id", "schedule", "cohort", "funding_eligible",
            "participant_kind", "school_id",
        ])?;
    }

    #[test]
    fn suspend_and_resume_accept_exactly_the_valid_commands(
        idempotency_key in token_text(),
        participant_id in uuid_text(),
        suspension_id in token_text(),
        start_date in opt_date(),
        until in opt_date(),
    ) {
        let (f, u) = (required_date(start_date.as_ref()), required_date(until.as_ref()));
        let mut head = Vec::new();
        flag(&mut head, !token_ok(&idempotency_key), "idempotency_key");
        flag(&mut head, !uuid_ok(&participant_id), "participant_id");
        flag(&mut head, !token_ok(&suspension_id), "suspension_id");
        let mut expected = head.clone();
        flag(&mut expected, f.is_none(), "start_date");
        flag(&mut expected, u.is_none(), "until");
        flag(&mut expected, matches!((f, u), (Some(f), Some(u)) if u <= f), "until");
        let req = pb::SuspendAccrualRequest {
            idempotency_key: idempotency_key.clone(), participant_id: participant_id.clone(),
            suspension_id: suspension_id.clone(), start_date, until,
        };
        let answer = convert::suspend(&req);
        check_answer(&answer, &expected, &["idempotency_key", "participant_id", "suspension_id", "start_date", "until"])?;
        if let Ok(s) = answer {
            prop_assert!(s.from < s.until);
        }
        flag(&mut head, f.is_none(), "on");
        let resume = pb::ResumeAccrualRequest { idempotency_key, participant_id, suspension_id, on: start_date };
        check_answer(&convert::resume(&resume), &head, &["idempotency_key", "participant_id", "suspension_id", "on"])?;
    }

    #[test]
    fn dated_commands_accept_exactly_the_valid_ones(
        idempotency_key in token_text(),
        participant_id in uuid_text(),
        school_id in uuid_text(),
        delivery_partner_id in uuid_text(),
        date in opt_date(),
        covered in proptest::option::weighted(0.9, any::<bool>()),
    ) {
        let mut head = Vec::new();
        flag(&mut head, !token_ok(&idempotency_key), "idempotency_key");
        flag(&mut head, !uuid_ok(&participant_id), "participant_id");
        let bad_date = required_date(date.as_ref()).is_none();
        let mut dated = head.clone();
        flag(&mut dated, bad_date, "effective_date");
        let fields = ["idempotency_key", "participant_id", "effective_date"];
        let end = pb::EndAccrualRequest {
            idempotency_key: idempotency_key.clone(), participant_id: participant_id.clone(), effective_date: date,
        };
        check_answer(&convert::end(&end), &dated, &fields)?;
        let reopen = pb::ReopenAccrualRequest {
            idempotency_key: idempotency_key.clone(), participant_id: participant_id.clone(), effective_date: date,
        };
        check_answer(&convert::reopen(&reopen), &dated, &fields)?;
        let mut coverage = head.clone();
        flag(&mut coverage, covered.is_none(), "covered");
        flag(&mut coverage, bad_date, "start_date");
        let area = pb::SetAreaCoveredRequest {
            idempotency_key: idempotency_key.clone(), participant_id: participant_id.clone(), covered, start_date: date,
        };
        check_answer(&convert::coverage(&area), &coverage, &["idempotency_key", "participant_id", "covered", "start_date"])?;
        let mut scope = head;
        flag(&mut scope, !uuid_ok(&school_id), "school_id");
        flag(&mut scope, !uuid_ok(&delivery_partner_id), "delivery_partner_id");
        flag(&mut scope, bad_date, "start_date");
        let moved = pb::SetParticipantScopeRequest {
            idempotency_key, participant_id, school_id, delivery_partner_id, start_date: date,
        };
        check_answer(
            &convert::placement(&moved),
            &scope,
            &["idempotency_key", "participant_id", "school_id", "delivery_partner_id", "start_date"],
        )?;
    }

    #[test]
    fn engagement_and_accrual_reads_accept_exactly_the_valid_requests(
        participant_id in uuid_text(),
        occurred_on in opt_date(),
        kind in enum_value(1..=7),
        idempotency_key in prop_oneof![4 => token_text(), 1 => Just(String::new())],
        note in note_text(),
        caller in text(),
    ) {
        let mut expected = Vec::new();
        flag(&mut expected, !uuid_ok(&participant_id), "participant_id");
        let mut read = expected.clone();
        flag(&mut expected, required_date(occurred_on.as_ref()).is_none(), "occurred_on");
        flag(&mut expected, !(1..=7).contains(&kind), "kind");
        // Required: engagement earns money, so a retry must not count twice.
        flag(&mut expected, !token_ok(&idempotency_key), "idempotency_key");
        flag(&mut expected, !note_ok(&note), "note");
        let req = pb::RecordEngagementRequest {
            participant_id: participant_id.clone(), occurred_on, kind, idempotency_key, note: note.clone(),
        };
        let answer = convert::engagement(&req, &caller);
        check_answer(&answer, &expected, &["participant_id", "occurred_on", "kind", "idempotency_key", "note"])?;
        if let Ok(e) = answer {
            prop_assert_eq!(e.note.as_str(), note.trim());
        }
        flag(&mut read, !optional_date_ok(occurred_on.as_ref()), "as_of");
        let query = pb::GetAccrualRequest { participant_id, as_of: occurred_on };
        check_answer(&convert::accrual_query(&query), &read, &["participant_id", "as_of"])?;
    }

    #[test]
    fn statement_and_schedule_queries_accept_exactly_the_valid_ones(
        window in prop_oneof![
            4 => Just("ecf-standard-september/2025/started".to_owned()),
            2 => ("[a-z-]{0,12}", prop_oneof![Just("2025".to_owned()), "[+-]?[0-9]{1,11}", text()], "[a-z0-9-]{0,10}")
                .prop_map(|(s, c, m)| format!("{s}/{c}/{m}")),
            1 => text(),
        ],
        delivery_partner_id in prop_oneof![2 => Just(String::new()), 3 => uuid_text()],
        page_size in prop_oneof![0..=1200i32, any::<i32>()],
        // 0: none, 1: made for this window and partner, 2: for another, 3: forged.
        token_kind in 0..4u8,
        last in "[0-9a-f-]{1,40}",
        forged in prop_oneof![text(), text().prop_map(|t| format!("after:{t}"))],
        cohort in prop_oneof![0..=2030i32, any::<i32>()],
        schedules_page_size in prop_oneof![0..=10i32, any::<i32>()],
        schedules_token in prop_oneof![3 => Just(String::new()), 1 => text()],
    ) {
        let dp = uuid_ok(&delivery_partner_id)
            .then(|| uuid::Uuid::parse_str(&delivery_partner_id).map(|u| u.hyphenated().to_string()).ok())
            .flatten();
        let page_token = match token_kind {
            0 => String::new(),
            1 => convert::statement_token(&window, dp.as_deref(), &last),
            2 => convert::statement_token("ecf-standard-april/2021/completed", Some("elsewhere"), &last),
            _ => forged,
        };
        let req = pb::GetStatementRequest {
            window: window.clone(), delivery_partner_id: delivery_partner_id.clone(), page_size, page_token,
        };
        let mut expected = Vec::new();
        flag(&mut expected, !window_ok(&window), "window");
        flag(&mut expected, !delivery_partner_id.is_empty() && !uuid_ok(&delivery_partner_id), "delivery_partner_id");
        flag(&mut expected, page_size < 0, "page_size");
        // A token is one made for this window and delivery partner.
        let good_token = req.page_token.is_empty() || token_kind == 1;
        flag(&mut expected, !good_token, "page_token");
        let answer = convert::statement_query(&req);
        check_answer(&answer, &expected, &["window", "delivery_partner_id", "page_size", "page_token"])?;
        if let Ok(q) = answer {
            prop_assert!((1..=convert::MAX_STATEMENT_PAGE).contains(&q.page_size));
            prop_assert_eq!(q.after, (token_kind == 1).then_some(last));
        }

        let list = pb::ListSchedulesRequest {
            cohort, page_size: schedules_page_size, page_token: schedules_token.clone(),
        };
        let mut expected = Vec::new();
        flag(&mut expected, cohort < 0, "cohort");
        flag(&mut expected, schedules_page_size < 0, "page_size");
        flag(&mut expected, !schedules_token.is_empty(), "page_token");
        let answer = convert::schedules_query(&list);
        check_answer(&answer, &expected, &["cohort", "page_size", "page_token"])?;
        if let Ok(c) = answer {
            prop_assert_eq!(c, (cohort > 0).then_some(cohort));
        }
    }
}

// ---------------------------------------------------------------------------
// The accrual engine
// ---------------------------------------------------------------------------

fn book() -> &'static ScheduleBook {
    static BOOK: OnceLock<ScheduleBook> = OnceLock::new();
    BOOK.get_or_init(|| ScheduleBook::generated().expect("the built-in schedules"))
}

fn schedules() -> Vec<&'static Schedule> {
    book().schedules(None).collect()
}

fn placement(n: u8) -> Placement {
    Placement { school_id: format!("school-{n}"), delivery_partner_id: format!("dp-{n}") }
}

/// One command of the participant service that changes accrual.
#[derive(Debug, Clone)]
enum Command {
    Suspend { id: u8, from: i64, days: i64 },
    Resume { id: u8, on: i64 },
    End { on: i64 },
    Reopen { on: i64 },
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        3 => (0..3u8, -60..=900i64, prop_oneof![1..=120i64, 1..=366i64])
            .prop_map(|(id, from, days)| Command::Suspend { id, from, days }),
        1 => (0..3u8, -60..=1200i64).prop_map(|(id, on)| Command::Resume { id, on }),
        2 => (-60..=1100i64).prop_map(|on| Command::End { on }),
        2 => (-60..=1300i64).prop_map(|on| Command::Reopen { on }),
    ]
}

#[derive(Debug, Clone)]
struct Payee {
    schedule: usize,
    facts: Facts,
}

/// Days counted from the schedule's first window start.
fn payee(schedule: usize) -> impl Strategy<Value = Payee> {
    let start = schedules()[schedule].windows.first().map(|w| w.start).unwrap_or(NaiveDate::MIN);
    (
        any::<bool>(),
        proptest::bool::weighted(0.85),
        proptest::collection::vec(-90..=1400i64, 0..40),
        proptest::collection::vec(command(), 0..8),
        proptest::collection::vec((-30..=1200i64, proptest::bool::weighted(0.4)), 0..3),
        proptest::collection::vec((0..=1200i64, 1..4u8), 0..3),
    )
        .prop_map(move |(mentor, funding_eligible, engagement, commands, coverage, moves)| {
            let kind = if mentor { PayeeKind::Mentor } else { PayeeKind::Ect };
            let mut facts = Facts::enrolled(kind, funding_eligible || kind == PayeeKind::Ect, placement(0));
            facts.engagement = engagement.into_iter().map(|d| shift(start, d)).collect();
            for c in commands {
                apply(&mut facts, &c, start);
            }
            facts.coverage =
                coverage.into_iter().map(|(d, covered)| CoverageChange { from: shift(start, d), covered }).collect();
            facts.moves = moves
                .into_iter()
                .map(|(d, n)| PlacementChange { from: shift(start, d), placement: placement(n) })
                .collect();
            facts.normalise();
            Payee { schedule, facts }
        })
}

/// Applies a command as the service does, through the domain's command
/// functions; a refusal changes nothing.
fn apply(facts: &mut Facts, command: &Command, start: NaiveDate) {
    match *command {
        Command::Suspend { id, from, days } => {
            let from = shift(start, from);
            match commands::suspend(&facts.suspensions, &format!("s{id}"), from, shift(from, days)) {
                Change::Insert(s) => facts.suspensions.push(s),
                Change::Update(i, s) => facts.suspensions[i] = s,
                Change::Unchanged => {}
            }
        }
        Command::Resume { id, on } => {
            if let Some(i) = facts.suspensions.iter().position(|s| s.id == format!("s{id}"))
                && let Some(s) = commands::resume(&facts.suspensions[i], shift(start, on))
            {
                facts.suspensions[i] = s;
            }
        }
        Command::End { on } => match commands::end(&facts.closures, shift(start, on)) {
            Ok(Change::Insert(c)) => facts.closures.push(c),
            Ok(Change::Update(i, c)) => facts.closures[i] = c,
            Ok(Change::Unchanged) | Err(_) => {}
        },
        Command::Reopen { on } => match commands::reopen(&facts.closures, shift(start, on)) {
            Ok(Change::Insert(c)) => facts.closures.push(c),
            Ok(Change::Update(i, c)) => facts.closures[i] = c,
            Ok(Change::Unchanged) | Err(_) => {}
        },
    }
}

fn any_payee() -> impl Strategy<Value = Payee> {
    (0..schedules().len()).prop_flat_map(payee)
}

/// Independent of the engine's own lookups: accrual counts on `day` when
/// the payee is eligible, no non-empty suspension and no closure covers it,
/// and the latest coverage change on or before it (the later of two on one
/// day) says covered.
fn qualifies(facts: &Facts, day: NaiveDate) -> bool {
    let suspended = facts.suspensions.iter().any(|s| s.from <= day && day < s.until);
    let ended = facts.closures.iter().any(|c| c.ended_on <= day && c.reopened_on.is_none_or(|r| day < r));
    let covered = facts.coverage.iter().rev().find(|c| c.from <= day).is_none_or(|c| c.covered);
    facts.funding_eligible && !suspended && !ended && covered
}

fn earned(out: &[WindowOutcome<'_>]) -> Vec<(String, i64, NaiveDate)> {
    out.iter()
        .filter_map(|o| match &o.outcome {
            Outcome::Earned { milestone, amount_pence, earned_on } => {
                Some((milestone.clone(), *amount_pence, *earned_on))
            }
            Outcome::Excluded { .. } => None,
        })
        .collect()
}

fn check_outcomes(
    plan: &Plan<'_>,
    facts: &Facts,
    out: &[WindowOutcome<'_>],
    as_of: Option<NaiveDate>,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(out.len(), plan.windows.len());
    let own: Vec<&str> = plan.schedule.windows.iter().map(|w| w.milestone.as_str()).collect();
    let got = earned(out);
    // F2: each milestone at most once, in the schedule's order, at its fee.
    prop_assert!(got.len() <= own.len());
    for (i, (milestone, amount, _)) in got.iter().enumerate() {
        prop_assert_eq!(milestone.as_str(), own[i]);
        prop_assert_eq!(Some(amount), plan.fees_pence.get(i));
        prop_assert!(*amount > 0);
    }
    // F3: never more than the schedule's total.
    let total: i64 = got.iter().map(|(_, a, _)| a).sum();
    prop_assert!(total <= plan.total_pence(), "{total} > {}", plan.total_pence());
    let mut paid = 0;
    for (o, window) in out.iter().zip(&plan.windows) {
        prop_assert_eq!(o.window, *window);
        let last_day = as_of.map_or(window.end, |a| a.min(window.end));
        let engaged: Vec<NaiveDate> =
            facts.engagement.iter().copied().filter(|d| window.start <= *d && *d <= last_day).collect();
        match &o.outcome {
            Outcome::Earned { earned_on, .. } => {
                paid += 1;
                // Earned on a day of engagement in the window, and not on a
                // suspended, ended, uncovered or ineligible day (F2-F4, S2, M4).
                prop_assert!(engaged.contains(earned_on), "earned on {earned_on} without engagement");
                prop_assert!(qualifies(facts, *earned_on), "earned on {earned_on}, a day that does not qualify");
                // On the first qualifying day.
                prop_assert_eq!(engaged.iter().copied().find(|d| qualifies(facts, *d)), Some(*earned_on));
                prop_assert_eq!(&o.delivery_partner_id, &facts.placement_on(*earned_on).delivery_partner_id);
            }
            Outcome::Excluded { reason, detail } => {
                // F6: each left-out window says why, and the reason holds.
                prop_assert!(!detail.is_empty());
                let first_qualifying = engaged.iter().copied().find(|d| qualifies(facts, *d));
                prop_assert!(
                    first_qualifying.is_none() || paid == own.len(),
                    "{:?} left out on {:?}",
                    reason,
                    first_qualifying
                );
                let (start, end) = (window.start, window.end);
                let withdrawn = facts
                    .closures
                    .iter()
                    .any(|c| c.ended_on <= end && c.reopened_on.is_none_or(|r| r > start && r > c.ended_on));
                let deferred = facts.suspensions.iter().any(|s| s.from < s.until && s.from <= end && s.until > start);
                let holds = match reason {
                    ExclusionReason::IneligibleMentor => !facts.funding_eligible,
                    ExclusionReason::AlreadyPaidAllMilestones => paid == own.len(),
                    ExclusionReason::Withdrawn => withdrawn,
                    ExclusionReason::Deferred => deferred,
                    ExclusionReason::OutOfArea => facts.coverage.iter().any(|c| !c.covered),
                    ExclusionReason::NoEngagement => engaged.is_empty(),
                };
                prop_assert!(holds, "{:?} does not hold for {}: {}", reason, window.id, detail);
            }
        }
    }
    Ok(())
}

/// Each suspension id once; closures in date order, none overlapping, at
/// most the last one still open, each reopened on or after its end.
fn check_command_state(facts: &Facts) -> Result<(), TestCaseError> {
    let ids: BTreeSet<&str> = facts.suspensions.iter().map(|s| s.id.as_str()).collect();
    prop_assert_eq!(ids.len(), facts.suspensions.len());
    for (i, c) in facts.closures.iter().enumerate() {
        prop_assert!(c.reopened_on.is_none_or(|r| r >= c.ended_on), "{:?}", c);
        if let Some(next) = facts.closures.get(i + 1) {
            prop_assert!(c.reopened_on.is_some_and(|r| r <= next.ended_on), "{:?} then {:?}", c, next);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn f2_f4_accrual_never_exceeds_the_total_and_pays_only_qualifying_days(
        p in any_payee(),
        as_of in -100..=1600i64,
    ) {
        let schedule = schedules()[p.schedule];
        check_command_state(&p.facts)?;
        let plan = Plan::new(book(), schedule, &p.facts);
        prop_assert!(plan.is_some(), "the built-in book prices every milestone");
        let Some(plan) = plan else { return Ok(()) };
        // Without a suspension or a reinstatement there are no extra windows (F3).
        if !p.facts.stretched() {
            prop_assert_eq!(plan.windows.len(), schedule.windows.len());
        }
        let all = accrual::outcomes(&plan, &p.facts, None);
        check_outcomes(&plan, &p.facts, &all, None)?;
        // As of a date: what was earned by then, and nothing else (F2).
        let day = shift(schedule.windows[0].start, as_of);
        let partial = accrual::outcomes(&plan, &p.facts, Some(day));
        check_outcomes(&plan, &p.facts, &partial, Some(day))?;
        let by_then: Vec<_> = earned(&all).into_iter().filter(|(_, _, on)| *on <= day).collect();
        prop_assert_eq!(earned(&accrual::earned_by(&plan, &p.facts, day)), by_then.clone());
        // GetAccrual's total is the sum of its milestones.
        let response = convert::accrual("p", &plan, &p.facts, &accrual::earned_by(&plan, &p.facts, day), &[], day);
        prop_assert_eq!(response.total_pence, response.milestones.iter().map(|m| m.amount_pence).sum::<i64>());
        prop_assert_eq!(response.total_pence, by_then.iter().map(|(_, a, _)| a).sum::<i64>());
        prop_assert!(response.total_pence <= plan.total_pence());
    }

    #[test]
    fn f2_accrual_is_the_same_for_the_same_facts_in_any_order(p in any_payee(), seed in any::<u64>()) {
        let schedule = schedules()[p.schedule];
        let Some(plan) = Plan::new(book(), schedule, &p.facts) else { return Ok(()) };
        let once = accrual::outcomes(&plan, &p.facts, None);
        prop_assert_eq!(&once, &accrual::outcomes(&plan, &p.facts, None));
        // Engagement and suspensions as the store may load them: any order,
        // engagement repeated.
        let mut shuffled = p.facts.clone();
        shuffled.engagement.extend(p.facts.engagement.iter().rev().take(3).copied());
        let by = if shuffled.engagement.is_empty() { 0 } else { (seed as usize) % shuffled.engagement.len() };
        shuffled.engagement.rotate_left(by);
        shuffled.suspensions.reverse();
        shuffled.normalise();
        let plan2 = Plan::new(book(), schedule, &shuffled);
        prop_assert!(plan2.is_some());
        if let Some(plan2) = plan2 {
            prop_assert_eq!(once, accrual::outcomes(&plan2, &shuffled, None));
        }
    }

    #[test]
    fn w9_a_refused_end_or_reopen_changes_nothing(
        commands in proptest::collection::vec(command(), 0..12),
        end_on in -60..=1300i64,
        reopen_on in -60..=1300i64,
    ) {
        let start = NaiveDate::from_ymd_opt(2025, 6, 1).expect("day");
        let mut facts = Facts::enrolled(PayeeKind::Ect, true, placement(0));
        for c in &commands {
            apply(&mut facts, c, start);
            check_command_state(&facts)?;
        }
        // A refusal is an answer, not a change: the functions only read.
        let before = facts.closures.clone();
        if let Err(e) = commands::end(&facts.closures, shift(start, end_on)) {
            prop_assert_eq!(e.reason, "END_BEFORE_REOPEN");
            prop_assert!(facts.closures.last().and_then(|c| c.reopened_on).is_some_and(|r| shift(start, end_on) < r));
        }
        if let Err(e) = commands::reopen(&facts.closures, shift(start, reopen_on)) {
            prop_assert_eq!(e.reason, "REOPEN_BEFORE_END");
            let open_and_later =
                facts.closures.last().is_some_and(|c| c.reopened_on.is_none() && shift(start, reopen_on) < c.ended_on);
            prop_assert!(open_and_later);
        }
        prop_assert_eq!(before, facts.closures);
    }

    #[test]
    fn f6_a_statements_total_is_the_sum_of_its_lines(
        payees in (0..schedules().len()).prop_flat_map(|s| proptest::collection::vec(payee(s), 1..8)),
    ) {
        let schedule = schedules()[payees[0].schedule];
        // Every payee's stored outcomes, as the service writes them.
        let mut rows: BTreeMap<String, Vec<OutcomeRow>> = BTreeMap::new();
        for (i, p) in payees.iter().enumerate() {
            let Some(plan) = Plan::new(book(), schedule, &p.facts) else { continue };
            for o in accrual::outcomes(&plan, &p.facts, None) {
                let row = OutcomeRow::from_outcome(&format!("participant-{i}"), &o);
                prop_assert_eq!(row.amount_pence == 0, row.milestone.is_none(), "an exclusion pays nothing");
                rows.entry(row.window_id.clone()).or_default().push(row);
            }
        }
        for (window_id, rows) in rows {
            let dps: BTreeSet<String> = rows.iter().map(|r| r.delivery_partner_id.clone()).collect();
            let scopes = std::iter::once(None).chain(dps.into_iter().map(Some));
            for dp in scopes {
                let page: Vec<OutcomeRow> =
                    rows.iter().filter(|r| dp.as_ref().is_none_or(|d| &r.delivery_partner_id == d)).cloned().collect();
                // The kept total is the SUM of the stored amounts (store::statement_total).
                let total: i64 = page.iter().map(|r| r.amount_pence).sum();
                let query = convert::StatementQuery {
                    window_id: window_id.clone(),
                    delivery_partner_id: dp.clone().map(DeliveryPartnerId::from_trusted),
                    page_size: 1000,
                    after: None,
                };
                // The store turns stored rows into statement entries, refusing an unknown reason.
                let entries: Option<Vec<_>> = page.iter().cloned().map(|r| r.entry().ok()).collect();
                let statement = entries
                    .map(|entries| convert::statement_page(&query, entries, &Default::default(), total, String::new()));
                prop_assert!(statement.is_some(), "every stored reason is known");
                let Some(statement) = statement else { continue };
                prop_assert_eq!(statement.total_pence, statement.lines.iter().map(|l| l.amount_pence).sum::<i64>());
                prop_assert_eq!(statement.lines.len() + statement.exclusions.len(), page.len());
                // F6: every payee left out is explained.
                for e in &statement.exclusions {
                    prop_assert_ne!(e.reason, pb::ExclusionReason::Unspecified as i32);
                    prop_assert!(!e.detail.is_empty());
                }
                let ids: BTreeSet<&str> = statement
                    .lines
                    .iter()
                    .map(|l| l.participant_id.as_str())
                    .chain(statement.exclusions.iter().map(|e| e.participant_id.as_str()))
                    .collect();
                prop_assert_eq!(ids.len(), page.len(), "each payee once per window");
            }
        }
    }
}

#[test]
fn the_built_in_book_covers_every_schedule_start() {
    // The generators above pick among these; make sure there are several.
    let starts: BTreeSet<u32> = schedules().iter().filter_map(|s| s.windows.first()).map(|w| w.start.month()).collect();
    assert!(starts.len() >= 3, "{starts:?}");
}

/// A payee in training whose programme was stretched by suspensions and
/// withdrawals that were reinstated (F3), on any of the tested schedules.
fn stretched_payee() -> impl Strategy<Value = (usize, Facts)> {
    let stop = (0..1400i64, 1..=500i64, any::<bool>());
    (0..schedules().len(), proptest::collection::vec(stop, 1..4)).prop_map(|(schedule, stops)| {
        let mut facts = Facts::enrolled(PayeeKind::Ect, true, placement(0));
        let first = schedules()[schedule].windows[0].start;
        for (i, (from, days, closed)) in stops.into_iter().enumerate() {
            let from = shift(first, from);
            let until = shift(from, days);
            if closed {
                facts.closures.push(Closure { ended_on: from, reopened_on: Some(until) });
            } else {
                facts.suspensions.push(Suspension { id: format!("s{i}"), from, until });
            }
        }
        facts.normalise();
        (schedule, facts)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn f3_every_milestone_stays_reachable_while_in_training((schedule, mut facts) in stretched_payee()) {
        let schedule = schedules()[schedule];
        let Some(plan) = Plan::new(book(), schedule, &facts) else {
            return Err(TestCaseError::fail("the built-in book prices every milestone"));
        };
        // The payee engages on the first day they can in every window.
        let windows: Vec<_> = plan.windows.iter().map(|w| (w.start, w.end)).collect();
        facts.engagement = windows
            .iter()
            .filter_map(|(start, end)| start.iter_days().take_while(|d| d <= end).find(|d| facts.qualifies_on(*d)))
            .collect();
        facts.normalise();
        let Some(plan) = Plan::new(book(), schedule, &facts) else {
            return Err(TestCaseError::fail("the built-in book prices every milestone"));
        };
        let out = accrual::outcomes(&plan, &facts, None);
        prop_assert_eq!(earned(&out).len(), schedule.windows.len(), "windows: {:?}", windows);
        check_outcomes(&plan, &facts, &out, None)?;
    }
}
