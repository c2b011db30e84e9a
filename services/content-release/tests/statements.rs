//! Issue 18, item 2: a hold, a lift or an enrolment costs a bounded number of
//! SQL statements per learner, whatever the curriculum's length. Every
//! statement the service's connections run is counted through diesel's
//! instrumentation (`InstrumentationEvent::StartQuery`), on SQLite and on
//! PostgreSQL (a scratch database: see `steplab_testkit::scratch`).
//!
//! One test in this binary: the instrumentation is process-wide.

use prost::Message;
use std::sync::Arc;
use steplab_content_release::MIGRATIONS;
use steplab_content_release::domain::Curriculum;
use steplab_content_release::domain::curriculum::DEFAULT_JSON;
use steplab_content_release::service::ContentRelease;
use steplab_platform::config::DatabaseUrl;
use steplab_platform::db::Database;
use steplab_platform::{Caller, Clock, Scope};
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::common::v1::{EncodedCommand, Programme};
use steplab_proto::steplab::content::v1 as pb;
use steplab_testkit::scratch::ScratchPostgres;
use steplab_testkit::scratch::counted::{self, statements_of};

fn service_caller() -> Caller {
    Caller { sub: "participant-service".into(), scope: Scope::Service }
}

fn day(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

/// The built-in curriculum cut to its first `modules` modules per programme.
fn curriculum_of(modules: usize) -> Curriculum {
    let mut doc: serde_json::Value = serde_json::from_str(DEFAULT_JSON).expect("json");
    for programme in doc["programmes"].as_array_mut().expect("programmes") {
        programme["modules"].as_array_mut().expect("modules").truncate(modules);
    }
    Curriculum::parse("short.json", &doc.to_string()).expect("a valid short curriculum")
}

fn enrolment(participant: &str) -> pb::EnrolLearnerRequest {
    pb::EnrolLearnerRequest {
        idempotency_key: format!("enrol-{participant}"),
        participant_id: participant.into(),
        programme: Programme::Ect as i32,
        release_start: day(2026, 9, 1),
        school_id: "school".into(),
        delivery_partner_id: "dp".into(),
    }
}

fn deferral(participant: &str) -> pb::PlaceHoldRequest {
    pb::PlaceHoldRequest {
        idempotency_key: format!("defer-{participant}"),
        participant_id: participant.into(),
        hold_id: format!("hold-{participant}"),
        kind: pb::HoldKind::Deferral as i32,
        start_date: day(2026, 11, 28),
        until: day(2027, 4, 12),
    }
}

fn lift(participant: &str) -> pb::LiftHoldRequest {
    pb::LiftHoldRequest {
        idempotency_key: format!("lift-{participant}"),
        participant_id: participant.into(),
        hold_id: format!("hold-{participant}"),
        on: day(2027, 1, 4),
    }
}

/// Statements per command for one curriculum on one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Costs {
    enrol: usize,
    hold: usize,
    lift: usize,
    /// Per command of a batch of ten enrolments and ten deferrals.
    batched: usize,
}

async fn costs(db: Database, curriculum: Curriculum) -> Costs {
    let clock = Clock::Pinned(chrono::NaiveDate::from_ymd_opt(2026, 11, 28).expect("day"));
    let service = ContentRelease::new(db, clock, Arc::new(curriculum));
    // Warm the pool, so connection set-up is not counted.
    service.enrol_learner(service_caller(), enrolment("warm-up")).await.expect("warm up");
    let (enrolled, enrol) = statements_of(service.enrol_learner(service_caller(), enrolment("ada"))).await;
    enrolled.expect("enrol");
    let (held, hold) = statements_of(service.place_hold(service_caller(), deferral("ada"))).await;
    held.expect("hold");
    let (lifted, lifted_statements) = statements_of(service.lift_hold(service_caller(), lift("ada"))).await;
    lifted.expect("lift");
    let mut commands = Vec::new();
    for i in 0..10 {
        let participant = format!("batch-{i}");
        commands.push(EncodedCommand {
            rpc: "EnrolLearner".into(),
            request: enrolment(&participant).encode_to_vec(),
            request_id: String::new(),
        });
        commands.push(EncodedCommand {
            rpc: "PlaceHold".into(),
            request: deferral(&participant).encode_to_vec(),
            request_id: String::new(),
        });
    }
    let count = commands.len();
    let (applied, batched) =
        statements_of(service.apply_commands(service_caller(), pb::ApplyCommandsRequest { commands })).await;
    assert!(applied.expect("batch").results.iter().all(|r| r.code == 0));
    // No command was refused, so no command needed a savepoint of its own
    // (the writer's group on SQLite may take one for the whole unit).
    let savepoints = batched.iter().filter(|s| s.to_uppercase().starts_with("SAVEPOINT")).count();
    assert!(savepoints <= 1, "{savepoints} savepoints for {count} commands:\n  {}", batched.join("\n  "));
    eprintln!("PlaceHold statements:\n  {}", hold.join("\n  "));
    // A hold or a lift knows the learner before and after it: the learner
    // is read once and the stored feed not at all (the moved rows are
    // rewritten from the difference).
    for (rpc, statements) in [("PlaceHold", &hold), ("LiftHold", &lifted_statements)] {
        // Quoted with backticks on SQLite, double quotes on PostgreSQL.
        let unquoted: Vec<String> = statements.iter().map(|s| s.replace(['`', '"'], "")).collect();
        let learner_reads = unquoted.iter().filter(|s| s.contains("learners.programme")).count();
        assert_eq!(learner_reads, 1, "{rpc} reads the learner once:\n  {}", statements.join("\n  "));
        let feed_reads = unquoted.iter().filter(|s| s.contains("SELECT releases.")).count();
        assert_eq!(feed_reads, 0, "{rpc} does not read the stored feed:\n  {}", statements.join("\n  "));
    }
    Costs {
        enrol: enrol.len(),
        hold: hold.len(),
        lift: lifted_statements.len(),
        batched: batched.len().div_ceil(count),
    }
}

fn sqlite_url(dir: &tempfile::TempDir, name: &str) -> DatabaseUrl {
    DatabaseUrl::Sqlite(dir.path().join(format!("{name}.sqlite3")))
}

/// The most statements one command may cost, whatever the curriculum.
const MOST_STATEMENTS_PER_COMMAND: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_costs_the_same_few_statements_on_a_long_and_a_short_curriculum() {
    counted::install();
    let dir = tempfile::tempdir().expect("dir");
    let full = Curriculum::built_in().expect("built-in");
    let modules = full.programme(steplab_content_release::domain::Programme::Ect).modules.len();
    assert!(modules >= 40, "the built-in curriculum is the long one: {modules} modules");

    let mut backends = vec![("sqlite", sqlite_url(&dir, "long"), sqlite_url(&dir, "short"))];
    // Dropped, with their databases, when the test ends.
    let scratch = ScratchPostgres::create("statements_long").zip(ScratchPostgres::create("statements_short"));
    if let Some((long, short)) = &scratch {
        backends.push(("postgres", long.url.clone(), short.url.clone()));
    }
    for (backend, long_url, short_url) in backends {
        let long_db = Database::open(&long_url, &MIGRATIONS).await.expect("long database");
        let short_db = Database::open(&short_url, &MIGRATIONS).await.expect("short database");
        let long = costs(long_db, Curriculum::built_in().expect("built-in")).await;
        let short = costs(short_db, curriculum_of(12)).await;
        eprintln!("{backend}: {modules} modules {long:?}; 12 modules {short:?}");
        assert_eq!(long, short, "{backend}: the statements do not depend on the curriculum's length");
        for cost in [long.enrol, long.hold, long.lift, long.batched] {
            assert!(cost <= MOST_STATEMENTS_PER_COMMAND, "{backend}: {long:?}");
        }
    }
}
