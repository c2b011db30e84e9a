//! Group commit for SQLite (issue 18, item 4): this process's write units
//! queue for one writer thread, which runs every unit waiting at the time
//! in one transaction, each in a savepoint of its own, and commits them
//! together.
//!
//! SQLite has one writer at a time. Before, writers took turns through a
//! mutex, each with its own transaction, its own hand-off to the blocking
//! pool and its own WAL frames; a deferral's write waited behind the relay's
//! leases and records (at 1 client: 5.5 ms of a 8.3 ms write was the wait
//! for the turn). Now the units waiting together share one BEGIN, one
//! COMMIT and one write of each page they touch.
//!
//! What a caller sees:
//! - its unit runs alone in its savepoint: an error in it rolls back only
//!   its own changes, and it gets its own answer;
//! - it gets its answer only after the COMMIT that holds its changes; if
//!   that COMMIT fails, every unit of the group gets the error and none of
//!   their changes stays;
//! - units run in the order they were queued (first come, first served),
//!   except the relay's leases and records (`write_statement`), which go
//!   before the changes waiting with them, in a transaction of their own:
//!   the delivery lag waits on them, and behind a group of 64 changes it
//!   doubled;
//! - a caller that went away before its unit's turn (a cancelled call) is
//!   skipped, as a waiter for the turn was dropped before.

use super::{DbConn, DbError, Manager, StorageAlarm, alarm, begin, check_out, noted};
use crate::call::CallContext;
use diesel::connection::{Connection, TransactionManager};
use diesel::r2d2;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc;

/// Units one transaction takes at most: enough to share a commit among all
/// of a busy service's callers, few enough that the first of them is not
/// held long by the rest.
const GROUP_MAX_UNITS: usize = 64;

/// A queued unit of work.
trait Unit: Send {
    /// Runs the unit on the group's transaction (inside a savepoint, which
    /// [`super::transaction`] opens when a transaction is already open).
    fn run(self: Box<Self>, conn: &mut DbConn) -> Box<dyn Settle>;
    /// The unit cannot run: no connection, or the group could not begin.
    fn abandon(self: Box<Self>, error: &DbError);
    /// The caller is gone (its call was cancelled before the unit's turn).
    fn is_abandoned_by_caller(&self) -> bool;
    /// The relay's own bookkeeping (see [`GroupWriter::write`]).
    fn is_urgent(&self) -> bool;
}

/// A unit that ran, waiting for its group's COMMIT.
trait Settle: Send {
    fn settle(self: Box<Self>, committed: Result<(), &DbError>);
}

struct Queued<F, T, E> {
    f: F,
    urgent: bool,
    call: Option<Arc<CallContext>>,
    answer: tokio::sync::oneshot::Sender<Result<T, E>>,
}

struct Ran<T, E> {
    result: Result<T, E>,
    call: Option<Arc<CallContext>>,
    /// The call's audit entry was committed before this unit.
    audited_before: bool,
    answer: tokio::sync::oneshot::Sender<Result<T, E>>,
}

impl<F, T, E> Unit for Queued<F, T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &mut DbConn) -> Box<dyn Settle> {
        let Queued { f, call, answer, .. } = *self;
        let audited_before = call.as_ref().is_some_and(|c| c.is_audited());
        let ran = catch_unwind(AssertUnwindSafe(|| crate::call::in_call(call.clone(), || f(conn))));
        let result = ran.unwrap_or_else(|_| {
            Err(E::from(DbError::Unavailable("the database write failed unexpectedly: retry the request".into())))
        });
        Box::new(Ran { result, call, audited_before, answer })
    }

    fn abandon(self: Box<Self>, error: &DbError) {
        let _ = self.answer.send(Err(E::from(copy_of(error))));
    }

    fn is_abandoned_by_caller(&self) -> bool {
        self.answer.is_closed()
    }

    fn is_urgent(&self) -> bool {
        self.urgent
    }
}

impl<T, E> Settle for Ran<T, E>
where
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    fn settle(self: Box<Self>, committed: Result<(), &DbError>) {
        let Ran { result, call, audited_before, answer } = *self;
        let result = match committed {
            Ok(()) => result,
            Err(error) => {
                // The audit entry this unit carried did not commit either:
                // the call's own layer records it as refused instead.
                if let Some(call) = call.filter(|_| !audited_before) {
                    call.unmark_audited();
                }
                Err(E::from(copy_of(error)))
            }
        };
        let _ = answer.send(result);
    }
}

/// The same error for each unit of a group that could not commit (diesel's
/// errors are not `Clone`); a database error keeps its kind and message, so
/// it is classified as the original would be (a full disk stays a storage
/// fault).
fn copy_of(error: &DbError) -> DbError {
    use diesel::result::Error;
    match error {
        DbError::Unavailable(message) => DbError::Unavailable(message.clone()),
        DbError::Query(Error::DatabaseError(kind, info)) => {
            DbError::Query(Error::DatabaseError(*kind, Box::new(info.message().to_owned())))
        }
        DbError::Query(other) => DbError::Unavailable(other.to_string()),
    }
}

/// The queue of this process's writers to one SQLite database. Cloning
/// shares the queue; the writer thread stops when the last clone is dropped.
#[derive(Clone)]
pub(crate) struct GroupWriter {
    queue: mpsc::Sender<Box<dyn Unit>>,
}

impl GroupWriter {
    pub(crate) fn start(pool: r2d2::Pool<Manager>, alarm: StorageAlarm) -> std::io::Result<Self> {
        let (queue, units) = mpsc::channel::<Box<dyn Unit>>();
        std::thread::Builder::new().name("sqlite-writer".into()).spawn(move || {
            // Units taken from the queue and not yet run, in arrival order.
            let mut waiting: VecDeque<Box<dyn Unit>> = VecDeque::new();
            loop {
                if waiting.is_empty() {
                    match units.recv() {
                        Ok(unit) => waiting.push_back(unit),
                        Err(_) => break,
                    }
                }
                take_arrivals(&units, &mut waiting);
                waiting.retain(|unit| !unit.is_abandoned_by_caller());
                // The relay's leases and records first, in a transaction of
                // their own: they are short, and the delivery lag waits on
                // them (behind a group of 64 changes it grew by tens of ms).
                let (mut urgent, others): (VecDeque<_>, VecDeque<_>) =
                    waiting.drain(..).partition(|unit| unit.is_urgent());
                waiting = others;
                if !urgent.is_empty() {
                    run_group(&pool, &alarm, || urgent.pop_front());
                    continue;
                }
                // Then the others in arrival order, up to a group's worth,
                // in one transaction.
                let mut taken = 0;
                run_group(&pool, &alarm, || {
                    if taken >= GROUP_MAX_UNITS {
                        return None;
                    }
                    taken += 1;
                    waiting.pop_front()
                });
            }
        })?;
        Ok(GroupWriter { queue })
    }

    /// Runs `f` (a whole unit of work: its transaction becomes a savepoint)
    /// in the next group, and answers what it answered once that group
    /// committed. An `urgent` unit (the relay's lease and record of a
    /// batch) goes before the changes waiting with it, in a group of
    /// urgent units only.
    pub(crate) async fn write<T, E>(
        &self,
        urgent: bool,
        f: impl FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let unit = Queued { f, urgent, call: crate::call::current(), answer };
        if self.queue.send(Box::new(unit)).is_err() {
            return Err(E::from(DbError::Unavailable("the database writer has stopped".into())));
        }
        answered.await.unwrap_or_else(|_| Err(E::from(DbError::Unavailable("the database writer has stopped".into()))))
    }
}

/// Moves the units queued meanwhile to the back of `waiting`.
fn take_arrivals(units: &mpsc::Receiver<Box<dyn Unit>>, waiting: &mut VecDeque<Box<dyn Unit>>) {
    while let Ok(unit) = units.try_recv() {
        waiting.push_back(unit);
    }
}

/// Runs the units `next` hands out, until it hands out none, in one
/// transaction, and settles each once its COMMIT is known.
fn run_group(pool: &r2d2::Pool<Manager>, alarm: &StorageAlarm, mut next: impl FnMut() -> Option<Box<dyn Unit>>) {
    fn abandon_all(next: &mut impl FnMut() -> Option<Box<dyn Unit>>, error: DbError) {
        while let Some(unit) = next() {
            unit.abandon(&error);
        }
    }
    let mut conn = match check_out(pool, alarm) {
        Ok(conn) => conn,
        Err(error) => return abandon_all(&mut next, error),
    };
    alarm::watching(alarm, || {
        let conn: &mut DbConn = &mut conn;
        // Outside any transaction, so the group's own BEGIN IMMEDIATE.
        if let Err(e) = begin(conn) {
            return abandon_all(&mut next, noted(DbError::Query(e)));
        }
        let mut ran: Vec<Box<dyn Settle>> = Vec::new();
        while let Some(unit) = next() {
            ran.push(unit.run(conn));
        }
        // Every unit closes the savepoint it opened, even one that failed;
        // one that panicked may not have, and committing would then only
        // release that savepoint: the whole group is rolled back instead.
        if depth(conn) != Some(1) {
            while depth(conn).is_some() {
                if <DbConn as Connection>::TransactionManager::rollback_transaction(conn).is_err() {
                    break;
                }
            }
            let error = DbError::Unavailable("a database write failed unexpectedly: retry the request".into());
            alarm::note_error();
            return ran.into_iter().for_each(|unit| unit.settle(Err(&error)));
        }
        match <DbConn as Connection>::TransactionManager::commit_transaction(conn) {
            Ok(()) => ran.into_iter().for_each(|unit| unit.settle(Ok(()))),
            Err(e) => {
                let error = noted(DbError::from(e));
                let _ = <DbConn as Connection>::TransactionManager::rollback_transaction(conn);
                ran.into_iter().for_each(|unit| unit.settle(Err(&error)));
            }
        }
    });
}

/// The open transaction's depth (1: the group's own; more: savepoints);
/// `None` outside a transaction or when diesel lost track of it.
fn depth(conn: &mut DbConn) -> Option<u32> {
    <DbConn as Connection>::TransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()
        .ok()
        .flatten()
        .map(std::num::NonZeroU32::get)
}

#[cfg(test)]
mod tests {
    use crate::db::{Database, DbError};
    use crate::migrations::{Migrations, PlatformMigration};
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Integer};
    use std::pin::Pin;
    use std::time::Duration;

    static MIGRATIONS: Migrations =
        Migrations::platform_only(&[(PlatformMigration::Heartbeat, "2026-11-29-000001_heartbeat")]);

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    type Pending<T> = Pin<Box<dyn std::future::Future<Output = Result<T, DbError>> + Send>>;

    /// A database in `dir` with a table of changes.
    async fn database_with_changes(dir: &tempfile::TempDir) -> Database {
        let url = crate::config::DatabaseUrl::Sqlite(dir.path().join("group.sqlite3"));
        let db = Database::open(&url, &MIGRATIONS).await.expect("database");
        db.write(|conn| {
            diesel::sql_query("CREATE TABLE changes (id INTEGER PRIMARY KEY)").execute(conn)?;
            Ok::<_, DbError>(())
        })
        .await
        .expect("table");
        db
    }

    /// A write that holds the writer until it is let go.
    struct HeldWriter {
        release: std::sync::mpsc::Sender<()>,
        holder: tokio::task::JoinHandle<Result<(), DbError>>,
    }

    impl HeldWriter {
        async fn hold(db: &Database) -> Self {
            let (release, released) = std::sync::mpsc::channel::<()>();
            let db = db.clone();
            let holder = tokio::spawn(async move {
                db.write(move |_conn| {
                    released.recv_timeout(Duration::from_secs(10)).ok();
                    Ok::<_, DbError>(())
                })
                .await
            });
            tokio::time::sleep(Duration::from_millis(100)).await;
            HeldWriter { release, holder }
        }

        async fn let_go(self) {
            self.release.send(()).expect("release");
            self.holder.await.expect("holder task").expect("holder write");
        }
    }

    /// Inserts of `ids` as writes of their own; the one of `failing` fails
    /// after its insert.
    fn inserts(db: &Database, ids: std::ops::RangeInclusive<i32>, failing: Option<i32>) -> Vec<Pending<()>> {
        ids.map(|id| {
            let db = db.clone();
            Box::pin(async move {
                db.write(move |conn| {
                    diesel::sql_query("INSERT INTO changes (id) VALUES (?)").bind::<Integer, _>(id).execute(conn)?;
                    if Some(id) == failing { Err(DbError::Unavailable("refused after writing".into())) } else { Ok(()) }
                })
                .await
            }) as Pending<()>
        })
        .collect()
    }

    /// Polls each write once, which queues it, in this order.
    async fn queue<T>(writes: &mut [Pending<T>]) {
        for write in writes {
            tokio::select! {
                biased;
                _ = write.as_mut() => panic!("a write answered while the writer was held"),
                () = std::future::ready(()) => {}
            }
        }
    }

    async fn answers<T>(writes: Vec<Pending<T>>) -> Vec<Result<T, DbError>> {
        let mut answers = Vec::new();
        for write in writes {
            answers.push(write.await);
        }
        answers
    }

    async fn count(db: &Database, sql: &'static str) -> i64 {
        db.read(move |conn| Ok::<_, DbError>(diesel::sql_query(sql).get_result::<Count>(conn)?.n)).await.expect("count")
    }

    /// Issue 18: writes that wait together commit together. While one write
    /// holds the writer, ten more queue; they run as one transaction, each
    /// in its own savepoint: one that fails loses only its own row, the
    /// other nine commit, and the WAL gains the frames of one commit, not
    /// of nine (a commit per write, as before, writes the table's page
    /// once per commit).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_waiting_together_commit_in_one_transaction_and_a_failed_one_loses_only_its_own_changes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = database_with_changes(&dir).await;
        db.read(|conn| diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").execute(conn).map_err(DbError::from))
            .await
            .expect("emptied WAL");
        let wal_size = || std::fs::metadata(dir.path().join("group.sqlite3-wal")).map(|m| m.len()).unwrap_or(0);
        assert_eq!(wal_size(), 0, "the WAL starts empty");

        let held = HeldWriter::hold(&db).await;
        let mut writes = inserts(&db, 1..=10, Some(5));
        queue(&mut writes).await;
        held.let_go().await;
        let answered: Vec<bool> = answers(writes).await.iter().map(Result::is_ok).collect();
        assert_eq!(answered, (1..=10).map(|id| id != 5).collect::<Vec<_>>(), "each write has its own answer");

        let rows = count(&db, "SELECT COUNT(*) AS n FROM changes").await;
        let present5 = count(&db, "SELECT COUNT(*) AS n FROM changes WHERE id = 5").await;
        assert_eq!((rows, present5), (9, 0), "the failed write's row is rolled back, the others committed");
        // A WAL frame is a 24-byte header and a 4,096-byte page, after the
        // file's 32-byte header: nine commits of the table's one page write
        // nine frames (37 KB), one commit one frame.
        let frames = (wal_size() - 32) / (24 + 4096);
        assert!(frames <= 2, "nine committed writes wrote {frames} WAL frames: they did not share a commit");
    }

    /// The relay's lease and record (`write_statement`) go before changes
    /// that were waiting with them: behind a held writer, five inserts
    /// queue and then a lease; the lease runs first and sees none of the
    /// five rows (in arrival order it would see all five).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_relays_bookkeeping_goes_before_the_changes_waiting_with_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = database_with_changes(&dir).await;
        let held = HeldWriter::hold(&db).await;
        let mut writes = inserts(&db, 1..=5, None);
        queue(&mut writes).await;
        let lease: Pending<i64> = Box::pin({
            let db = db.clone();
            async move {
                db.write_statement(|conn| {
                    Ok::<_, DbError>(
                        diesel::sql_query("SELECT COUNT(*) AS n FROM changes").get_result::<Count>(conn)?.n,
                    )
                })
                .await
            }
        });
        let mut lease = [lease];
        queue(&mut lease).await;
        held.let_go().await;
        let [lease] = lease;
        let seen = lease.await.expect("lease");
        assert!(answers(writes).await.iter().all(Result::is_ok), "the changes are written after it");
        assert_eq!(seen, 0, "the lease ran after the changes queued before it");
    }
}
