//! Hostile bodies and a database that cannot write (issue 14, item 5), on
//! the real services:
//! * each kind of malformed protobuf body (invalid UTF-8 in a string field, a
//!   truncated varint, a wrong wire type, nesting past the recursion limit)
//!   answers INVALID_ARGUMENT on all three services, not INTERNAL;
//! * SQLite on a real, small, full filesystem (tmpfs): a mutating call
//!   answers UNAVAILABLE, not INTERNAL, health turns NOT_SERVING, and SERVING
//!   again once space is freed;
//! * PostgreSQL database gone (connections refused, sessions terminated):
//!   NOT_SERVING, then SERVING again once it is back.
//!
//! The tmpfs test mounts a filesystem, so it needs root (as CI has); without
//! it the test is skipped with a loud message.

// A test that cannot set up its fault fails, naming why.
#![allow(clippy::panic)]

use std::path::Path;
use std::time::Duration;
use steplab_platform::config::DatabaseUrl;
use steplab_platform::outbox::RawCodec;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_tests::{Backend, Stack, TODAY};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A probe every 200 ms, so the tests see readiness change quickly.
const QUICK_PROBE: (&str, &str) = ("STEPLAB_READINESS_INTERVAL_MS", "200");

/// Generous bound for a change the probe makes (a PostgreSQL connection
/// attempt may wait for the pool's own 5 s timeout).
const WITHIN: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Malformed bodies
// ---------------------------------------------------------------------------

/// Bodies that are not valid protobuf for a request whose field 1 is a string.
fn malformed_bodies() -> Vec<(&'static str, Vec<u8>)> {
    // Field 15, wire type 3 (start group) 200 times, then the matching end
    // groups: an unknown field nested past prost's recursion limit (100).
    let mut deep = vec![(15u8 << 3) | 3; 200];
    deep.extend(std::iter::repeat_n((15u8 << 3) | 4, 200));
    vec![
        // Field 1 (length-delimited), two bytes that are not UTF-8.
        ("invalid UTF-8 in a string field", vec![0x0a, 0x02, 0xff, 0xfe]),
        // Field 1's length, a varint whose continuation bit never ends.
        ("truncated varint", vec![0x0a, 0x80, 0x80]),
        // Field 1 is a string; sent as a varint.
        ("wrong wire type", vec![0x08, 0x01]),
        ("deeply nested message", deep),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_malformed_body_is_invalid_argument_on_every_service() {
    let stack = Stack::start(Backend::Sqlite).await.expect("SQLite stack");
    let admin = stack.admin_token();
    let auth: tonic::metadata::MetadataValue<_> = format!("Bearer {admin}").parse().expect("ascii token");
    // A read whose request has `string participant_id = 1` on each service.
    let targets = [
        (stack.participant_addr, "/steplab.participant.v1.ParticipantService/GetParticipant"),
        (stack.content_addr, "/steplab.content.v1.ContentReleaseService/GetReleaseState"),
        (stack.payments_addr, "/steplab.payments.v1.PaymentsService/GetAccrual"),
    ];
    // Every (method, kind) that was not refused as INVALID_ARGUMENT.
    let mut wrong = Vec::new();
    for (addr, method) in targets {
        let mut grpc = tonic::client::Grpc::new(steplab_tests::channel(addr).await);
        for (kind, body) in malformed_bodies() {
            grpc.ready().await.expect("ready");
            let mut request = tonic::Request::new(body);
            request.metadata_mut().insert("authorization", auth.clone());
            let path = method.parse().expect("path");
            let status = grpc
                .unary::<Vec<u8>, Vec<u8>, RawCodec>(request, path, RawCodec)
                .await
                .expect_err("a malformed body is refused");
            if status.code() != Code::InvalidArgument || !status.message().starts_with("malformed message") {
                wrong.push(format!("{method}, {kind}: {:?} {}", status.code(), status.message()));
            }
        }
        // The same connection still serves a well-formed call (an unknown id).
        grpc.ready().await.expect("ready");
        let id = uuid::Uuid::now_v7().to_string();
        let mut body = vec![0x0a, id.len() as u8];
        body.extend_from_slice(id.as_bytes());
        let mut request = tonic::Request::new(body);
        request.metadata_mut().insert("authorization", auth.clone());
        let answer = grpc.unary::<Vec<u8>, Vec<u8>, RawCodec>(request, method.parse().expect("path"), RawCodec).await;
        if let Err(status) = answer {
            assert!(
                !matches!(status.code(), Code::InvalidArgument | Code::Internal | Code::Unknown),
                "{method}: a well-formed body after malformed ones answered {status:?}"
            );
        }
    }
    assert!(wrong.is_empty(), "malformed bodies not refused as INVALID_ARGUMENT:\n{}", wrong.join("\n"));
    stack.stop().await;
}

// ---------------------------------------------------------------------------
// Readiness
// ---------------------------------------------------------------------------

async fn health_of(addr: std::net::SocketAddr, service: &str) -> Option<i32> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}")).ok()?.connect().await.ok()?;
    let answer = HealthClient::new(channel).check(HealthCheckRequest { service: service.into() }).await.ok()?;
    Some(answer.into_inner().status)
}

/// Waits until the participant service's name (readiness) reports `wanted`,
/// checking that "" (liveness) stays SERVING all the while: a database
/// outage must not get the process restarted.
async fn wait_for_health(stack: &Stack, wanted: ServingStatus, why: &str) -> Duration {
    let started = tokio::time::Instant::now();
    loop {
        let overall = health_of(stack.participant_addr, "").await;
        let named = health_of(stack.participant_addr, "steplab.participant.v1.ParticipantService").await;
        assert_eq!(overall, Some(ServingStatus::Serving as i32), "{why}: liveness (\"\") must stay SERVING");
        if named == Some(wanted as i32) {
            return started.elapsed();
        }
        assert!(started.elapsed() < WITHIN, "{why}: health is {overall:?}/{named:?}, not {wanted:?}, after {WITHIN:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A mutating call of the participant service that writes a new row.
async fn create_dp(stack: &Stack, name: &str) -> Result<(), tonic::Status> {
    let admin = stack.admin_token();
    let mut client = stack.participants(Some(&admin)).await;
    client
        .create_delivery_partner(pb::CreateDeliveryPartnerRequest {
            validate_only: false,
            name: name.into(),
            idempotency_key: String::new(),
        })
        .await
        .map(|_| ())
}

/// A tmpfs of `size` mounted on a new directory, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes zeros to `filler` until the filesystem has no room left.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("create the filler");
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).and_then(|()| file.flush()).is_ok() {}
        // The last partial page, byte by byte.
        while file.write_all(&[0]).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// A stack whose participant database is on a 2 MB tmpfs; `None` (skipped
/// loudly) when no tmpfs can be mounted.
async fn stack_on_a_small_disk(probe_interval_ms: &str) -> Option<(Stack, SmallDisk)> {
    let disk = match SmallDisk::mount("2m") {
        Ok(disk) => disk,
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: cannot mount a tmpfs ({e}); run the tests as root (as CI does) ***\n"
            );
            return None;
        }
    };
    let url = format!("sqlite://{}", disk.path().join("participant.sqlite3").display());
    let settings = [("STEPLAB_READINESS_INTERVAL_MS", probe_interval_ms), ("STEPLAB_PARTICIPANT_DATABASE_URL", &url)];
    let stack = Stack::start_with(Backend::Sqlite, TODAY, &settings).await.expect("SQLite stack");
    create_dp(&stack, "Before the disk filled").await.expect("a write with room");
    Some((stack, disk))
}

/// Fills the disk, then writes until a write is refused; its status.
async fn fill_and_write(stack: &Stack, disk: &SmallDisk) -> (tonic::Status, std::path::PathBuf) {
    let filler = disk.fill();
    // The first writes may still fit in pages the WAL already holds.
    for i in 0..500 {
        if let Err(status) = create_dp(stack, &format!("Delivery partner {i} {}", "x".repeat(150))).await {
            println!("{i} writes fitted after the disk filled");
            return (status, filler);
        }
    }
    panic!("500 writes fitted on a full disk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_full_disk_answers_unavailable_turns_not_serving_and_recovers_when_space_is_freed() {
    let Some((stack, disk)) = stack_on_a_small_disk(QUICK_PROBE.1).await else { return };
    let (status, filler) = fill_and_write(&stack, &disk).await;
    assert_eq!(status.code(), Code::Unavailable, "a full disk is not the caller's fault nor a bug: {status:?}");
    assert!(status.message().contains("storage is full"), "{}", status.message());
    let retry = tonic_types::StatusExt::get_error_details(&status).retry_info().cloned();
    assert!(retry.and_then(|r| r.retry_delay).is_some(), "RetryInfo says when to retry: {status:?}");
    let took = wait_for_health(&stack, ServingStatus::NotServing, "the disk is full").await;
    println!("NOT_SERVING {took:?} after the refused write");

    std::fs::remove_file(filler).expect("free the space");
    let took = wait_for_health(&stack, ServingStatus::Serving, "space was freed").await;
    println!("SERVING {took:?} after space was freed");
    create_dp(&stack, "After space was freed").await.expect("writes go on once there is room");
    stack.stop().await;
    drop(disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_meets_a_full_disk_turns_not_serving_without_waiting_for_the_probe() {
    // No probe runs during the test: only the call's own fault can turn it.
    let Some((stack, disk)) = stack_on_a_small_disk("600000").await else { return };
    let (status, _filler) = fill_and_write(&stack, &disk).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let took = wait_for_health(&stack, ServingStatus::NotServing, "a call met a full disk").await;
    println!("NOT_SERVING {took:?} after the refused write, no probe");
    stack.stop().await;
    drop(disk);
}

/// Runs SQL on the test PostgreSQL server's admin database.
fn admin_sql(sql: &str) {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::PgConnection::establish(&steplab_tests::postgres_admin_url()).expect("admin connection");
    diesel::sql_query(sql).execute(&mut conn).unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_database_gone_turns_not_serving_and_back_serving_when_it_returns() {
    let Some(stack) = Stack::start_with(Backend::Postgres, TODAY, &[QUICK_PROBE]).await else { return };
    let DatabaseUrl::Postgres(url) = &stack.config.participant.database else { panic!("a PostgreSQL stack") };
    let name = url.rsplit('/').next().expect("database name").to_owned();
    create_dp(&stack, "Before the database went").await.expect("a write");

    admin_sql(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"));
    admin_sql(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"));
    // No call is made: the probe alone finds it.
    let took = wait_for_health(&stack, ServingStatus::NotServing, "the database is gone").await;
    println!("NOT_SERVING {took:?} after the database went, found by the probe");
    let status = create_dp(&stack, "While the database is gone").await.expect_err("no database, no write");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    admin_sql(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"));
    let took = wait_for_health(&stack, ServingStatus::Serving, "the database is back").await;
    println!("SERVING {took:?} after the database came back");
    create_dp(&stack, "After the database came back").await.expect("writes go on");
    stack.stop().await;
}
