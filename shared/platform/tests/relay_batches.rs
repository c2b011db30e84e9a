//! Issue 18: the relay sends its commands in `ApplyCommands` batches, several
//! in flight per target, and keeps the order per (participant, target) and
//! the exactly-once effect. The receiving peer here is a real gRPC server on
//! 127.0.0.1 with content release's `ApplyCommands` and `PlaceHold` paths
//! that records what it gets and applies each idempotency_key once, as the
//! real receivers do; the relay runs on a real SQLite outbox.

// Test helpers fail the test that called them.
#![allow(clippy::panic, clippy::unwrap_used)]

mod common;

use common::FreshPostgres;
use diesel::prelude::*;
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use steplab_platform::config::DatabaseUrl;
use steplab_platform::db::{Database, DbError, Migrations};
use steplab_platform::migrations::Template;
use steplab_platform::outbox::{self, NewCommand, OutboxRow, RawCodec, Relay, RelaySettings, TokenSource};
use steplab_proto::steplab::common::v1::{CommandAck, CommandResult, EncodedCommand};
use steplab_proto::steplab::content::v1 as content;
use tokio::sync::{Notify, watch};
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::{NamedService, UnaryService};
use tonic::{Request, Response, Status};

/// The participant service's outbox, as its migrations leave it.
static OUTBOX: Migrations = Migrations::new(
    &[Template::new(
        "2026-11-28-000002_outbox",
        "CREATE TABLE outbox (
            id {{sqlite:INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL|postgres:BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY}},
            command_id TEXT NOT NULL UNIQUE,
            participant_id TEXT NOT NULL,
            target TEXT NOT NULL,
            method TEXT NOT NULL,
            payload {{sqlite:BLOB|postgres:BYTEA}} NOT NULL,
            created_at TIMESTAMP NOT NULL,
            attempts INTEGER NOT NULL,
            next_attempt_at TIMESTAMP NOT NULL,
            delivered_at TIMESTAMP,
            parked_at TIMESTAMP,
            last_error TEXT,
            request_id TEXT
        );
        CREATE INDEX outbox_due ON outbox (target, next_attempt_at, id)
            WHERE delivered_at IS NULL AND parked_at IS NULL;
        CREATE INDEX outbox_group_heads ON outbox (participant_id, target, id)
            WHERE delivered_at IS NULL;",
        "DROP TABLE outbox;",
    )],
    &[],
);

const SERVICE: &str = "steplab.content.v1.ContentReleaseService";
const TARGET: &str = "content-release";

/// What the receiving peer does and saw.
#[derive(Default)]
struct Peer {
    /// False: `ApplyCommands` answers UNIMPLEMENTED, as an older receiver.
    batches: bool,
    /// Idempotency keys refused with FAILED_PRECONDITION (HOLD_KIND_MISMATCH).
    refuse: HashSet<String>,
    /// Idempotency keys whose batch is applied and then answered UNAVAILABLE,
    /// once: the acknowledgement is lost.
    lose_ack_once: HashSet<String>,
    /// How long each call takes, to see calls overlap.
    delay: Duration,
    /// Each call: its method and its commands' (participant, idempotency_key).
    calls: Vec<(String, Vec<(String, String)>)>,
    /// Commands applied, in order, each idempotency_key once.
    applied: Vec<(String, String)>,
}

impl Peer {
    fn apply(&mut self, hold: &content::PlaceHoldRequest) -> Result<CommandAck, Status> {
        if self.refuse.contains(&hold.idempotency_key) {
            return Err(Status::failed_precondition("the hold's kind differs"));
        }
        let duplicate = self.applied.iter().any(|(_, key)| *key == hold.idempotency_key);
        if !duplicate {
            self.applied.push((hold.participant_id.clone(), hold.idempotency_key.clone()));
        }
        Ok(CommandAck { idempotency_key: hold.idempotency_key.clone(), duplicate })
    }
}

#[derive(Clone)]
struct Receiver {
    peer: Arc<Mutex<Peer>>,
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
}

impl NamedService for Receiver {
    const NAME: &'static str = SERVICE;
}

impl Service<http::Request<tonic::body::Body>> for Receiver {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let call = Call { receiver: self.clone(), path: request.uri().path().to_owned() };
        Box::pin(async move { Ok(tonic::server::Grpc::new(RawCodec).unary(call, request).await) })
    }
}

struct Call {
    receiver: Receiver,
    path: String,
}

impl UnaryService<Vec<u8>> for Call {
    type Response = Vec<u8>;
    type Future = BoxFuture<Response<Vec<u8>>, Status>;

    fn call(&mut self, request: Request<Vec<u8>>) -> Self::Future {
        let (receiver, path) = (self.receiver.clone(), self.path.clone());
        Box::pin(async move {
            let now = receiver.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            receiver.most_in_flight.fetch_max(now, Ordering::SeqCst);
            let delay = receiver.peer.lock().unwrap().delay;
            tokio::time::sleep(delay).await;
            let answer = answer(&receiver.peer, &path, request.into_inner());
            receiver.in_flight.fetch_sub(1, Ordering::SeqCst);
            answer.map(Response::new)
        })
    }
}

fn answer(peer: &Mutex<Peer>, path: &str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut peer = peer.lock().unwrap();
    let hold = |bytes: &[u8]| content::PlaceHoldRequest::decode(bytes).unwrap();
    match path.rsplit('/').next().unwrap_or_default() {
        "ApplyCommands" => {
            let commands: Vec<EncodedCommand> =
                content::ApplyCommandsRequest::decode(body.as_slice()).unwrap().commands;
            let holds: Vec<_> = commands.iter().map(|c| hold(&c.request)).collect();
            let seen = holds.iter().map(|h| (h.participant_id.clone(), h.idempotency_key.clone())).collect();
            peer.calls.push((path.to_owned(), seen));
            if !peer.batches {
                return Err(Status::unimplemented("ApplyCommands is not here yet"));
            }
            assert!(commands.iter().all(|c| c.rpc == "PlaceHold"), "{commands:?}");
            let results: Vec<CommandResult> = holds
                .iter()
                .map(|h| match peer.apply(h) {
                    Ok(ack) => CommandResult {
                        idempotency_key: h.idempotency_key.clone(),
                        ack: Some(ack),
                        ..Default::default()
                    },
                    Err(status) => CommandResult {
                        idempotency_key: h.idempotency_key.clone(),
                        code: status.code() as i32,
                        message: status.message().to_owned(),
                        reason: "HOLD_KIND_MISMATCH".into(),
                        ack: None,
                    },
                })
                .collect();
            if holds.iter().any(|h| peer.lose_ack_once.remove(&h.idempotency_key)) {
                return Err(Status::unavailable("connection reset after applying"));
            }
            Ok(content::ApplyCommandsResponse { results }.encode_to_vec())
        }
        "PlaceHold" => {
            let hold = hold(&body);
            peer.calls.push((path.to_owned(), vec![(hold.participant_id.clone(), hold.idempotency_key.clone())]));
            peer.apply(&hold).map(|ack| content::PlaceHoldResponse { ack: Some(ack) }.encode_to_vec())
        }
        other => Err(Status::unimplemented(format!("no {other} here"))),
    }
}

struct AnyToken;

impl TokenSource for AnyToken {
    fn bearer(&self) -> Result<String, String> {
        Ok("service-token".into())
    }
}

/// Where the outbox lives (a temporary directory or a fresh PostgreSQL
/// database), kept until the rig is dropped.
type Store = Box<dyn std::any::Any + Send>;

/// Relays (replicas) on a fresh outbox delivering to a fresh peer.
struct Rig {
    db: Database,
    receiver: Receiver,
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    relays: Vec<tokio::task::JoinHandle<()>>,
    server: tokio::task::JoinHandle<()>,
    _store: Store,
}

impl Rig {
    /// One relay on a SQLite outbox.
    async fn start(peer: Peer, batch: usize, in_flight: usize) -> Rig {
        Rig::start_tuned(peer, settings(batch, in_flight)).await
    }

    /// One relay on a SQLite outbox, with these settings.
    async fn start_tuned(peer: Peer, settings: RelaySettings) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("participant.sqlite3"));
        Rig::start_on(Box::new(dir), &url, peer, settings, 1).await
    }

    /// `replicas` relays on one fresh PostgreSQL outbox; `None` without a server.
    async fn start_on_postgres(peer: Peer, batch: usize, in_flight: usize, replicas: usize) -> Option<Rig> {
        let (database, url) = FreshPostgres::create("relay_batches")?;
        Some(Rig::start_on(Box::new(database), &url, peer, settings(batch, in_flight), replicas).await)
    }

    async fn start_on(store: Store, url: &DatabaseUrl, peer: Peer, settings: RelaySettings, replicas: usize) -> Rig {
        let db = Database::open(url, &OUTBOX).await.unwrap();
        let receiver =
            Receiver { peer: Arc::new(Mutex::new(peer)), in_flight: Arc::default(), most_in_flight: Arc::default() };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let service = receiver.clone();
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        // One wake-up for every replica, as if each saw the commit.
        let wake = Arc::new(Notify::new());
        let peer_url = format!("http://{addr}");
        let (stop, shutdown) = watch::channel(false);
        let relays = (0..replicas)
            .map(|_| {
                let relay = Relay::new(
                    Database::clone(&db),
                    &[(TARGET, peer_url.as_str())],
                    Arc::new(AnyToken),
                    wake.clone(),
                    settings.clone(),
                )
                .unwrap();
                tokio::spawn(relay.run(shutdown.clone()))
            })
            .collect();
        Rig { db, receiver, wake, stop, relays, server, _store: store }
    }

    fn peer<T>(&self, f: impl FnOnce(&Peer) -> T) -> T {
        f(&self.receiver.peer.lock().unwrap())
    }

    /// Enqueues `per_participant` holds for each participant, in rounds (the
    /// first of each, then the second of each, ...), as interleaved commits
    /// would; returns their command ids per participant, oldest first.
    async fn enqueue(&self, participants: usize, per_participant: usize) -> HashMap<String, Vec<String>> {
        let mut commands = Vec::new();
        for round in 0..per_participant {
            for p in 0..participants {
                let participant_id = format!("p{p:03}");
                let command_id = format!("{participant_id}-c{round}");
                let hold = content::PlaceHoldRequest {
                    idempotency_key: command_id.clone(),
                    participant_id: participant_id.clone(),
                    hold_id: format!("h{round}"),
                    ..Default::default()
                };
                commands.push(NewCommand {
                    command_id,
                    participant_id,
                    target: TARGET.into(),
                    method: format!("/{SERVICE}/PlaceHold"),
                    payload: hold.encode_to_vec(),
                    request_id: Some(format!("req-{round}")),
                });
            }
        }
        let mut ids: HashMap<String, Vec<String>> = HashMap::new();
        for command in &commands {
            ids.entry(command.participant_id.clone()).or_default().push(command.command_id.clone());
        }
        self.db
            .write(move |conn| {
                let now = chrono::Utc::now().naive_utc();
                for command in &commands {
                    outbox::enqueue(conn, command, now)?;
                }
                Ok::<_, DbError>(())
            })
            .await
            .unwrap();
        self.wake.notify_waiters();
        ids
    }

    /// Enqueues one hold of `participant_id` and wakes the relay, as one
    /// commit would (`notify_one`, as the services do).
    async fn enqueue_for(&self, participant_id: &str) -> HashMap<String, Vec<String>> {
        let command_id = format!("{participant_id}-c0");
        let hold = content::PlaceHoldRequest {
            idempotency_key: command_id.clone(),
            participant_id: participant_id.to_owned(),
            hold_id: "h0".into(),
            ..Default::default()
        };
        let command = NewCommand {
            command_id: command_id.clone(),
            participant_id: participant_id.to_owned(),
            target: TARGET.into(),
            method: format!("/{SERVICE}/PlaceHold"),
            payload: hold.encode_to_vec(),
            request_id: None,
        };
        self.db
            .write(move |conn| {
                outbox::enqueue(conn, &command, chrono::Utc::now().naive_utc())?;
                Ok::<_, DbError>(())
            })
            .await
            .unwrap();
        self.wake.notify_one();
        HashMap::from([(participant_id.to_owned(), vec![command_id])])
    }

    async fn rows(&self) -> Vec<OutboxRow> {
        self.db
            .read(|conn| {
                Ok::<_, DbError>(
                    outbox::outbox::table.order(outbox::outbox::id).select(OutboxRow::as_select()).load(conn)?,
                )
            })
            .await
            .unwrap()
    }

    /// Waits until `done` holds of the outbox's rows.
    async fn until(&self, what: &str, done: impl Fn(&[OutboxRow]) -> bool) -> Vec<OutboxRow> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let rows = self.rows().await;
            if done(&rows) {
                return rows;
            }
            assert!(Instant::now() < deadline, "not within 30 s: {what}; rows {rows:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn all_delivered(&self) -> Vec<OutboxRow> {
        self.until("every command delivered", |rows| rows.iter().all(|r| r.delivered_at.is_some())).await
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        for relay in self.relays {
            tokio::time::timeout(Duration::from_secs(10), relay).await.unwrap().unwrap();
        }
        self.server.abort();
    }
}

/// The rig's relay: quick polls and retries.
fn settings(batch: usize, in_flight: usize) -> RelaySettings {
    RelaySettings {
        poll_interval: Duration::from_millis(50),
        call_timeout: Duration::from_secs(5),
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        batch,
        in_flight,
        ..RelaySettings::default()
    }
}

fn batched() -> Peer {
    Peer { batches: true, ..Peer::default() }
}

fn apply_calls(peer: &Peer) -> Vec<&Vec<(String, String)>> {
    peer.calls.iter().filter(|(path, _)| path.ends_with("/ApplyCommands")).map(|(_, c)| c).collect()
}

/// Each participant's commands as the peer applied them.
fn applied_per_participant(peer: &Peer) -> HashMap<String, Vec<String>> {
    let mut applied: HashMap<String, Vec<String>> = HashMap::new();
    for (participant, key) in &peer.applied {
        applied.entry(participant.clone()).or_default().push(key.clone());
    }
    applied
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_participants_share_a_call_and_each_ones_commands_arrive_in_order_across_batches() {
    let rig = Rig::start(batched(), 64, 4).await;
    let sent = rig.enqueue(40, 5).await;
    let rows = rig.all_delivered().await;
    assert!(rows.iter().all(|r| r.attempts == 1 && r.last_error.is_none()), "{rows:#?}");
    rig.peer(|peer| {
        assert_eq!(applied_per_participant(peer), sent, "each participant's commands once, in order");
        let calls = apply_calls(peer);
        assert_eq!(peer.calls.len(), calls.len(), "no unary call to a target with ApplyCommands");
        assert!(calls.iter().any(|c| c.len() > 1), "commands share calls: {calls:?}");
        for call in &calls {
            assert!(call.len() <= 64, "at most a batch per call");
            let participants: HashSet<_> = call.iter().map(|(p, _)| p).collect();
            assert_eq!(participants.len(), call.len(), "one command per participant in a call: {call:?}");
        }
        // 200 commands of 40 participants: 5 rounds of 40 heads at best, and
        // fewer calls than commands by far.
        assert!(calls.len() < 50, "{} calls for 200 commands", calls.len());
    });
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_within_the_linger_share_one_call() {
    // No polling in the way: only the commit's wake-up starts a claim. The
    // linger is far longer than the trickle takes: with 400 ms, a CI run
    // with both cores busy committed the third command after it ran out.
    let lingering =
        RelaySettings { linger: Duration::from_secs(2), poll_interval: Duration::from_secs(60), ..settings(64, 4) };
    let rig = Rig::start_tuned(batched(), lingering).await;
    // A first command, delivered: every claim loop has made its first claim
    // (at start-up, without a wake-up) and waits for a commit. Then the
    // claims start only from a wake-up, after the linger.
    let mut sent = rig.enqueue_for("warm-up").await;
    rig.all_delivered().await;
    // The loop that delivered it claims once more after recording it (and
    // finds nothing): let it, so the trickle meets only waiting loops.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A trickle: three participants' commits, 50 ms apart, each waking the relay.
    for p in 0..3 {
        let mut one = rig.enqueue_for(&format!("t{p}")).await;
        sent.extend(one.drain());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rig.all_delivered().await;
    rig.peer(|peer| {
        assert_eq!(applied_per_participant(peer), sent);
        let calls = apply_calls(peer);
        assert_eq!(calls.len(), 2, "the warm-up's call, then one the trickle shares: {calls:?}");
        assert_eq!(calls[1].len(), 3);
    });
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_refused_in_a_batch_is_parked_alone_and_holds_back_only_its_participant() {
    let mut peer = batched();
    peer.refuse.insert("p001-c0".into());
    let rig = Rig::start(peer, 64, 2).await;
    rig.enqueue(5, 2).await;
    let rows = rig
        .until("the refused command parked, the others delivered", |rows| {
            rows.iter().all(|r| r.delivered_at.is_some() || r.participant_id == "p001")
                && rows.iter().any(|r| r.command_id == "p001-c0" && r.parked_at.is_some())
        })
        .await;
    let refused = rows.iter().find(|r| r.command_id == "p001-c0").unwrap();
    assert_eq!(refused.attempts, 5, "a refusal is parked after 5 attempts");
    let error = refused.last_error.as_deref().unwrap_or_default();
    assert!(
        error.contains("PlaceHold") && error.contains("FailedPrecondition") && error.contains("HOLD_KIND_MISMATCH"),
        "{error}"
    );
    let behind = rows.iter().find(|r| r.command_id == "p001-c1").unwrap();
    assert!(behind.delivered_at.is_none() && behind.attempts == 0, "waits behind its parked head: {behind:?}");
    for row in rows.iter().filter(|r| r.participant_id != "p001") {
        assert_eq!(row.attempts, 1, "the refusal cost the others nothing: {row:?}");
    }
    rig.peer(|peer| assert!(!peer.applied.iter().any(|(p, _)| p == "p001")));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_without_apply_commands_gets_unary_calls_and_no_failed_attempt() {
    let rig = Rig::start(Peer::default(), 64, 4).await;
    let sent = rig.enqueue(10, 3).await;
    let rows = rig.all_delivered().await;
    assert!(rows.iter().all(|r| r.attempts == 1 && r.last_error.is_none()), "{rows:#?}");
    rig.peer(|peer| {
        assert_eq!(applied_per_participant(peer), sent, "each participant's commands once, in order");
        let unary = peer.calls.iter().filter(|(path, _)| path.ends_with("/PlaceHold")).count();
        assert_eq!(unary, 30, "one unary call per command");
        // Remembered per target: asked at most once per loop that raced to ask.
        assert!(apply_calls(peer).len() <= 4, "{} ApplyCommands probes", apply_calls(peer).len());
    });
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_has_several_batches_in_flight_at_once() {
    let peer = Peer { delay: Duration::from_millis(300), ..batched() };
    let rig = Rig::start(peer, 2, 4).await;
    let sent = rig.enqueue(16, 1).await;
    rig.all_delivered().await;
    let most = rig.receiver.most_in_flight.load(Ordering::SeqCst);
    assert!((3..=4).contains(&most), "{most} calls at once, 4 loops of 2 commands");
    rig.peer(|peer| assert_eq!(applied_per_participant(peer), sent));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_acknowledgement_redelivers_the_batch_with_the_same_keys_and_one_effect() {
    let mut peer = batched();
    peer.lose_ack_once.insert("p000-c0".into());
    let rig = Rig::start(peer, 64, 1).await;
    let sent = rig.enqueue(3, 2).await;
    let rows = rig.all_delivered().await;
    let lost = rows.iter().find(|r| r.command_id == "p000-c0").unwrap();
    assert_eq!(lost.attempts, 2, "{lost:?}");
    rig.peer(|peer| {
        assert_eq!(applied_per_participant(peer), sent, "applied once each, in order");
        let sends = apply_calls(peer).iter().flat_map(|c| c.iter()).filter(|(_, key)| key == "p000-c0").count();
        assert_eq!(sends, 2, "sent again with the same idempotency_key");
    });
    rig.stop().await;
}

/// Drains a backlog of `participants` x `per_participant` commands and
/// answers the commands delivered per second, checking order and once-only.
async fn drain(peer: Peer, batch: usize, in_flight: usize, participants: usize, per_participant: usize) -> f64 {
    let rig = Rig::start(peer, batch, in_flight).await;
    let sent = rig.enqueue(participants, per_participant).await;
    let started = Instant::now();
    rig.all_delivered().await;
    let rate = (participants * per_participant) as f64 / started.elapsed().as_secs_f64();
    rig.peer(|peer| assert_eq!(applied_per_participant(peer), sent, "each participant's commands once, in order"));
    rig.stop().await;
    rate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_many_participants_drains_whole_and_in_order_batched_and_unbatched() {
    let batched_rate = drain(batched(), 256, 4, 1_000, 4).await;
    // One call per command, 64 claimed at a time by one loop: the old relay's shape.
    let unary_rate = drain(Peer::default(), 64, 1, 1_000, 4).await;
    eprintln!("4,000 commands of 1,000 participants: {batched_rate:.0}/s in batches, {unary_rate:.0}/s one call each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_batching_from_one_postgres_outbox_deliver_each_command_once_in_order() {
    let Some(rig) = Rig::start_on_postgres(batched(), 16, 4, 2).await else { return };
    let sent = rig.enqueue(100, 4).await;
    let rows = rig.all_delivered().await;
    assert!(rows.iter().all(|r| r.attempts == 1), "no command was sent twice: {rows:#?}");
    rig.peer(|peer| {
        assert_eq!(applied_per_participant(peer), sent, "each participant's commands once, in order");
        let sends: usize = apply_calls(peer).iter().map(|c| c.len()).sum();
        assert_eq!(sends, 400, "no command sent twice by racing loops or replicas");
        assert!(apply_calls(peer).iter().any(|c| c.len() > 1));
    });
    rig.stop().await;
}

/// How many statements with `needle` in their text the connection put into
/// its prepared-statement cache while `work` ran three times.
fn statements_kept(
    conn: &mut steplab_platform::db::DbConn,
    needle: &'static str,
    work: impl Fn(&mut steplab_platform::db::DbConn),
) -> usize {
    use diesel::connection::{Connection, InstrumentationEvent};
    let kept = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&kept);
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::CacheQuery { sql, .. } = event
            && sql.contains(needle)
        {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    for _ in 0..3 {
        work(conn);
    }
    conn.set_instrumentation(|_: InstrumentationEvent<'_>| {});
    kept.load(Ordering::SeqCst)
}

/// Issue 18: the relay's scan for due group heads runs on every wake-up. It
/// is prepared once per connection and kept (diesel would parse it again on
/// every call for its raw group-head condition), and a fixed-text UPDATE
/// marked `keep_prepared` is kept where diesel keeps no UPDATE (the control).
async fn the_relays_scan_and_a_marked_update_are_prepared_once_per_connection(url: &DatabaseUrl) {
    use steplab_platform::db::KeepPreparedDsl;
    let db = Database::open(url, &OUTBOX).await.unwrap();
    let counts = db
        .read(|conn| {
            let now = chrono::Utc::now().naive_utc();
            let lane = outbox::Lane::Target(TARGET.into());
            let scans = statements_kept(conn, "AS earlier", |conn| {
                outbox::due_heads(conn, &lane, now, 10).unwrap();
            });
            let update = |conn: &mut steplab_platform::db::DbConn, marked: bool| {
                let statement = diesel::update(outbox::outbox::table.filter(outbox::outbox::id.eq(1)))
                    .set(outbox::outbox::attempts.eq(outbox::outbox::attempts + 1));
                if marked {
                    steplab_platform::on_backend!(conn, |inner| statement.keep_prepared().execute(inner))
                } else {
                    statement.execute(conn)
                }
                .unwrap();
            };
            let plain = statements_kept(conn, "UPDATE", |conn| update(conn, false));
            let marked = statements_kept(conn, "UPDATE", |conn| update(conn, true));
            Ok::<_, DbError>((scans, plain, marked))
        })
        .await
        .unwrap();
    assert_eq!(counts, (1, 0, 1), "(scans kept, plain UPDATEs kept, marked UPDATEs kept) over three runs each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_of_fixed_text_are_kept_prepared_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    the_relays_scan_and_a_marked_update_are_prepared_once_per_connection(&DatabaseUrl::Sqlite(
        dir.path().join("participant.sqlite3"),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_of_fixed_text_are_kept_prepared_on_postgres() {
    let Some((_database, url)) = FreshPostgres::create("kept_prepared") else { return };
    the_relays_scan_and_a_marked_update_are_prepared_once_per_connection(&url).await;
}

/// Counts the leases run on connections to the database `LEASE_URL` names:
/// a connection is told apart by its URL, so the other tests of this binary
/// count nothing even in one process. The two lease tests share the one
/// global, so they must not run together in one process (nextest, the
/// README's runner, gives each test its own).
struct LeaseCounter {
    ours: bool,
}

static LEASE_URL: Mutex<String> = Mutex::new(String::new());
static LEASES: AtomicUsize = AtomicUsize::new(0);

impl diesel::connection::Instrumentation for LeaseCounter {
    fn on_connection_event(&mut self, event: diesel::connection::InstrumentationEvent<'_>) {
        use diesel::connection::InstrumentationEvent;
        match event {
            InstrumentationEvent::StartEstablishConnection { url, .. } => {
                let wanted = LEASE_URL.lock().unwrap();
                self.ours = !wanted.is_empty() && url.contains(wanted.as_str());
            }
            InstrumentationEvent::StartQuery { query, .. }
                // SQLite's identifiers are quoted with backticks.
                if self.ours
                    && query.to_string().replace('`', "\"").starts_with(r#"UPDATE "outbox" SET "next_attempt_at""#) =>
            {
                LEASES.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
    }
}

/// Issue 18: a lane's loops claim one at a time. When they scanned
/// together they found the same heads, and all but one leased part of them
/// or nothing (on PostgreSQL after waiting for the other's commit). Four
/// loops finishing slow calls together claim again together here; each
/// lease must then take what its scan found, so there is one lease per call.
async fn a_lanes_loops_lease_one_after_another(store: Store, url: DatabaseUrl, name: String) {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        diesel::connection::set_default_instrumentation(|| Some(Box::new(LeaseCounter { ours: false })))
            .expect("instrumentation");
    });
    *LEASE_URL.lock().unwrap() = name;
    LEASES.store(0, Ordering::SeqCst);
    let peer = Peer { delay: Duration::from_millis(40), ..batched() };
    let rig = Rig::start_on(store, &url, peer, settings(2, 4), 1).await;
    let sent = rig.enqueue(48, 1).await;
    rig.all_delivered().await;
    let leases = LEASES.load(Ordering::SeqCst);
    rig.peer(|peer| {
        assert_eq!(applied_per_participant(peer), sent);
        let calls = apply_calls(peer).len();
        assert_eq!(leases, calls, "{leases} leases for {calls} calls: a loop leased what another had taken");
    });
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lanes_loops_lease_one_after_another_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("participant.sqlite3");
    let name = path.display().to_string();
    a_lanes_loops_lease_one_after_another(Box::new(dir), DatabaseUrl::Sqlite(path), name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lanes_loops_lease_one_after_another_on_postgres() {
    let Some((database, url)) = FreshPostgres::create("relay_leases") else { return };
    let name = database.name.clone();
    a_lanes_loops_lease_one_after_another(Box::new(database), url, name).await;
}
