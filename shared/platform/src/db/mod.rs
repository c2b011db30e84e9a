//! One diesel code path for SQLite (bundled, WAL, busy timeout, foreign keys)
//! and PostgreSQL: a `MultiConnection` enum, an r2d2 pool whose manager opens
//! exactly the backend the URL names (diesel's own `establish` for a
//! `MultiConnection` tries each backend in turn and swallows the real error),
//! and embedded migrations, one folder per backend, run at start-up.
//!
//! Diesel is synchronous, so each unit of work runs as one closure on tokio's
//! blocking pool and never holds a connection across an `.await`.

use crate::config::DatabaseUrl;
pub use alarm::StorageAlarm;
pub(crate) use alarm::{raise_for, watching};
use diesel::connection::SimpleConnection;
use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection};
use diesel_migrations::MigrationHarness;
use std::time::Duration;

mod alarm;
mod group;
mod prepared;
mod service_error;
pub use prepared::{KeepPrepared, KeepPreparedDsl};

#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Pg(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// Inserts many rows in one multi-row `INSERT` on either backend:
/// `$crate::insert_rows!(conn, table, &rows)` answers the rows inserted
/// (`QueryResult<usize>`). Diesel's `MultiConnection` has no batch insert
/// for SQLite (it would need the DEFAULT keyword SQLite lacks), so the
/// statement goes to the backend's own connection; the rows must insert no
/// DEFAULT (`treat_none_as_default_value = false` for `Option` fields).
#[macro_export]
macro_rules! insert_rows {
    ($conn:expr, $table:expr, $rows:expr) => {{
        use ::diesel::RunQueryDsl as _;
        match $conn {
            $crate::db::DbConn::Sqlite(inner) => ::diesel::insert_into($table).values($rows).execute(inner),
            $crate::db::DbConn::Pg(inner) => ::diesel::insert_into($table).values($rows).execute(inner),
        }
    }};
}

/// Runs `$body` with `$inner` bound to the backend's own connection:
/// `$crate::on_backend!(conn, |inner| query.load(inner))`. The same typed
/// query is built once per backend. Used where diesel's `MultiConnection`
/// lacks a feature both backends have (UNION ALL, RETURNING), and on hot
/// paths: its `SerializedQuery` writes the whole SQL text again (quoting
/// every identifier) on each walk of the query, even when the prepared
/// statement is cached, while the backend's own connection finds a cached
/// statement by the query's type and only binds.
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$inner:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Pg($inner) => $body,
            $crate::db::DbConn::Sqlite($inner) => $body,
        }
    };
}

/// Why a unit of work could not run or failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had in time: the database is down or saturated.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Query(diesel::result::Error),
}

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        alarm::note_error();
        DbError::Query(e)
    }
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
                    // Savepoint journals in memory: each unit of work in a
                    // writer's group, and each command of a batch, is a
                    // savepoint, and SQLite copies every page a savepoint
                    // first changes to its sub-journal, a temporary file
                    // past 64 KiB. Those file writes were a third of
                    // content release's feed rewrite (issue 18). A group is
                    // bounded, so the memory it takes is too.
                    "PRAGMA temp_store = MEMORY",
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

    /// Asked as a connection goes back to the pool. A connection is not
    /// tested when it is taken (r2d2's `test_on_check_out`): that `SELECT 1`
    /// was a round trip before every unit of work, on PostgreSQL about half
    /// the participant service's statements (issue 18), and a parse on
    /// SQLite. Instead a connection whose unit of work met a database error
    /// is tested here, before it is reused, and dropped if it no longer
    /// answers (a backend terminated, a server restarted). A connection that
    /// died while idle fails its next unit of work once (UNAVAILABLE, worth
    /// a retry), and is dropped then.
    fn has_broken(&self, conn: &mut DbConn) -> bool {
        alarm::take_error() && self.is_valid(conn).is_err()
    }
}

pub use crate::migrations::Migrations;

/// A service's database: a pool and the backend it talks to.
#[derive(Clone)]
pub struct Database {
    pool: r2d2::Pool<Manager>,
    postgres: bool,
    /// SQLite has one writer at a time. Writers of this process queue for
    /// one writer thread, first come first served (the relay's bookkeeping
    /// first), which commits the units
    /// waiting together in one transaction (see [`group`]), instead of
    /// polling the file lock through the busy timeout: SQLite's busy
    /// handler is not fair, and under load a writer could lose every retry
    /// for the whole timeout and fail with "database is locked" while
    /// others kept writing. The busy timeout still covers other processes
    /// on the same file. `None` on PostgreSQL, which takes concurrent
    /// writers.
    writer: Option<group::GroupWriter>,
    /// Raised when a unit of work meets a storage fault (see [`crate::readiness`]).
    storage_alarm: StorageAlarm,
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
    /// The pool holds the backend's default number of connections (see
    /// [`Database::open_sized`]).
    pub async fn open(url: &DatabaseUrl, migrations: &'static Migrations) -> anyhow::Result<Self> {
        Self::open_sized(url, migrations, crate::config::default_pool_size(url)).await
    }

    /// Opens the pool with at most `pool_size` connections (at least one).
    pub async fn open_sized(
        url: &DatabaseUrl,
        migrations: &'static Migrations,
        pool_size: u32,
    ) -> anyhow::Result<Self> {
        let url = url.clone();
        tokio::task::spawn_blocking(move || Self::open_blocking(&url, migrations, pool_size.max(1))).await?
    }

    fn open_blocking(url: &DatabaseUrl, migrations: &'static Migrations, pool_size: u32) -> anyhow::Result<Self> {
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
            .max_size(pool_size)
            .min_idle(Some(1))
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(5))
            .build(manager)
            .map_err(|e| anyhow::anyhow!("cannot open {url:?}: {e}"))?;
        let storage_alarm = StorageAlarm::default();
        let writer = if postgres {
            None
        } else {
            Some(
                group::GroupWriter::start(pool.clone(), storage_alarm.clone())
                    .map_err(|e| anyhow::anyhow!("cannot start the database writer: {e}"))?,
            )
        };
        Ok(Database { pool, postgres, writer, storage_alarm })
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    /// What readiness watches for storage faults met by this database's users.
    pub fn storage_alarm(&self) -> StorageAlarm {
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
        let call = crate::call::current();
        let alarm = self.storage_alarm.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = check_out(&pool, &alarm).map_err(E::from)?;
            watching(&alarm, || crate::call::in_call(call, || f(&mut conn)))
        })
        .await
        .map_err(|e| E::from(DbError::Unavailable(format!("database task failed: {e}"))))?
    }

    /// A point read (one participant, a statement or two): on SQLite it runs
    /// on the calling task when a connection is idle; otherwise, and always
    /// on PostgreSQL, as [`Database::read`].
    ///
    /// A SQLite point read is local work on the page cache, tens of
    /// microseconds, that never waits for a writer in WAL mode; handing it
    /// to the blocking pool (two thread switches and a wake-up) cost more
    /// than the read itself: in place, GetReleaseState went from 8,781 to
    /// 9,929-12,461 calls/s and GetParticipant from 7,166 to 7,864-9,519 at
    /// 16 clients (two runs; docs/benchmarks.md).
    /// Reads that may take milliseconds (lists, reports) keep using
    /// [`Database::read`], so they never hold up a runtime worker, and so
    /// does PostgreSQL, whose reads wait on the network and the server.
    pub async fn read_point<T, E>(&self, f: impl FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        // `try_get` never waits: with every connection busy, the read
        // queues on the blocking pool as any other.
        if !self.postgres
            && let Some(mut conn) = self.pool.try_get()
        {
            let call = crate::call::current();
            return watching(&self.storage_alarm, || crate::call::in_call(call, || f(&mut conn)));
        }
        self.read(f).await
    }

    /// Runs a whole unit of work that writes: on SQLite in the next group
    /// of the writer thread (its transaction becomes a savepoint of the
    /// group's, see [`group`]); on PostgreSQL on a pooled connection of its
    /// own, as [`Database::read`]. `urgent`: the relay's bookkeeping, which
    /// goes before waiting changes on SQLite.
    pub(crate) async fn write_unit<T, E>(
        &self,
        urgent: bool,
        f: impl FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        match &self.writer {
            Some(writer) => writer.write(urgent, f).await,
            None => self.read(f).await,
        }
    }
}

/// A connection from the pool, for a unit of work or the writer's group.
fn check_out(pool: &r2d2::Pool<Manager>, alarm: &StorageAlarm) -> Result<r2d2::PooledConnection<Manager>, DbError> {
    pool.get().map_err(|e| {
        // r2d2 adds the last connection error to its timeout; without one
        // the pool was only busy, which is load, not a fault.
        if e.to_string() != "timed out waiting for connection" {
            alarm.raise(StorageFault::Unreachable);
        }
        DbError::Unavailable(e.to_string())
    })
}

/// A write transaction on either backend: `f`, then `before_commit` on the
/// same transaction (which may still roll it back), then COMMIT. The unit of
/// work ([`crate::uow`]) adds what every write carries through `before_commit`.
pub(crate) fn transaction<T, R, E>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn) -> Result<T, E>,
    before_commit: impl FnOnce(&mut DbConn) -> Result<R, E>,
) -> Result<(T, R), E>
where
    E: From<DbError>,
{
    begin(conn).map_err(|e| E::from(noted(DbError::Query(e))))?;
    let done = f(conn).and_then(|value| Ok((value, before_commit(conn)?)));
    match done {
        Ok(done) => {
            <DbConn as Connection>::TransactionManager::commit_transaction(conn)
                .map_err(|e| E::from(noted(DbError::Query(e))))?;
            Ok(done)
        }
        Err(err) => {
            // The original error is what the caller needs; a failed rollback
            // leaves the connection broken and r2d2 will replace it.
            let _ = <DbConn as Connection>::TransactionManager::rollback_transaction(conn);
            Err(err)
        }
    }
}

/// Opens a write transaction: on SQLite an IMMEDIATE one (it takes the
/// write lock at once, so a read-then-write never fails to upgrade
/// mid-way), or, inside the writer's group transaction, a savepoint of it.
fn begin(conn: &mut DbConn) -> diesel::QueryResult<()> {
    let nested =
        <DbConn as Connection>::TransactionManager::transaction_manager_status_mut(conn).transaction_depth()?.is_some();
    match conn {
        DbConn::Sqlite(inner) if !nested => AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE"),
        _ => <DbConn as Connection>::TransactionManager::begin_transaction(conn),
    }
}

/// A write transaction that is always rolled back: `f` sees and makes every
/// change a real one would, and none of it stays (AIP-163 `validate_only`).
pub(crate) fn rolled_back<T, E>(conn: &mut DbConn, f: impl FnOnce(&mut DbConn) -> Result<T, E>) -> Result<T, E>
where
    E: From<DbError>,
{
    begin(conn).map_err(|e| E::from(noted(DbError::Query(e))))?;
    let done = f(conn);
    <DbConn as Connection>::TransactionManager::rollback_transaction(conn)
        .map_err(|e| E::from(noted(DbError::Query(e))))?;
    done
}

/// Raises the readiness alarm when `error` is a storage fault (SQLite in WAL
/// mode often finds a full disk only at COMMIT).
fn noted(error: DbError) -> DbError {
    raise_for(&error);
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
