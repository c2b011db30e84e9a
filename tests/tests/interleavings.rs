//! Issue 9, item 5: many clients acting on one participant at once. For each
//! of many rounds a fresh ECT gets a random serial prefix of changes, then a
//! burst of random concurrent pauses, deferrals, withdrawals, return-date
//! changes, returns and pause ends. Afterwards:
//!
//! * every call is answered OK, ABORTED (lost a version race) or
//!   FAILED_PRECONDITION (a rule refused it), never anything else;
//! * the winners' versions are distinct, so they were applied one at a time;
//! * replaying the winners one by one, in version order, on a second ECT
//!   registered the same day, accepts every one of them and gives the same
//!   history: the concurrent history is a valid serial sequence of the rules.
//!
//! Rounds run several at a time (on different ECTs). The default test run
//! does 100 rounds per database, enough to reach every kind of winner and
//! loser; the soak run (README, "Soak runs"; `.ci/run` runs it too) sets
//! `STEPLAB_INTERLEAVINGS=1000` for thousands of interleavings. A failure
//! prints the seed; `STEPLAB_INTERLEAVING_SEED` replays it.

// Test helpers fail the test that called them.
#![allow(clippy::panic)]

use chrono::{Days, NaiveDate};
use futures::future::join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::common::v1::{DeferralReason, ParticipantKind, WithdrawalReason};
use steplab_proto::steplab::participant::v1 as pb;
use steplab_tests::fixtures::{World, date, register, registration, world};
use steplab_tests::{Backend, Participants, Stack, TODAY};
use tonic::Code;

/// How many ECTs (rounds) are worked on at once.
const PARALLEL_ROUNDS: usize = 8;
/// Concurrent calls per round.
const BURST: usize = 4;

/// One change a client may ask for. Dates are days from today.
#[derive(Debug, Clone)]
enum Action {
    Pause { start: i64, length: i64 },
    ExtendPause { end: i64 },
    EndPause { end: i64 },
    Defer { start: i64, length: i64 },
    ChangeReturnDate { to: i64 },
    RecordReturn { on: i64 },
    Withdraw { on: i64 },
}

fn random_action(rng: &mut StdRng) -> Action {
    match rng.random_range(0..7) {
        0 => Action::Pause { start: rng.random_range(0..=10), length: rng.random_range(1..=42) },
        1 => Action::ExtendPause { end: rng.random_range(5..=50) },
        2 => Action::EndPause { end: rng.random_range(0..=10) },
        3 => Action::Defer { start: rng.random_range(0..=10), length: rng.random_range(43..=300) },
        4 => Action::ChangeReturnDate { to: rng.random_range(1..=300) },
        5 => Action::RecordReturn { on: -rng.random_range(0..=2) },
        _ => Action::Withdraw { on: -rng.random_range(0..=2) },
    }
}

fn today() -> NaiveDate {
    TODAY.parse().expect("TODAY is a date")
}

fn day(offset: i64) -> Option<Date> {
    let d = if offset >= 0 {
        today().checked_add_days(Days::new(offset.unsigned_abs()))
    } else {
        today().checked_sub_days(Days::new(offset.unsigned_abs()))
    }
    .expect("a date near today");
    use chrono::Datelike;
    date(d.year(), d.month() as i32, d.day() as i32)
}

/// Sends `action` for `id`; the participant's version after it, or the refusal.
async fn perform(mut client: Participants, id: String, action: Action) -> Result<i64, tonic::Status> {
    let participant_id = id;
    let answer = match action {
        Action::Pause { start, length } => client
            .pause_participant(pb::PauseParticipantRequest {
                validate_only: false,
                alongside_ect_id: String::new(),
                participant_id,
                start_date: day(start),
                expected_end_date: day(start + length),
                note: "short absence".into(),
                idempotency_key: String::new(),
            })
            .await
            .map(|r| r.into_inner().participant),
        Action::ExtendPause { end } => client
            .extend_pause(pb::ExtendPauseRequest {
                validate_only: false,
                participant_id,
                expected_end_date: day(end),
                idempotency_key: String::new(),
            })
            .await
            .map(|r| r.into_inner().participant),
        Action::EndPause { end } => client
            .end_pause(pb::EndPauseRequest {
                validate_only: false,
                participant_id,
                end_date: day(end),
                idempotency_key: String::new(),
            })
            .await
            .map(|r| r.into_inner().participant),
        Action::Defer { start, length } => client
            .defer_participant(pb::DeferParticipantRequest {
                validate_only: false,
                participant_id,
                reason: DeferralReason::LongTermSickness as i32,
                deferral_date: day(start),
                expected_return_date: day(start + length),
                note: "long absence".into(),
                idempotency_key: String::new(),
            })
            .await
            .map(|r| r.into_inner().participant),
        Action::ChangeReturnDate { to } => client
            .change_return_date(pb::ChangeReturnDateRequest {
                validate_only: false,
                participant_id,
                expected_return_date: day(to),
                idempotency_key: String::new(),
            })
            .await
            .map(|r| r.into_inner().participant),
        Action::RecordReturn { on } => client
            .record_return(pb::RecordReturnRequest {
                validate_only: false,
                participant_id,
                return_date: day(on),
                idempotency_key: String::new(),
            })
            .await
            .map(|r| r.into_inner().participant),
        Action::Withdraw { on } => client
            .withdraw_participant(pb::WithdrawParticipantRequest {
                validate_only: false,
                replacement_induction_coordinator_id: String::new(),
                participant_id,
                reason: WithdrawalReason::LeftTeachingProfession as i32,
                withdrawal_date: day(on),
                note: "left".into(),
                idempotency_key: String::new(),
            })
            .await
            .map(|r| r.into_inner().participant),
    };
    answer.map(|p| p.map_or(0, |p| p.version))
}

/// What a history says, without ids, times or who recorded it.
type Fact = (i32, Option<Date>, Option<Date>, Option<Date>, i32, i32);

async fn facts(client: &mut Participants, id: &str) -> Vec<Fact> {
    client
        .get_participant_history(pb::GetParticipantHistoryRequest {
            page_size: 0,
            page_token: String::new(),
            participant_id: id.into(),
        })
        .await
        .expect("history")
        .into_inner()
        .events
        .into_iter()
        .map(|e| (e.event_type, e.effective_date, e.start_date, e.end_date, e.deferral_reason, e.withdrawal_reason))
        .collect()
}

struct Round<'a> {
    stack: &'a Stack,
    world: &'a World,
    trns: &'a AtomicU32,
    seed: u64,
}

/// What one round saw, for the totals.
#[derive(Default)]
struct Tally {
    ok: usize,
    aborted: usize,
    refused: usize,
}

/// Who in a pair an action is for: the ECT, or their mentor (whose own
/// changes race with the ECT's D9 and W6 cascades).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Ect,
    Mentor,
}

/// A fresh ECT, and in some rounds a mentor assigned to them.
struct Pair {
    ect: String,
    mentor: Option<String>,
}

impl Pair {
    fn id(&self, target: Target) -> Option<&String> {
        match target {
            Target::Ect => Some(&self.ect),
            Target::Mentor => self.mentor.as_ref(),
        }
    }
}

async fn fresh_pair(r: &Round<'_>, client: &mut Participants, with_mentor: bool) -> Pair {
    let person = |kind| {
        let trn = r.trns.fetch_add(1, Ordering::Relaxed);
        register(r.stack, &r.world.dp1, registration(&r.world.school_a, kind, &trn.to_string(), date(2026, 9, 1)))
    };
    let ect = person(ParticipantKind::Ect).await.participant_id;
    if !with_mentor {
        return Pair { ect, mentor: None };
    }
    let mentor = person(ParticipantKind::Mentor).await.participant_id;
    client
        .assign_mentor(pb::AssignMentorRequest {
            validate_only: false,
            ect_id: ect.clone(),
            mentor_id: mentor.clone(),
            interim: false,
            effective_date: date(2026, 9, 2),
            idempotency_key: String::new(),
            until: None,
        })
        .await
        .expect("assign mentor");
    Pair { ect, mentor: Some(mentor) }
}

fn random_step(rng: &mut StdRng, with_mentor: bool) -> (Target, Action) {
    let target = if with_mentor && rng.random_ratio(1, 3) { Target::Mentor } else { Target::Ect };
    (target, random_action(rng))
}

async fn round(r: Round<'_>) -> Tally {
    let mut rng = StdRng::seed_from_u64(r.seed);
    let admin = r.stack.admin_token();
    let mut client = r.stack.participants(Some(&admin)).await;
    let with_mentor = rng.random_bool(0.5);
    let pair = fresh_pair(&r, &mut client, with_mentor).await;
    let caller = client.clone();
    let perform_on = |pair: &Pair, (target, action): &(Target, Action)| {
        let id = pair.id(*target).expect("a mentor in this round").clone();
        perform(caller.clone(), id, action.clone())
    };

    // A serial prefix puts the pair in a random state: paused, deferred, withdrawn...
    let mut applied: Vec<(Target, Action)> = Vec::new();
    for _ in 0..rng.random_range(0..=2) {
        let step = random_step(&mut rng, with_mentor);
        if perform_on(&pair, &step).await.is_ok() {
            applied.push(step);
        }
    }

    // The burst: every call starts before any has finished.
    let burst: Vec<(Target, Action)> = (0..BURST).map(|_| random_step(&mut rng, with_mentor)).collect();
    let answers = join_all(burst.iter().map(|step| perform_on(&pair, step))).await;
    let mut tally = Tally::default();
    let mut winners: Vec<(i64, (Target, Action))> = Vec::new();
    for (step, answer) in burst.iter().zip(&answers) {
        match answer {
            Ok(version) => {
                tally.ok += 1;
                winners.push((*version, step.clone()));
            }
            Err(s) if s.code() == Code::Aborted => tally.aborted += 1,
            Err(s) if s.code() == Code::FailedPrecondition => tally.refused += 1,
            Err(s) => panic!(
                "seed {}: {step:?} was answered {:?} ({}); a loser must get ABORTED or FAILED_PRECONDITION",
                r.seed,
                s.code(),
                s.message()
            ),
        }
    }

    // Versions order the changes of one participant. A change to the ECT
    // and one to the mentor have no common version, so the serial order of
    // the whole pair is read from the histories: the recording order of
    // the winners' events is the order in which they committed.
    for target in [Target::Ect, Target::Mentor] {
        let versions: Vec<i64> = winners.iter().filter(|(_, (t, _))| *t == target).map(|(v, _)| *v).collect();
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            versions.len(),
            "seed {}: two winners on the {target:?} share a version {versions:?}: {winners:?}",
            r.seed
        );
    }
    let order = commit_order(&mut client, &pair, &winners).await;

    // The same changes, one at a time, in the order they were applied.
    let twin = fresh_pair(&r, &mut client, with_mentor).await;
    for step in applied.iter().chain(order.iter()) {
        if let Err(s) = perform_on(&twin, step).await {
            panic!(
                "seed {}: {step:?} won concurrently but is refused in serial order ({:?}: {}); \
                 prefix {applied:?}, serial order of the winners {order:?}",
                r.seed,
                s.code(),
                s.message()
            );
        }
    }
    for target in [Target::Ect, Target::Mentor] {
        let (Some(original), Some(replayed)) = (pair.id(target), twin.id(target)) else { continue };
        let concurrent = facts(&mut client, original).await;
        let serial = facts(&mut client, replayed).await;
        assert_eq!(
            concurrent, serial,
            "seed {}: the {target:?}'s concurrent history differs from the serial replay; \
             prefix {applied:?}, burst {burst:?}, serial order {order:?}",
            r.seed
        );
    }
    tally
}

/// The winners in the order they committed. Each winner's version is the
/// sequence of its participant's last event after it; the global cursor of
/// that event orders winners across the two participants.
async fn commit_order(
    client: &mut Participants,
    pair: &Pair,
    winners: &[(i64, (Target, Action))],
) -> Vec<(Target, Action)> {
    let mut cursors: Vec<(i64, (Target, Action))> = Vec::new();
    for target in [Target::Ect, Target::Mentor] {
        let Some(id) = pair.id(target) else { continue };
        let events = client
            .get_participant_history(pb::GetParticipantHistoryRequest {
                page_size: 0,
                page_token: String::new(),
                participant_id: id.clone(),
            })
            .await
            .expect("history")
            .into_inner()
            .events;
        for (version, step) in winners {
            if step.0 != target {
                continue;
            }
            let event = events
                .iter()
                .find(|e| e.sequence == *version)
                .unwrap_or_else(|| panic!("no event {version} in the {target:?}'s history for {step:?}"));
            cursors.push((event.cursor, step.clone()));
        }
    }
    cursors.sort_by_key(|(cursor, _)| *cursor);
    cursors.into_iter().map(|(_, step)| step).collect()
}

/// Rounds per database in the default test run; the soak run asks for more.
const DEFAULT_ROUNDS: usize = 100;

fn rounds() -> usize {
    std::env::var("STEPLAB_INTERLEAVINGS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_ROUNDS)
}

fn first_seed() -> u64 {
    std::env::var("STEPLAB_INTERLEAVING_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(7, |d| d.as_secs())
    })
}

async fn concurrent_changes_leave_a_valid_serial_history(backend: Backend) {
    // No rate limit: the test is one caller making thousands of changes.
    let Some(stack) = Stack::start_with(backend, TODAY, &[("STEPLAB_RATE_LIMIT_PER_MINUTE", "0")]).await else {
        return;
    };
    let world = world(&stack).await;
    let trns = AtomicU32::new(3_000_000);
    let first = first_seed();
    let total = rounds();
    let next = Arc::new(AtomicU32::new(0));
    let workers = (0..PARALLEL_ROUNDS).map(|_| {
        let next = Arc::clone(&next);
        let (stack, world, trns) = (&stack, &world, &trns);
        async move {
            let mut tally = Tally::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                if n >= total {
                    return tally;
                }
                let t = round(Round { stack, world, trns, seed: first + n as u64 }).await;
                tally.ok += t.ok;
                tally.aborted += t.aborted;
                tally.refused += t.refused;
            }
        }
    });
    let tallies = join_all(workers).await;
    let (ok, aborted, refused) =
        tallies.iter().fold((0, 0, 0), |(o, a, r), t| (o + t.ok, a + t.aborted, r + t.refused));
    println!(
        "{backend:?}: {total} rounds from seed {first}: {} concurrent calls, {ok} applied, {aborted} aborted, {refused} refused by a rule",
        total * BURST
    );
    // The generator must reach both kinds of loser and winners, or the
    // test proves little.
    assert!(ok > 0 && refused > 0, "{backend:?}: {ok} applied, {refused} refused: the generator is too narrow");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_leave_a_valid_serial_history_on_sqlite() {
    concurrent_changes_leave_a_valid_serial_history(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_leave_a_valid_serial_history_on_postgres() {
    concurrent_changes_leave_a_valid_serial_history(Backend::Postgres).await;
}
