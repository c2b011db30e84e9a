//! The pool does not test a connection when it is taken (issue 18: that
//! `SELECT 1` was a round trip before every unit of work), yet a connection
//! that died is not reused: the unit of work that meets the dead connection
//! fails (UNAVAILABLE, worth a retry), and the connection is tested and
//! dropped as it goes back, so the next unit of work gets a live one. On a
//! real SQLite file and a real PostgreSQL database.

#![allow(clippy::panic, clippy::unwrap_used)]

mod common;

use common::FreshPostgres;
use diesel::connection::{Instrumentation, InstrumentationEvent, set_default_instrumentation};
use diesel::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use steplab_platform::config::DatabaseUrl;
use steplab_platform::db::{Database, DbError, Migrations};
use steplab_platform::error::ServiceError;

static NOTHING: Migrations = Migrations::new(&[], &[]);

/// `SELECT 1` statements run by any connection opened after
/// [`count_probes`] (nextest runs each test in its own process).
static PROBES: AtomicUsize = AtomicUsize::new(0);

fn count_probes() {
    fn instrumentation() -> Option<Box<dyn Instrumentation>> {
        Some(Box::new(|event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { query, .. } = event
                && query.to_string() == "SELECT 1"
            {
                PROBES.fetch_add(1, Ordering::SeqCst);
            }
        }))
    }
    set_default_instrumentation(instrumentation).unwrap();
}

async fn answer(db: &Database) -> Result<i32, ServiceError> {
    db.read(|conn| {
        Ok::<_, ServiceError>(diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("2")).get_result(conn)?)
    })
    .await
}

#[tokio::test]
async fn no_connection_is_probed_when_taken_from_the_pool_on_sqlite() {
    count_probes();
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_sized(&DatabaseUrl::Sqlite(dir.path().join("probe.sqlite3")), &NOTHING, 2).await.unwrap();
    for _ in 0..50 {
        assert_eq!(answer(&db).await.unwrap(), 2);
        db.read_point(|conn| {
            Ok::<_, DbError>(
                diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("3")).get_result::<i32>(conn)?,
            )
        })
        .await
        .unwrap();
        db.write(|conn| Ok::<_, DbError>(diesel::sql_query("CREATE TABLE IF NOT EXISTS t (x INTEGER)").execute(conn)?))
            .await
            .unwrap();
    }
    assert_eq!(PROBES.load(Ordering::SeqCst), 0, "a SELECT 1 ran before a unit of work");
}

#[tokio::test]
async fn a_postgres_connection_that_died_fails_one_unit_of_work_and_is_not_reused() {
    count_probes();
    let Some((database, url)) = FreshPostgres::create("pool_checkout") else { return };
    let mut admin = database.admin();

    // One connection, so the unit of work after the kill gets the dead one.
    let db = Database::open_sized(&url, &NOTHING, 1).await.unwrap();
    for _ in 0..20 {
        assert_eq!(answer(&db).await.unwrap(), 2);
    }
    assert_eq!(PROBES.load(Ordering::SeqCst), 0, "a SELECT 1 ran before a unit of work");

    let killed: Vec<bool> = diesel::sql_query(format!(
        "SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE datname = '{}'",
        database.name
    ))
    .load::<Killed>(&mut admin)
    .unwrap()
    .into_iter()
    .map(|k| k.killed)
    .collect();
    assert_eq!(killed, [true], "the pool's one connection");

    // The dead connection fails the next unit of work, as a fault to retry...
    let failed = answer(&db).await.expect_err("the connection is gone");
    assert!(matches!(failed, ServiceError::Unavailable(_)), "{failed:?}");
    // ...and is not handed out again.
    for _ in 0..5 {
        assert_eq!(answer(&db).await.unwrap(), 2);
    }
}

#[derive(QueryableByName)]
struct Killed {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    killed: bool,
}

/// Issue 18: a SQLite connection keeps savepoint journals in memory (each
/// unit of work in a writer's group and each command of a batch is a
/// savepoint; past 64 KiB their journal was a temporary file, written for
/// every page a savepoint first changed), and the bundled SQLite plans
/// without the values bound (`.cargo/config.toml`), so a statement kept
/// prepared is not parsed again each time a `LIMIT ?` is bound anew.
#[tokio::test]
async fn sqlite_connections_journal_savepoints_in_memory_and_plan_without_the_values_bound() {
    let dir = tempfile::tempdir().unwrap();
    let db =
        Database::open_sized(&DatabaseUrl::Sqlite(dir.path().join("settings.sqlite3")), &NOTHING, 2).await.unwrap();
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        value: i64,
    }
    for _ in 0..3 {
        let (temp_store, qpsg) = db
            .read(|conn| {
                let temp_store = diesel::sql_query("SELECT temp_store AS value FROM pragma_temp_store")
                    .get_result::<Setting>(conn)?;
                let qpsg = diesel::sql_query(
                    "SELECT COUNT(*) AS value FROM pragma_compile_options WHERE compile_options = 'ENABLE_QPSG'",
                )
                .get_result::<Setting>(conn)?;
                Ok::<_, DbError>((temp_store.value, qpsg.value))
            })
            .await
            .unwrap();
        assert_eq!(temp_store, 2, "PRAGMA temp_store is MEMORY (2) on every pooled connection");
        assert_eq!(qpsg, 1, "the bundled SQLite is built with SQLITE_ENABLE_QPSG");
    }
}
