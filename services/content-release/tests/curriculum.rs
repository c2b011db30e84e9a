//! R1 at start-up: a deployment's own curriculum file is loaded, a malformed
//! one stops the service with an error naming the file and where, and a
//! changed curriculum recomputes the stored release feed (R4) so that it
//! always agrees with the release engine.

use std::collections::HashMap;
use std::sync::Arc;
use steplab_content_release::domain::Curriculum;
use steplab_content_release::domain::curriculum::DEFAULT_JSON;
use steplab_content_release::service::ContentRelease;
use steplab_content_release::{MIGRATIONS, load_curriculum};
use steplab_platform::config::Config;
use steplab_platform::db::Database;
use steplab_platform::{Caller, Clock, Scope};
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::common::v1::Programme;
use steplab_proto::steplab::content::v1 as pb;

fn config(dir: &std::path::Path, extra: &[(&str, String)]) -> Config {
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("STEPLAB_DATA_DIR".into(), dir.display().to_string());
    vars.insert("STEPLAB_JWT_SECRET".into(), "test-secret-test-secret-test-secret-0123".into());
    vars.insert("STEPLAB_TODAY".into(), "2026-11-28".into());
    for (k, v) in extra {
        vars.insert((*k).into(), v.clone());
    }
    Config::from_lookup(|k| vars.get(k).cloned()).expect("config")
}

fn service_caller() -> Caller {
    Caller { sub: "participant-service".into(), scope: Scope::Service }
}

fn day(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

/// The built-in curriculum with ECT module 1 due a week after the start.
fn shifted_curriculum() -> String {
    let mut doc: serde_json::Value = serde_json::from_str(DEFAULT_JSON).expect("json");
    doc["programmes"][0]["modules"][0]["release_offset_days"] = 7.into();
    serde_json::to_string_pretty(&doc).expect("json")
}

#[test]
fn r1_a_deployment_loads_its_own_curriculum_file() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("curriculum.json");
    std::fs::write(&path, shifted_curriculum()).expect("write");
    let loaded = load_curriculum(Some(&path)).expect("valid file");
    let ect = loaded.programme(steplab_content_release::domain::Programme::Ect);
    assert_eq!(ect.modules[0].release_offset_days, 7);
}

#[test]
fn r1_a_malformed_or_missing_curriculum_file_names_the_file_and_where() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("curriculum.json");
    std::fs::write(&path, DEFAULT_JSON.replacen("\"term\": 1,", "\"term\": \"one\",", 1)).expect("write");
    let err = load_curriculum(Some(&path)).expect_err("a term that is not a number");
    let message = err.to_string();
    assert!(message.contains("STEPLAB_CURRICULUM_FILE"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("line 8, column"), "{message}");
    let err = load_curriculum(Some(&dir.path().join("absent.json"))).expect_err("no file");
    assert!(err.to_string().contains("absent.json"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1_a_malformed_curriculum_file_stops_the_service_at_start_up() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("curriculum.json");
    std::fs::write(&path, "{ \"strands\": [], \"programmes\": [] }").expect("write");
    let config = config(dir.path(), &[("STEPLAB_CURRICULUM_FILE", path.display().to_string())]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let err = steplab_content_release::run(config.content_release_config(), listener, std::future::pending())
        .await
        .expect_err("start-up refused");
    let message = err.to_string();
    assert!(message.contains("curriculum.json"), "{message}");
    assert!(message.contains("strands"), "{message}");
}

async fn feed_on(service: &ContentRelease, on: Option<Date>) -> Vec<(String, bool)> {
    service
        .list_releases(
            service_caller(),
            pb::ListReleasesRequest { start_date: on, end_date: on, page_size: 0, page_token: String::new() },
        )
        .await
        .expect("feed")
        .releases
        .into_iter()
        .map(|r| (r.module_id, r.optional_module))
        .collect()
}

/// A migrated database in `dir` and the pinned clock of the test config.
async fn fresh_store(dir: &std::path::Path) -> (Database, Clock) {
    let config = config(dir, &[]);
    let db = Database::open(&config.content.database, &MIGRATIONS).await.expect("database");
    (db, Clock::Pinned(config.clock.today.expect("pinned")))
}

async fn enrol_ect_from_1_september(service: &ContentRelease) {
    service
        .enrol_learner(
            service_caller(),
            pb::EnrolLearnerRequest {
                idempotency_key: "c-1".into(),
                participant_id: "p-1".into(),
                programme: Programme::Ect as i32,
                release_start: day(2026, 9, 1),
                school_id: "school".into(),
                delivery_partner_id: "dp".into(),
            },
        )
        .await
        .expect("enrol");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_a_changed_curriculum_recomputes_the_stored_feed_at_start_up() {
    let dir = tempfile::tempdir().expect("dir");
    let (db, clock) = fresh_store(dir.path()).await;
    let built_in = ContentRelease::new(db.clone(), clock, Arc::new(Curriculum::built_in().expect("built-in")));
    assert_eq!(built_in.reconcile_curriculum().await.expect("first start"), 0);
    enrol_ect_from_1_september(&built_in).await;
    assert_eq!(feed_on(&built_in, day(2026, 9, 1)).await, [("ect-01".to_string(), false)]);
    assert_eq!(built_in.reconcile_curriculum().await.expect("same curriculum"), 0);

    let shifted = Curriculum::parse("shifted.json", &shifted_curriculum()).expect("valid");
    let restarted = ContentRelease::new(db, clock, Arc::new(shifted));
    assert_eq!(restarted.reconcile_curriculum().await.expect("changed"), 1);
    assert!(feed_on(&restarted, day(2026, 9, 1)).await.is_empty());
    assert_eq!(feed_on(&restarted, day(2026, 9, 8)).await, [("ect-01".to_string(), false)]);
    assert_eq!(restarted.reconcile_curriculum().await.expect("recorded"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d5_a_feed_stored_under_the_previous_release_rules_is_recomputed_at_start_up() {
    let dir = tempfile::tempdir().expect("dir");
    let (db, clock) = fresh_store(dir.path()).await;
    let curriculum = Arc::new(Curriculum::built_in().expect("built-in"));
    let service = ContentRelease::new(db.clone(), clock, curriculum.clone());
    assert_eq!(service.reconcile_curriculum().await.expect("first start"), 0);
    enrol_ect_from_1_september(&service).await;
    // The marker a release before the term-aligned restart wrote: the bare
    // curriculum, so its feed may hold holiday releases after a deferral.
    let canonical = curriculum.canonical().to_owned();
    let now = clock.now();
    db.write(move |conn| steplab_content_release::store::save_curriculum(conn, &canonical, now))
        .await
        .expect("old marker");
    assert_eq!(service.reconcile_curriculum().await.expect("new rules"), 1);
    assert_eq!(service.reconcile_curriculum().await.expect("recorded"), 0);
}
