//! The unit of work: one write transaction, and with it the audit entry of
//! the mutating call it serves. An accepted change and its audit entry
//! commit together (see [`crate::audit`]): the first successful write
//! transaction of a mutating call carries it. Writes outside a call (the
//! relay, start-up) and reads are not audited here. Kept apart from
//! [`crate::db`] so the database layer knows nothing of the audit log.

use crate::audit;
use crate::db::{self, Database, DbConn, DbError};

impl Database {
    /// Runs `f` in one write transaction: all of it commits or none of it.
    /// On SQLite the transaction takes the write lock at BEGIN (IMMEDIATE),
    /// so a read-then-write never fails to upgrade mid-way.
    pub async fn write<T, E>(&self, f: impl FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        self.write_unit(false, move |conn| write_transaction(conn, f)).await
    }

    /// A write of one statement, atomic by itself, outside any call (the
    /// relay's lease and its record of a delivered batch). On PostgreSQL it
    /// runs without BEGIN and COMMIT around it, two round trips fewer of
    /// the relay's dozen per change (issue 18); on SQLite it is written as
    /// [`Database::write`] is, but before the changes waiting for the
    /// writer (see [`crate::db`]'s group commit). `f` must run
    /// exactly one writing statement: two would not be atomic on
    /// PostgreSQL.
    pub async fn write_statement<T, E>(
        &self,
        f: impl FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        if self.is_postgres() {
            self.read(f).await
        } else {
            // The relay's lease and record go before the changes waiting
            // to be written: the delivery lag waits on them.
            self.write_unit(true, move |conn| write_transaction(conn, f)).await
        }
    }

    /// [`Database::write`], with `admit` asked again when this call's turn
    /// to write comes, before any statement runs: a refusal then costs the
    /// one writer nothing. (Backpressure: on SQLite changes queue for the
    /// one writer, and changes admitted while the relay looked current were
    /// accepted seconds later, after it had fallen behind.) On PostgreSQL,
    /// with no queue, it is asked before a connection is taken.
    pub async fn write_admitted<T, E>(
        &self,
        admit: impl FnOnce() -> Result<(), E> + Send + 'static,
        f: impl FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        if self.is_postgres() {
            admit()?;
            return self.write(f).await;
        }
        self.write_unit(false, move |conn| {
            admit()?;
            write_transaction(conn, f)
        })
        .await
    }

    /// Runs a batch of commands (ApplyCommands) in one write transaction:
    /// `f` answers the value and one audit entry per command, which commit
    /// with it in place of the call's own entry (each command is audited as
    /// a call of the RPC it stands for, the batch is not). When `f` or the
    /// commit fails nothing is recorded here, and the call is left to be
    /// audited as refused.
    pub async fn write_commands<T, E>(
        &self,
        f: impl FnOnce(&mut DbConn) -> Result<(T, Vec<audit::NewEntry>), E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        self.write_unit(false, move |conn| {
            let with_entries = |conn: &mut DbConn| -> Result<T, E> {
                let (value, entries) = f(conn)?;
                audit::record_all(conn, &entries).map_err(E::from)?;
                Ok(value)
            };
            let (value, ()) = db::transaction(conn, with_entries, |_| Ok(()))?;
            if let Some(call) = crate::call::current() {
                call.mark_audited();
            }
            Ok(value)
        })
        .await
    }

    /// Runs `f` as [`Database::write`] would, then rolls everything back:
    /// the dry run of a change (AIP-163 `validate_only`). `f` sees its own
    /// writes (the rows a real call would add, the outbox commands it would
    /// send), so a dry run and the real call share one code path. No audit
    /// entry is written: nothing changed.
    pub async fn dry_run<T, E>(&self, f: impl FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        self.write_unit(false, move |conn| {
            let answer = db::rolled_back(conn, f);
            if answer.is_ok()
                && let Some(call) = crate::call::current()
            {
                // Nothing changed, so nothing to audit: the call's layer
                // would otherwise record the dry run as a change.
                call.mark_audited();
            }
            answer
        })
        .await
    }
}

/// A write transaction on either backend (see [`Database::write`]) that
/// carries the current call's audit entry when the call awaits one.
pub fn write_transaction<T, E>(conn: &mut DbConn, f: impl FnOnce(&mut DbConn) -> Result<T, E>) -> Result<T, E>
where
    E: From<DbError>,
{
    let audit_entry = |conn: &mut DbConn| {
        let call = crate::call::current().filter(|c| c.awaits_audit_entry());
        if let Some(call) = &call {
            let entry = audit::NewEntry::for_call(call, tonic::Code::Ok, chrono::Utc::now().naive_utc());
            audit::record(conn, &entry).map_err(E::from)?;
        }
        Ok(call)
    };
    let (value, audited) = db::transaction(conn, f, audit_entry)?;
    if let Some(call) = audited {
        call.mark_audited();
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Query, Subject};
    use crate::call::{CallContext, in_call};
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    use std::sync::Arc;

    /// An in-memory SQLite database with the services' real audit table.
    fn audited_db() -> DbConn {
        let mut conn = DbConn::Sqlite(diesel::SqliteConnection::establish(":memory:").expect("in-memory sqlite"));
        conn.batch_execute(&crate::migrations::PlatformMigration::AuditLog.sqlite_up()).expect("audit table");
        conn.batch_execute(include_str!("../migrations/audit_retention/up.sql")).expect("audit retention");
        conn.batch_execute("CREATE TABLE changes (id INTEGER PRIMARY KEY)").expect("changes table");
        conn
    }

    fn entries(conn: &mut DbConn) -> Vec<audit::Entry> {
        audit::list(conn, &Query { subject: Subject::Everything, after: None, limit: 100 }).expect("entries").0
    }

    fn change(conn: &mut DbConn) -> Result<(), DbError> {
        diesel::sql_query("INSERT INTO changes DEFAULT VALUES").execute(conn)?;
        Ok(())
    }

    #[test]
    fn a_mutating_calls_first_write_commits_its_audit_entry_with_the_change() {
        let mut conn = audited_db();
        let call = Arc::new(CallContext::new("r-1".into(), "PauseParticipant".into()));
        call.set_participant("p-1");
        in_call(Some(call.clone()), || write_transaction(&mut conn, change)).expect("first write");
        assert!(call.is_audited());
        // A second write of the same call carries no second entry.
        in_call(Some(call.clone()), || write_transaction(&mut conn, change)).expect("second write");
        let found = entries(&mut conn);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].rpc.as_str(), found[0].outcome.as_str(), found[0].participant_id.as_deref()),
            ("PauseParticipant", "OK", Some("p-1"))
        );
    }

    #[test]
    fn a_dry_run_sees_its_own_writes_and_keeps_none_of_them() {
        let mut conn = audited_db();
        let count = |c: &mut DbConn| -> Result<i64, DbError> {
            Ok(diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>("(SELECT COUNT(*) FROM changes)"))
                .get_result(c)?)
        };
        let call = Arc::new(CallContext::new("r-1".into(), "PauseParticipant".into()));
        let seen = in_call(Some(call.clone()), || {
            db::rolled_back(&mut conn, |c| {
                change(c)?;
                change(c)?;
                count(c)
            })
        })
        .expect("dry run");
        assert_eq!(seen, 2, "the dry run saw its own writes");
        assert_eq!(count(&mut conn).expect("count"), 0, "and none stayed");
        assert!(!call.is_audited());
        assert_eq!(entries(&mut conn), []);
    }

    #[test]
    fn a_failed_write_a_read_and_a_write_outside_any_call_record_nothing() {
        let mut conn = audited_db();
        let refused = Arc::new(CallContext::new("r-1".into(), "PauseParticipant".into()));
        let failed: Result<(), DbError> = in_call(Some(refused.clone()), || {
            write_transaction(&mut conn, |c| {
                change(c)?;
                Err(DbError::Unavailable("refused".into()))
            })
        });
        assert!(failed.is_err());
        assert!(!refused.is_audited(), "left for the Observed layer to record as refused");
        let read = Arc::new(CallContext::new("r-2".into(), "GetParticipant".into()));
        in_call(Some(read), || write_transaction(&mut conn, change)).expect("read through a write");
        // The relay and start-up work write outside any call.
        write_transaction(&mut conn, change).expect("no call");
        assert_eq!(entries(&mut conn), []);
        let changes: i64 =
            diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>("(SELECT COUNT(*) FROM changes)"))
                .get_result(&mut conn)
                .expect("count");
        assert_eq!(changes, 2, "the failed write rolled back");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn write_admitted_asks_at_the_writers_turn_not_before_it() {
        use crate::migrations::{Migrations, PlatformMigration};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::Duration;
        static MIGRATIONS: Migrations =
            Migrations::platform_only(&[(PlatformMigration::Heartbeat, "2026-11-29-000001_heartbeat")]);
        let dir = tempfile::tempdir().expect("temp dir");
        let url = crate::config::DatabaseUrl::Sqlite(dir.path().join("turn.sqlite3"));
        let db = Database::open(&url, &MIGRATIONS).await.expect("database");
        // Whether changes may go ahead: yes when the second one is called,
        // no by the time the first one, ahead of it, has finished.
        let open = Arc::new(AtomicBool::new(true));
        let first = {
            let (db, open) = (db.clone(), open.clone());
            tokio::spawn(async move {
                db.write(move |_conn| {
                    std::thread::sleep(Duration::from_millis(300));
                    open.store(false, Ordering::SeqCst);
                    Ok::<_, DbError>(())
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(open.load(Ordering::SeqCst), "the second change is called while changes are admitted");
        let ran = Arc::new(AtomicBool::new(false));
        let ran_inside = ran.clone();
        let open_at_turn = open.clone();
        let second = db
            .write_admitted(
                move || {
                    if open_at_turn.load(Ordering::SeqCst) {
                        Ok(())
                    } else {
                        Err(DbError::Unavailable("refused".into()))
                    }
                },
                move |_conn| {
                    ran_inside.store(true, Ordering::SeqCst);
                    Ok::<_, DbError>(())
                },
            )
            .await;
        first.await.expect("first task").expect("first write");
        assert!(second.is_err(), "refused at its turn, after the first write closed the door");
        assert!(!ran.load(Ordering::SeqCst), "a refused change never runs");
    }
}
