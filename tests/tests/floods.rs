//! Hostile callers cannot grow the audit log or the metrics (issue 14,
//! item 1), over real gRPC on SQLite and PostgreSQL:
//!
//! * a flood of calls without a token, each naming a new 15 KB method, and
//!   of calls with garbage tokens leaves a bounded number of audit rows (the
//!   first few of the minute one each, the rest in one summary row per RPC
//!   name whose `calls` add up to every refusal), never the caller's method
//!   name, and a small database;
//! * the same flood leaves `/metrics` with a bounded set of series;
//! * entries older than `STEPLAB_AUDIT_RETENTION_DAYS` are pruned in
//!   batches, newer ones kept.
//!
//! Speed under a flood is measured by `steplab-bench --only floods`, not here.

// Test helpers fail the test that called them.
#![allow(clippy::panic)]

use std::collections::BTreeSet;
use std::time::Duration;
use steplab_platform::audit::{self, NewEntry, Query, Subject};
use steplab_platform::config::{DatabaseUrl, ServiceName};
use steplab_platform::db::Database;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_tests::{Backend, Stack, TODAY};
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

const PARTICIPANT_SERVICE: &str = "steplab.participant.v1.ParticipantService";

/// Tokenless calls with unique method names, and garbage-token calls.
const FLOOD: usize = 2_000;
/// Concurrent callers of a flood.
const CALLERS: usize = 8;
/// The length of each made-up method name.
const NAME_BYTES: usize = 15_000;

/// A method name nobody serves: unique per `i`, [`NAME_BYTES`] long, of
/// letters that do not compress away (a database may compress long text).
fn made_up_method(i: usize) -> String {
    let mut name = format!("Flood{i:06}");
    let mut state = i as u64 ^ 0x9E37_79B9_7F4A_7C15;
    while name.len() < NAME_BYTES {
        // xorshift64: cheap, deterministic letters.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        name.push(char::from(b'a' + (state % 26) as u8));
    }
    name
}

/// One call of `/{service}/{method}` with an empty message and, if given, an
/// `authorization` header; the status code it was answered with.
async fn raw_call(channel: Channel, service: &str, method: &str, authorization: Option<&str>) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel);
    if let Err(e) = grpc.ready().await {
        panic!("the channel is not ready: {e}");
    }
    let path: PathAndQuery = format!("/{service}/{method}").parse().expect("a valid path");
    let mut request = tonic::Request::new(());
    if let Some(value) = authorization {
        request.metadata_mut().insert("authorization", value.parse().expect("ascii"));
    }
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    match grpc.unary(request, path, codec).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// Runs `count` calls made by `call(i)` from [`CALLERS`] concurrent callers;
/// how many were answered `UNAUTHENTICATED`.
async fn flood<F, Fut>(count: usize, call: F) -> usize
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Code> + Send,
{
    let mut callers = Vec::new();
    for caller in 0..CALLERS {
        let call = call.clone();
        callers.push(tokio::spawn(async move {
            let mut refused = 0;
            for i in (caller..count).step_by(CALLERS) {
                if call(i).await == Code::Unauthenticated {
                    refused += 1;
                }
            }
            refused
        }));
    }
    let mut refused = 0;
    for caller in callers {
        refused += caller.await.expect("caller task");
    }
    refused
}

/// Tokenless calls of unique 15 KB method names, then calls of a real RPC
/// with garbage tokens, against the participant service: how many of each
/// were refused as unauthenticated.
async fn flood_participant_service(stack: &Stack) -> (usize, usize) {
    let channel = stack.channel(stack.participant_addr).await;
    let tokenless = {
        let channel = channel.clone();
        flood(FLOOD, move |i| {
            let channel = channel.clone();
            async move { raw_call(channel, PARTICIPANT_SERVICE, &made_up_method(i), None).await }
        })
        .await
    };
    let garbage = flood(FLOOD, move |i| {
        let channel = channel.clone();
        async move {
            let token = format!("Bearer garbage.{i}.token");
            raw_call(channel, PARTICIPANT_SERVICE, "PauseParticipant", Some(&token)).await
        }
    })
    .await;
    (tokenless, garbage)
}

async fn participant_db(stack: &Stack) -> Database {
    Database::open(&stack.config.participant.database, &steplab_participant::MIGRATIONS)
        .await
        .expect("open the participant database")
}

async fn whole_log(db: &Database) -> Vec<audit::Entry> {
    db.read(|conn| audit::list(conn, &Query { subject: Subject::Everything, after: None, limit: 100_000 }))
        .await
        .expect("read the audit log")
        .0
}

/// The bytes the participant database holds on disk: the SQLite file and
/// its WAL, or the audit table with its indexes on PostgreSQL.
fn audit_storage_bytes(database: &DatabaseUrl) -> u64 {
    match database {
        DatabaseUrl::Sqlite(path) => {
            let size = |p: std::path::PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
            let mut wal = path.clone().into_os_string();
            wal.push("-wal");
            size(path.clone()) + size(wal.into())
        }
        DatabaseUrl::Postgres(url) => {
            use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
            #[derive(QueryableByName)]
            struct Size {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                bytes: i64,
            }
            let mut conn = PgConnection::establish(url).expect("connect to the participant database");
            let size: Size = diesel::sql_query("SELECT pg_total_relation_size('audit_log') AS bytes")
                .get_result(&mut conn)
                .expect("the audit table's size");
            u64::try_from(size.bytes).unwrap_or(0)
        }
    }
}

/// Audit rows a flood may leave: the minute's individual rows, plus one
/// summary row per RPC name it used (`unknown` and `PauseParticipant`) for
/// each minute it lasted (a flood here takes seconds; two windows allowed).
const MAX_FLOOD_ROWS: usize = audit::UNAUTHENTICATED_ROWS_PER_WINDOW as usize * 2 + 2 * 2;

/// The participant database after the flood, as a bound: without the fix the
/// flood's rows alone take over 30 MB (15 KB each).
const MAX_SQLITE_BYTES: u64 = 2 << 20;
const MAX_POSTGRES_AUDIT_BYTES: u64 = 1 << 20;

async fn a_flood_of_unauthenticated_calls_writes_a_bounded_number_of_rows(backend: Backend) {
    let Some(mut stack) = Stack::start(backend).await else { return };
    let (tokenless, garbage) = flood_participant_service(&stack).await;
    // Every call reaches the service. (Were the transport to cap request
    // headers below 15 KB, the made-up names would be refused before it:
    // then keep NAME_BYTES just under that cap.)
    assert_eq!((tokenless, garbage), (FLOOD, FLOOD), "every call of the flood is refused as unauthenticated");
    // Stopping writes the summary of the minute still open.
    stack.stop_service(ServiceName::Participant).await;

    let db = participant_db(&stack).await;
    let log = whole_log(&db).await;
    println!(
        "{backend:?}: {} unauthenticated calls left {} audit rows and {} KB of storage",
        tokenless + garbage,
        log.len(),
        audit_storage_bytes(&stack.config.participant.database) / 1024
    );
    assert!(log.len() <= MAX_FLOOD_ROWS, "{} rows after the flood, at most {MAX_FLOOD_ROWS} expected", log.len());
    assert!(log.iter().all(|e| e.outcome == "UNAUTHENTICATED"), "only the flood was recorded");
    // Every refusal is accounted for: one row each, or counted in a summary.
    let calls: i64 = log.iter().map(|e| e.calls).sum();
    assert_eq!(calls, (tokenless + garbage) as i64, "the rows' calls add up to every refusal");
    let summaries: Vec<_> = log.iter().filter(|e| e.request_id == audit::SUMMARY_REQUEST_ID).collect();
    assert!(!summaries.is_empty(), "the calls past the minute's budget are in summary rows");
    assert!(summaries.iter().all(|e| e.actor_sub.is_none() && e.participant_id.is_none()));
    // The caller's method names are never stored: unknown paths are `unknown`.
    let rpcs: BTreeSet<&str> = log.iter().map(|e| e.rpc.as_str()).collect();
    assert_eq!(rpcs, BTreeSet::from([audit::UNKNOWN_RPC, "PauseParticipant"]));
    let bytes = audit_storage_bytes(&stack.config.participant.database);
    let bound = if backend == Backend::Sqlite { MAX_SQLITE_BYTES } else { MAX_POSTGRES_AUDIT_BYTES };
    assert!(bytes < bound, "{bytes} bytes of storage after the flood, below {bound} expected");

    // The other two services name unknown methods the same way.
    for (service, addr, database) in [
        ("steplab.content.v1.ContentReleaseService", stack.content_addr, &stack.config.content.database),
        ("steplab.payments.v1.PaymentsService", stack.payments_addr, &stack.config.payments.database),
    ] {
        let channel = stack.channel(addr).await;
        for i in 0..3 {
            assert_eq!(raw_call(channel.clone(), service, &made_up_method(i), None).await, Code::Unauthenticated);
        }
        let migrations = if service.contains("content") {
            &steplab_content_release::MIGRATIONS
        } else {
            &steplab_payments::MIGRATIONS
        };
        let db = Database::open(database, migrations).await.expect("open the database");
        let rpcs: Vec<String> = whole_log(&db).await.into_iter().map(|e| e.rpc).collect();
        assert_eq!(rpcs, [audit::UNKNOWN_RPC; 3], "{service}");
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unauthenticated_calls_writes_a_bounded_number_of_rows_on_sqlite() {
    a_flood_of_unauthenticated_calls_writes_a_bounded_number_of_rows(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unauthenticated_calls_writes_a_bounded_number_of_rows_on_postgres() {
    a_flood_of_unauthenticated_calls_writes_a_bounded_number_of_rows(Backend::Postgres).await;
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// `GET /metrics` over plain TCP: the body of the answer.
async fn scrape(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect to the metrics port");
    let request = format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .expect("the scrape answers in time")
        .expect("read");
    let answer = String::from_utf8(answer).expect("text");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The bound on the `/metrics` body after the flood; without the fix each
/// unique name adds series of over 15 KB each (the repro reached 720 MB).
const MAX_METRICS_BYTES: usize = 256 << 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_method_names_leave_metrics_with_a_bounded_set_of_series() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let stack = Stack::start_with(Backend::Sqlite, TODAY, &[("STEPLAB_METRICS_LISTEN", &listen)])
        .await
        .expect("a SQLite stack always starts");
    let (tokenless, garbage) = flood_participant_service(&stack).await;
    // A known RPC with a valid token still has its own series.
    let admin = stack.admin_token();
    stack
        .participants(Some(&admin))
        .await
        .list_participants(pb::ListParticipantsRequest::default())
        .await
        .expect("an admin lists participants");
    let body = scrape(port).await;
    let series: Vec<&str> = body.lines().filter(|l| l.starts_with("steplab_grpc_")).collect();
    println!("/metrics after {} unique method names: {} bytes, {} request series", FLOOD, body.len(), series.len());
    assert!(body.len() < MAX_METRICS_BYTES, "/metrics is {} bytes", body.len());
    assert!(!body.contains("Flood0"), "a caller's method name is a label");
    let rpc_labels: BTreeSet<&str> =
        series.iter().filter_map(|l| l.split("rpc=\"").nth(1)).filter_map(|rest| rest.split('"').next()).collect();
    assert!(rpc_labels.contains(audit::UNKNOWN_RPC), "{rpc_labels:?}");
    assert!(rpc_labels.contains("ListParticipants"), "{rpc_labels:?}");
    // Every label is one of the service's RPCs (proto names are CamelCase
    // ASCII, a few dozen characters at most) or `unknown`.
    for label in &rpc_labels {
        let named =
            *label == audit::UNKNOWN_RPC || (label.len() <= 40 && label.starts_with(|c: char| c.is_ascii_uppercase()));
        assert!(named, "rpc label `{label}`");
    }
    let unknown = ("rpc=\"unknown\"", "code=\"UNAUTHENTICATED\"");
    let count = series
        .iter()
        .find(|l| l.starts_with("steplab_grpc_requests_total{") && l.contains(unknown.0) && l.contains(unknown.1))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(count, Some(tokenless as f64), "every tokenless call is counted under `unknown`");
    let summarised = body
        .lines()
        .find(|l| l.starts_with("steplab_audit_summarised_calls_total{") && l.contains("service=\"participant\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    let expected = (tokenless + garbage) as f64 - f64::from(audit::UNAUTHENTICATED_ROWS_PER_WINDOW);
    assert!(summarised.is_some_and(|n| n >= expected), "{summarised:?} calls summarised, {expected} expected");
    stack.stop().await;
}

/// An entry of `age` ago, by nobody in particular.
fn entry_aged(age: chrono::Duration, n: usize) -> NewEntry {
    NewEntry {
        recorded_at: chrono::Utc::now().naive_utc() - age,
        request_id: format!("aged-{n}"),
        actor_sub: Some("retention-test".into()),
        actor_role: Some("admin".into()),
        rpc: "PauseParticipant".into(),
        participant_id: None,
        outcome: "OK".into(),
        reason: None,
        calls: 1,
    }
}

/// Older than the retention: more than two pruning batches.
const OLD_ENTRIES: usize = 2_500;
const RECENT_ENTRIES: usize = 10;

async fn entries_past_the_retention_are_pruned_and_newer_ones_kept(backend: Backend) {
    let Some(mut stack) = Stack::start_with(backend, TODAY, &[("STEPLAB_AUDIT_RETENTION_DAYS", "30")]).await else {
        return;
    };
    let db = participant_db(&stack).await;
    let old: Vec<NewEntry> = (0..OLD_ENTRIES).map(|n| entry_aged(chrono::Duration::days(31), n)).collect();
    let recent: Vec<NewEntry> =
        (0..RECENT_ENTRIES).map(|n| entry_aged(chrono::Duration::days(29), OLD_ENTRIES + n)).collect();
    db.write(move |conn| {
        audit::record_all(conn, &old)?;
        audit::record_all(conn, &recent)
    })
    .await
    .expect("record aged entries");
    // The pruner runs at start, then hourly: restart the service to run it now.
    stack.stop_service(ServiceName::Participant).await;
    stack.restart_service(ServiceName::Participant).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let left = loop {
        let left: Vec<audit::Entry> = whole_log(&db).await;
        if left.len() <= RECENT_ENTRIES || tokio::time::Instant::now() > deadline {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let aged: BTreeSet<String> =
        left.iter().filter(|e| e.request_id.starts_with("aged-")).map(|e| e.request_id.clone()).collect();
    let expected: BTreeSet<String> = (OLD_ENTRIES..OLD_ENTRIES + RECENT_ENTRIES).map(|n| format!("aged-{n}")).collect();
    assert_eq!(aged, expected, "the entries past 30 days are gone and the newer ones kept");

    // Pruning straight away removes nothing more, and a cutoff in the future
    // removes the rest in batches.
    let cutoff = chrono::Utc::now().naive_utc() - chrono::Duration::days(30);
    assert_eq!(audit::prune(&db, cutoff, Duration::ZERO).await.expect("prune"), 0);
    let later = chrono::Utc::now().naive_utc() + chrono::Duration::days(1);
    let gone = db.write(move |conn| audit::prune_batch(conn, later, 4)).await.expect("one small batch");
    assert_eq!(gone, 4, "a batch deletes at most its size");
    let rest = audit::prune(&db, later, Duration::ZERO).await.expect("prune");
    assert_eq!(rest, (RECENT_ENTRIES - 4) as u64);
    assert_eq!(whole_log(&db).await, Vec::<audit::Entry>::new());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_past_the_retention_are_pruned_and_newer_ones_kept_on_sqlite() {
    entries_past_the_retention_are_pruned_and_newer_ones_kept(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_past_the_retention_are_pruned_and_newer_ones_kept_on_postgres() {
    entries_past_the_retention_are_pruned_and_newer_ones_kept(Backend::Postgres).await;
}
