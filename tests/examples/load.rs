//! Load held: N concurrent clients make mixed lifecycle calls (pause, end
//! pause, defer, change return date, record return) against a real stack for
//! a fixed time; then every accepted change must reach content release and
//! payments with no drift, and the only errors allowed are the rules'
//! intended refusals (FAILED_PRECONDITION) and lost races (ABORTED).
//!
//! cargo run --release -p steplab-tests --example load -- --clients 16 --seconds 20 [--postgres]

// A load run reports failures by panicking, like a test.
#![allow(clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use steplab_platform::auth::Role;
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::common::v1::{DeferralReason, ParticipantKind, TrainingStatus};
use steplab_proto::steplab::participant::v1 as pb;
use steplab_tests::fixtures::{date, drift, register, registration, world};
use steplab_tests::{Backend, Stack, wait_until_delivered};
use tokio::sync::Mutex;
use tonic::Code;

struct Args {
    clients: usize,
    seconds: u64,
    backend: Backend,
    per_client: usize,
}

fn args() -> Args {
    let mut a = Args { clients: 16, seconds: 20, backend: Backend::Sqlite, per_client: 20 };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < raw.len() {
        let value = |i: usize| {
            raw.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{} needs a number", raw[i]))
        };
        match raw[i].as_str() {
            "--clients" => a.clients = value(i),
            "--seconds" => a.seconds = value(i) as u64,
            "--participants-per-client" => a.per_client = value(i),
            "--postgres" => {
                a.backend = Backend::Postgres;
                i -= 1;
            }
            other => panic!(
                "unknown argument {other}: use --clients N --seconds S [--participants-per-client N] [--postgres]"
            ),
        }
        i += 2;
    }
    a
}

#[derive(Default)]
struct Tally {
    latencies: BTreeMap<&'static str, Vec<Duration>>,
    refused: BTreeMap<&'static str, usize>,
    unexpected: Vec<String>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn day(offset: i64) -> Option<Date> {
    let d = chrono::NaiveDate::from_ymd_opt(2026, 11, 28).expect("date") + chrono::Duration::days(offset);
    date(chrono::Datelike::year(&d), chrono::Datelike::month(&d) as i32, chrono::Datelike::day(&d) as i32)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let a = args();
    // All clients act as one ECF Lead: lift the per-caller rate limit, which
    // would otherwise (rightly) refuse this load.
    let Some(stack) =
        Stack::start_with(a.backend, steplab_tests::TODAY, &[("STEPLAB_RATE_LIMIT_PER_MINUTE", "0")]).await
    else {
        panic!("PostgreSQL is not available")
    };
    let w = world(&stack).await;
    let mut pools: Vec<Vec<String>> = Vec::new();
    for c in 0..a.clients {
        let mut pool = Vec::new();
        for n in 0..a.per_client {
            let trn = format!("{:07}", 1_000_000 + c * 1000 + n);
            pool.push(
                register(&stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, &trn, date(2026, 9, 1)))
                    .await
                    .participant_id,
            );
        }
        pools.push(pool);
    }
    wait_until_delivered(&stack, Duration::from_secs(120)).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let ic = stack.token(Role::InductionCoordinator, Some(&w.school_a), &[]);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (c, pool) in pools.iter().cloned().enumerate() {
        let mut as_lead = stack.participants(Some(&lead)).await;
        let mut as_ic = stack.participants(Some(&ic)).await;
        let tally = tally.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = c;
            while Instant::now() < deadline {
                n += 1;
                let id = pool[n % pool.len()].clone();
                let current = as_lead
                    .get_participant(pb::GetParticipantRequest { participant_id: id.clone(), as_of: None })
                    .await
                    .map(|r| r.into_inner().participant.map(|p| p.status).unwrap_or_default());
                let status = match current {
                    Ok(s) => s,
                    Err(e) => {
                        tally.lock().await.unexpected.push(format!("GetParticipant: {e:?}"));
                        continue;
                    }
                };
                let begin = Instant::now();
                let (op, outcome): (&'static str, Result<(), tonic::Status>) = if status
                    == TrainingStatus::Active as i32
                {
                    if n % 3 == 0 {
                        let r = as_ic
                            .pause_participant(pb::PauseParticipantRequest {
                                participant_id: id,
                                start_date: day(0),
                                expected_end_date: day(14),
                                ..Default::default()
                            })
                            .await;
                        ("PauseParticipant", r.map(|_| ()))
                    } else {
                        let r = as_lead
                            .defer_participant(pb::DeferParticipantRequest {
                                participant_id: id,
                                reason: DeferralReason::Other as i32,
                                deferral_date: day(0),
                                expected_return_date: day(120),
                                ..Default::default()
                            })
                            .await;
                        ("DeferParticipant", r.map(|_| ()))
                    }
                } else if status == TrainingStatus::Paused as i32 {
                    let r = as_ic
                        .end_pause(pb::EndPauseRequest { participant_id: id, end_date: day(0), ..Default::default() })
                        .await;
                    ("EndPause", r.map(|_| ()))
                } else if n % 2 == 0 {
                    let r = as_lead
                        .change_return_date(pb::ChangeReturnDateRequest {
                            participant_id: id,
                            expected_return_date: day(60 + (n % 90) as i64),
                            ..Default::default()
                        })
                        .await;
                    ("ChangeReturnDate", r.map(|_| ()))
                } else {
                    let r = as_lead
                        .record_return(pb::RecordReturnRequest {
                            participant_id: id,
                            return_date: day(0),
                            ..Default::default()
                        })
                        .await;
                    ("RecordReturn", r.map(|_| ()))
                };
                let took = begin.elapsed();
                let mut t = tally.lock().await;
                match outcome {
                    Ok(()) => t.latencies.entry(op).or_default().push(took),
                    Err(s) if matches!(s.code(), Code::FailedPrecondition | Code::Aborted) => {
                        *t.refused.entry(op).or_default() += 1
                    }
                    Err(s) => t.unexpected.push(format!("{op}: {s:?}")),
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("client task");
    }
    let elapsed = started.elapsed();
    let drain_started = Instant::now();
    wait_until_delivered(&stack, Duration::from_secs(300)).await;
    let drained = drain_started.elapsed();
    let mut drifted = 0;
    for id in pools.iter().flatten() {
        let found = drift(&stack, id, None).await;
        if !found.is_empty() {
            drifted += 1;
            eprintln!("drift {id}: {found:?}");
        }
    }
    let t = tally.lock().await;
    let mut all: Vec<Duration> = t.latencies.values().flatten().copied().collect();
    all.sort();
    println!(
        "backend={:?} clients={} seconds={} participants={}",
        a.backend,
        a.clients,
        a.seconds,
        a.clients * a.per_client
    );
    println!("{:<18} {:>8} {:>9} {:>9} {:>9}", "rpc", "ok", "refused", "p50 ms", "p99 ms");
    for (op, lat) in &t.latencies {
        let mut lat = lat.clone();
        lat.sort();
        println!(
            "{op:<18} {:>8} {:>9} {:>9.1} {:>9.1}",
            lat.len(),
            t.refused.get(op).copied().unwrap_or(0),
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3
        );
    }
    println!(
        "accepted changes: {} in {:.1} s = {:.0}/s; p50 {:.1} ms, p99 {:.1} ms; outbox drained {:.2} s after the load; drift: {drifted}; unexpected errors: {}",
        all.len(),
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        percentile(&all, 0.5).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        drained.as_secs_f64(),
        t.unexpected.len()
    );
    for e in t.unexpected.iter().take(5) {
        println!("unexpected: {e}");
    }
    assert!(t.unexpected.is_empty() && drifted == 0, "the load run found errors or drift");
    drop(t);
    stack.stop().await;
}
