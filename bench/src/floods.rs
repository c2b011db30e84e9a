//! Floods (issue 14, item 1): hostile callers without a valid token against
//! the participant service while one client makes valid calls. The flood is
//! bounded in count: half tokenless calls of unique 15 KB made-up method
//! names, half calls of a real RPC with garbage tokens, from a few
//! concurrent callers. Printed: the valid calls' p50/p99 alone and during
//! the flood, the flood's rate, the audit rows it left (and the calls they
//! stand for), the participant database's size and the participant
//! process's resident memory before and after.

use crate::procs::rss_mb;
use crate::stack::{Backend, Stack};
use crate::stats::{Figure, Latencies, round};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use steplab_platform::auth::Role;
use steplab_proto::steplab::participant::v1 as pb;
use tokio::time::Instant;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

const PARTICIPANT_SERVICE: &str = "steplab.participant.v1.ParticipantService";
/// The length of each made-up method name, as in the reproduction.
const NAME_BYTES: usize = 15_000;
/// Concurrent flooding callers.
const FLOODERS: usize = 8;

/// A method name nobody serves, unique per `i`, of letters that do not
/// compress away.
fn made_up_method(i: u64) -> String {
    let mut name = format!("Flood{i:08}");
    let mut state = i ^ 0x9E37_79B9_7F4A_7C15;
    while name.len() < NAME_BYTES {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        name.push(char::from(b'a' + (state % 26) as u8));
    }
    name
}

/// One call of `/ParticipantService/{method}` with an empty message; whether
/// it was refused as unauthenticated.
async fn raw_call(channel: Channel, method: &str, authorization: Option<&str>) -> anyhow::Result<bool> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let path: PathAndQuery = format!("/{PARTICIPANT_SERVICE}/{method}").parse()?;
    let mut request = tonic::Request::new(());
    if let Some(value) = authorization {
        request.metadata_mut().insert("authorization", value.parse()?);
    }
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    match grpc.unary(request, path, codec).await {
        Ok(_) => Ok(false),
        Err(status) => Ok(status.code() == tonic::Code::Unauthenticated),
    }
}

/// Valid `ListParticipants` calls, one at a time, until `stop` (or `limit`
/// has passed).
async fn valid_calls(stack: &Stack, stop: Arc<AtomicBool>, limit: Duration) -> anyhow::Result<(Latencies, u64)> {
    let admin = stack.token(Role::Admin, &[]);
    let mut client = stack.participants(0, &admin).await?;
    let mut latencies = Latencies::new();
    let mut errors = 0;
    let until = Instant::now() + limit;
    while !stop.load(Ordering::Acquire) && Instant::now() < until {
        let t0 = Instant::now();
        match client.list_participants(pb::ListParticipantsRequest { page_size: 10, ..Default::default() }).await {
            Ok(_) => latencies.record(t0.elapsed()),
            Err(_) => errors += 1,
        }
    }
    Ok((latencies, errors))
}

/// The participant database's bytes on disk: the SQLite file and its WAL,
/// or the whole PostgreSQL database.
fn database_bytes(stack: &Stack) -> u64 {
    match stack.backend {
        Backend::Sqlite => ["participant.sqlite3", "participant.sqlite3-wal"]
            .iter()
            .map(|f| std::fs::metadata(stack.dir.path().join(f)).map_or(0, |m| m.len()))
            .sum(),
        Backend::Postgres => stack.participant_database_bytes().unwrap_or(0),
    }
}

/// Audit rows of the participant service and the calls they stand for.
fn audit_rows(stack: &Stack) -> (i64, i64) {
    stack.participant_audit_rows().unwrap_or((0, 0))
}

fn mb(bytes: u64) -> f64 {
    round(bytes as f64 / 1_048_576.0, 2)
}

/// The quiet figure, then the figure during a flood of `calls` calls.
/// Stops the participant service at the end, so that the summary rows of
/// the minute still open are written before the audit rows are counted.
pub async fn measure(stack: &mut Stack, calls: u64, quiet: Duration) -> anyhow::Result<Vec<Figure>> {
    let b = stack.backend.as_str();
    let pid = stack.participants[0].pid().unwrap_or(0);
    let (quiet_latencies, quiet_errors) = valid_calls(stack, Arc::new(AtomicBool::new(false)), quiet).await?;
    let quiet_secs = quiet.as_secs_f64();
    let mut alone = Figure::new("floods_valid_quiet", b, 1);
    alone.n = quiet_latencies.len();
    alone.per_s = quiet_latencies.len() as f64 / quiet_secs;
    alone.p50_ms = quiet_latencies.ms(0.5);
    alone.p99_ms = quiet_latencies.ms(0.99);
    alone.set("errors", quiet_errors);

    let rss_before = rss_mb(pid).unwrap_or(0.0);
    let db_before = database_bytes(stack);
    let channel = crate::stack::channel(stack.participants[0].addr).await?;
    let next = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let valid = {
        let stop = Arc::clone(&stop);
        valid_calls(stack, stop, Duration::from_secs(3600))
    };
    let mut flooders = Vec::new();
    for _ in 0..FLOODERS {
        let (channel, next, refused) = (channel.clone(), Arc::clone(&next), Arc::clone(&refused));
        flooders.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= calls {
                    return;
                }
                // Even: no token, a new 15 KB method; odd: a garbage token on a real RPC.
                let answer = if i % 2 == 0 {
                    raw_call(channel.clone(), &made_up_method(i), None).await
                } else {
                    raw_call(channel.clone(), "PauseParticipant", Some(&format!("Bearer garbage.{i}.token"))).await
                };
                if answer.unwrap_or(false) {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let flood = async {
        for flooder in flooders {
            let _ = flooder.await;
        }
        let took = started.elapsed();
        stop.store(true, Ordering::Release);
        took
    };
    let (took, valid) = tokio::join!(flood, valid);
    let (latencies, errors) = valid?;
    let secs = took.as_secs_f64();
    let rss_after = rss_mb(pid).unwrap_or(0.0);
    // The summary rows of the open minute are written at the latest when the
    // service stops.
    for participant in std::mem::take(&mut stack.participants) {
        participant.stop(Duration::from_secs(10)).await;
    }
    let (rows, stood_for) = audit_rows(stack);
    let db_after = database_bytes(stack);
    let mut during = Figure::new("floods_valid_during", b, 1);
    during.n = latencies.len();
    during.per_s = latencies.len() as f64 / secs.max(f64::EPSILON);
    during.p50_ms = latencies.ms(0.5);
    during.p99_ms = latencies.ms(0.99);
    during.set("errors", errors);
    during.set("flood_calls", calls);
    during.set("flood_refused_unauthenticated", refused.load(Ordering::Relaxed));
    during.set("flood_per_s", round(calls as f64 / secs.max(f64::EPSILON), 1));
    during.set("flood_seconds", round(secs, 2));
    during.set("audit_rows", rows);
    during.set("audit_calls_recorded", stood_for);
    during.set("db_mb_before", mb(db_before));
    during.set("db_mb_after", mb(db_after));
    during.set("rss_mb_before", round(rss_before, 1));
    during.set("rss_mb_after", round(rss_after, 1));
    during.set(
        "note",
        format!(
            "flood {calls} calls at {:.0}/s; audit {rows} rows for {stood_for} calls; db {:.2} -> {:.2} MB; participant RSS {:.1} -> {:.1} MB",
            calls as f64 / secs.max(f64::EPSILON),
            mb(db_before),
            mb(db_after),
            rss_before,
            rss_after
        ),
    );
    Ok(vec![alone, during])
}
