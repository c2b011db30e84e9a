//! One diesel code path for SQLite (bundled, WAL, busy timeout, foreign keys)
//! and PostgreSQL: a `MultiConnection` enum, an r2d2 pool whose manager opens
//! exactly the backend the URL names (diesel's own `establish` for a
//! `MultiConnection` tries each backend in turn and swallows the real error),
//! and embedded migrations, one folder per backend, run at start-up.
//!
//! Diesel is synchronous, so each unit of work runs as one closure on tokio's
//! blocking pool and never holds a connection across an `.await`.

use crate::config::DatabaseUrl;
use diesel::connection::SimpleConnection;
use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection};
use diesel_migrations::MigrationHarness;
use std::sync::Arc;
use std::time::Duration;

#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Pg(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// Why a unit of work could not run or failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had in time: the database is down or saturated.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

/// A fault of the database itself, not of the request: the service cannot
/// write until it passes, so readiness turns NOT_SERVING (see
/// [`crate::readiness`]) and the caller is told to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    /// No room to write: SQLite's SQLITE_FULL ("database or disk is full")
    /// or PostgreSQL's insufficient resources (class 53: disk full, out of
    /// memory).
    Full,
    /// The database cannot be reached: no connection in time, a connection
    /// lost (PostgreSQL gone, its backend terminated), a failing disk.
    Unreachable,
}

impl DbError {
    /// The storage fault behind this error, if it is one. A busy SQLite
    /// ("database is locked") is load, not a fault: it is not one.
    pub fn storage_fault(&self) -> Option<StorageFault> {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            DbError::Unavailable(_) => Some(StorageFault::Unreachable),
            DbError::Query(Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            )) => Some(StorageFault::Unreachable),
            DbError::Query(Error::DatabaseError(_, info)) => {
                classify_message(info.message(), info.hint().unwrap_or_default())
            }
            DbError::Query(_) => None,
        }
    }

    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _))
        )
    }
}

/// Recognises a storage fault from the database's own words. diesel keeps
/// SQLite's extended code and PostgreSQL's SQLSTATE to itself (both reach us
/// as `DatabaseErrorKind::Unknown`), so the messages are matched: SQLite's
/// fixed `sqlite3_errstr` texts, and PostgreSQL's class 53 texts and the
/// "Check free disk space." hint of 53100 (English server messages, the
/// default `lc_messages`).
fn classify_message(message: &str, hint: &str) -> Option<StorageFault> {
    const FULL: &[&str] = &[
        // SQLITE_FULL
        "database or disk is full",
        // PostgreSQL 53100 disk_full (the OS's ENOSPC text in its message)
        "No space left on device",
        // PostgreSQL 53200 out_of_memory
        "out of memory",
    ];
    const UNREACHABLE: &[&str] = &[
        // SQLITE_IOERR, SQLITE_CANTOPEN: the file or its disk failed.
        "disk I/O error",
        "unable to open database file",
        // PostgreSQL 57P01-57P03: the server is shutting down or restarting.
        "terminating connection due to administrator command",
        "the database system is shutting down",
        "the database system is starting up",
        // PostgreSQL 53300 too_many_connections
        "sorry, too many clients already",
    ];
    if hint.starts_with("Check free disk space") || FULL.iter().any(|m| message.contains(m)) {
        Some(StorageFault::Full)
    } else if UNREACHABLE.iter().any(|m| message.contains(m)) {
        Some(StorageFault::Unreachable)
    } else {
        None
    }
}

/// Opens connections of the one backend its URL names.
#[derive(Debug, Clone)]
pub struct Manager {
    url: DatabaseUrl,
}

impl ManageConnection for Manager {
    type Connection = DbConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConn, Self::Error> {
        match &self.url {
            DatabaseUrl::Postgres(url) => {
                diesel::PgConnection::establish(url).map(DbConn::Pg).map_err(diesel::r2d2::Error::ConnectionError)
            }
            DatabaseUrl::Sqlite(path) => {
                let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // One PRAGMA per statement and busy_timeout first, as diesel's
                // docs ask, so the others already wait on a locked database.
                for pragma in [
                    "PRAGMA busy_timeout = 5000",
                    "PRAGMA journal_mode = WAL",
                    "PRAGMA synchronous = NORMAL",
                    "PRAGMA foreign_keys = ON",
                ] {
                    conn.batch_execute(pragma).map_err(diesel::r2d2::Error::QueryError)?;
                }
                Ok(DbConn::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1").map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut DbConn) -> bool {
        false
    }
}

pub use crate::migrations::Migrations;

/// A service's database: a pool and the backend it talks to.
#[derive(Clone)]
pub struct Database {
    pool: r2d2::Pool<Manager>,
    postgres: bool,
    /// SQLite has one writer at a time. Writers of this process queue here,
    /// first come first served, instead of polling the file lock through
    /// the busy timeout: SQLite's busy handler is not fair, and under load a
    /// writer could lose every retry for the whole timeout and fail with
    /// "database is locked" while others kept writing. The busy timeout still
    /// covers other processes on the same file.
    write_gate: Option<Arc<tokio::sync::Mutex<()>>>,
    /// Raised when a unit of work meets a storage fault (see [`crate::readiness`]).
    storage_alarm: crate::readiness::StorageAlarm,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("postgres", &self.postgres).finish_non_exhaustive()
    }
}

/// A fixed key for `pg_advisory_lock`, so replicas starting together run
/// migrations one at a time.
const MIGRATION_LOCK_KEY: i64 = 0x0053_5445_504c_4142; // "STEPLAB"

impl Database {
    /// Opens the pool (failing fast with the database's own error) and runs
    /// pending migrations.
    pub async fn open(url: &DatabaseUrl, migrations: &'static Migrations) -> anyhow::Result<Self> {
        let url = url.clone();
        tokio::task::spawn_blocking(move || Self::open_blocking(&url, migrations)).await?
    }

    fn open_blocking(url: &DatabaseUrl, migrations: &'static Migrations) -> anyhow::Result<Self> {
        if let DatabaseUrl::Sqlite(path) = url
            && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create the data directory {}: {e}", dir.display()))?;
        }
        let manager = Manager { url: url.clone() };
        // Pre-flight outside the pool so the operator sees the real reason
        // (authentication, missing database, refused connection).
        let mut first = manager.connect().map_err(|e| anyhow::anyhow!("cannot open {url:?}: {e}"))?;
        run_migrations(&mut first, migrations)?;
        drop(first);
        let postgres = url.is_postgres();
        let pool = r2d2::Pool::builder()
            .max_size(if postgres { 10 } else { 4 })
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(5))
            .build(manager)
            .map_err(|e| anyhow::anyhow!("cannot open {url:?}: {e}"))?;
        let write_gate = (!postgres).then(|| Arc::new(tokio::sync::Mutex::new(())));
        Ok(Database { pool, postgres, write_gate, storage_alarm: Default::default() })
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    /// What readiness watches for storage faults met by this database's users.
    pub fn storage_alarm(&self) -> crate::readiness::StorageAlarm {
        self.storage_alarm.clone()
    }

    /// The pool's (open connections, idle connections).
    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
    }

    /// Runs `f` on a pooled connection on the blocking pool.
    pub async fn read<T, E>(&self, f: impl FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        // The call being served stays current inside the closure, so what
        // it writes (e.g. outbox commands) can carry the request id.
        let call = crate::observability::current();
        let alarm = self.storage_alarm.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| {
                // r2d2 adds the last connection error to its timeout; without
                // one the pool was only busy, which is load, not a fault.
                if e.to_string() != "timed out waiting for connection" {
                    alarm.raise(crate::db::StorageFault::Unreachable);
                }
                E::from(DbError::Unavailable(e.to_string()))
            })?;
            crate::readiness::watching(&alarm, || crate::observability::in_call(call, || f(&mut conn)))
        })
        .await
        .map_err(|e| E::from(DbError::Unavailable(format!("database task failed: {e}"))))?
    }

    /// Runs `f` in one write transaction: all of it commits or none of it.
    /// On SQLite the transaction takes the write lock at BEGIN (IMMEDIATE),
    /// so a read-then-write never fails to upgrade mid-way.
    pub async fn write<T, E>(&self, f: impl FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        // The turn is held by the closure on the blocking pool, so a caller
        // that goes away mid-write does not let the next writer in early.
        let turn = match &self.write_gate {
            Some(gate) => Some(Arc::clone(gate).lock_owned().await),
            None => None,
        };
        self.read(move |conn| {
            let written = write_transaction(conn, f);
            drop(turn);
            written
        })
        .await
    }
}

/// A write transaction on either backend (see [`Database::write`]).
pub fn write_transaction<T, E>(conn: &mut DbConn, f: impl FnOnce(&mut DbConn) -> Result<T, E>) -> Result<T, E>
where
    E: From<DbError>,
{
    let begun = match conn {
        DbConn::Sqlite(inner) => AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE"),
        DbConn::Pg(_) => <DbConn as Connection>::TransactionManager::begin_transaction(conn),
    };
    begun.map_err(|e| E::from(noted(DbError::Query(e))))?;
    match f(conn) {
        Ok(value) => {
            // An accepted change and its audit entry commit together (see
            // `crate::audit`): the first successful write transaction of a
            // mutating call carries it. Writes outside a call (the relay,
            // start-up) and reads are not audited here.
            let call = crate::observability::current().filter(|c| c.awaits_audit_entry());
            if let Some(call) = &call {
                let entry = crate::audit::NewEntry::for_call(call, tonic::Code::Ok, chrono::Utc::now().naive_utc());
                if let Err(e) = crate::audit::record(conn, &entry) {
                    let _ = <DbConn as Connection>::TransactionManager::rollback_transaction(conn);
                    return Err(E::from(e));
                }
            }
            <DbConn as Connection>::TransactionManager::commit_transaction(conn)
                .map_err(|e| E::from(noted(DbError::Query(e))))?;
            if let Some(call) = call {
                call.mark_audited();
            }
            Ok(value)
        }
        Err(err) => {
            // The original error is what the caller needs; a failed rollback
            // leaves the connection broken and r2d2 will replace it.
            let _ = <DbConn as Connection>::TransactionManager::rollback_transaction(conn);
            Err(err)
        }
    }
}

/// Raises the readiness alarm when `error` is a storage fault (SQLite in WAL
/// mode often finds a full disk only at COMMIT).
fn noted(error: DbError) -> DbError {
    crate::readiness::raise_for(&error);
    error
}

fn run_migrations(conn: &mut DbConn, migrations: &'static Migrations) -> anyhow::Result<()> {
    let migration_error = |e: Box<dyn std::error::Error + Send + Sync>| anyhow::anyhow!("migrations failed: {e}");
    match conn {
        DbConn::Sqlite(inner) => {
            // SQLite serialises writers; the busy timeout makes a second
            // process wait for the first one's migration transaction.
            inner.run_pending_migrations(migrations.sqlite()).map_err(migration_error)?;
        }
        DbConn::Pg(inner) => {
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")).execute(inner)?;
            let result = inner.run_pending_migrations(migrations.postgres()).map(|_| ());
            diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")).execute(inner)?;
            result.map_err(migration_error)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{self, Query, Subject};
    use crate::observability::{CallContext, in_call};
    use std::sync::Arc;

    /// An in-memory SQLite database with the services' real audit table.
    fn audited_db() -> DbConn {
        let mut conn = DbConn::Sqlite(diesel::SqliteConnection::establish(":memory:").expect("in-memory sqlite"));
        conn.batch_execute(include_str!("../migrations/audit_log/up.sqlite.sql")).expect("audit table");
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
}
