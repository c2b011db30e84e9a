//! Issue 18: a receiver's batch runs whole while no command is refused, and
//! again with a savepoint per command when one is (`batch::apply_batch`).
//! Both ways answer the same, and a refused command keeps none of its
//! writes while the others keep theirs, on SQLite and on PostgreSQL.

// The shared test module unwraps and panics, as tests do.
#![allow(clippy::panic, clippy::unwrap_used)]

mod common;

use common::FreshPostgres;
use diesel::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use steplab_platform::batch::{self, Decoded};
use steplab_platform::config::DatabaseUrl;
use steplab_platform::db::{Database, DbConn, Migrations};
use steplab_platform::error::ServiceError;
use steplab_platform::migrations::{PlatformMigration, Template};
use steplab_proto::steplab::common::v1::CommandAck;
use tonic::Code;

static NOTES: Migrations = Migrations::new(
    &[Template::new(
        "2026-12-01-000001_notes",
        "CREATE TABLE notes (participant_id TEXT NOT NULL, note TEXT NOT NULL);",
        "DROP TABLE notes;",
    )],
    &[
        (PlatformMigration::AuditLog, "2026-11-28-000003_audit"),
        (PlatformMigration::AuditRetention, "2026-11-29-140100_audit_retention"),
    ],
);

diesel::table! {
    notes (participant_id, note) {
        participant_id -> Text,
        note -> Text,
    }
}

/// A command of the test: writes a note, then is refused if asked.
struct Note {
    participant: String,
    refused_after_writing: bool,
}

fn command(participant: &str, refused_after_writing: bool) -> Decoded<Note> {
    Decoded {
        rpc: "PlaceHold",
        idempotency_key: format!("key-{participant}"),
        participant_id: participant.into(),
        request_id: None,
        prepared: Ok(Note { participant: participant.into(), refused_after_writing }),
    }
}

/// A command refused before it ran (as an undecodable one is).
fn unreadable(participant: &str) -> Decoded<Note> {
    Decoded {
        rpc: "PlaceHold",
        idempotency_key: String::new(),
        participant_id: participant.into(),
        request_id: None,
        prepared: Err(ServiceError::NotFound(format!("participant {participant} does not exist"))),
    }
}

/// Applies the batch `commands` makes, counting the commands run.
async fn apply(
    db: &Database,
    commands: impl Fn() -> Vec<Decoded<Note>>,
) -> (Result<Vec<(i32, String)>, ServiceError>, usize) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let answer = batch::apply_batch(db, commands, move |conn: &mut DbConn, note: Note| {
        counted.fetch_add(1, Ordering::SeqCst);
        steplab_platform::on_backend!(conn, |inner| diesel::insert_into(notes::table)
            .values((notes::participant_id.eq(&note.participant), notes::note.eq("written")))
            .execute(inner))
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
        if note.refused_after_writing {
            return Err(ServiceError::AlreadyExists(format!("{} refused after writing", note.participant)));
        }
        Ok(CommandAck::default())
    })
    .await
    .map(|results| results.into_iter().map(|r| (r.code, r.idempotency_key)).collect());
    (answer, runs.load(Ordering::SeqCst))
}

async fn noted(db: &Database) -> Vec<String> {
    db.read(|conn| {
        steplab_platform::on_backend!(conn, |inner| notes::table
            .select(notes::participant_id)
            .order(notes::participant_id)
            .load::<String>(inner))
        .map_err(steplab_platform::db::DbError::from)
    })
    .await
    .expect("notes")
}

async fn check(url: &DatabaseUrl) {
    let db = Database::open(url, &NOTES).await.expect("database");

    // Nothing refused: one pass, every command run once.
    let (answer, runs) = apply(&db, || vec![command("a", false), unreadable("b"), command("c", false)]).await;
    let ok = Code::Ok as i32;
    assert_eq!(
        answer.expect("batch"),
        [(ok, "key-a".into()), (Code::NotFound as i32, String::new()), (ok, "key-c".into())],
        "a command refused before it ran is answered alone"
    );
    assert_eq!(runs, 2, "one pass: the unreadable command never ran");
    assert_eq!(noted(&db).await, ["a", "c"]);

    // A refusal after writing: the batch is applied again, each command
    // apart; the refused one keeps nothing, the others everything.
    let (answer, runs) = apply(&db, || vec![command("d", false), command("e", true), command("f", false)]).await;
    assert_eq!(
        answer.expect("batch"),
        [(ok, "key-d".into()), (Code::AlreadyExists as i32, "key-e".into()), (ok, "key-f".into())]
    );
    assert_eq!(runs, 2 + 3, "the first pass stopped at the refusal, the second ran all three");
    assert_eq!(noted(&db).await, ["a", "c", "d", "f"], "e's write was undone, d's and f's kept once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_runs_whole_until_a_command_is_refused_then_each_command_apart_on_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    check(&DatabaseUrl::Sqlite(dir.path().join("batch.sqlite3"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_runs_whole_until_a_command_is_refused_then_each_command_apart_on_postgres() {
    let Some((_database, url)) = FreshPostgres::create("apply_batch") else { return };
    check(&url).await;
}
