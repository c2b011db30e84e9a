//! What the services' database tests share: a seeded generator, so a
//! random sequence is the same every run, and a scratch PostgreSQL
//! database of their own.
//! Test support only: a database that cannot be made fails the test, so it
//! panics as a test would.
#![allow(clippy::panic)]

use diesel::{Connection, PgConnection, RunQueryDsl};
use steplab_platform::config::DatabaseUrl;

/// A tiny deterministic generator (xorshift64), so a test's sequence is
/// the same every run. The seed must not be zero.
#[derive(Debug, Clone)]
pub struct XorShift(pub u64);

impl XorShift {
    /// The next number below `bound` (at least 1).
    pub fn next(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound.max(1)
    }
}

/// A fresh PostgreSQL database for one test, dropped (its connections
/// ended) when this is dropped.
#[derive(Debug)]
pub struct ScratchPostgres {
    pub url: DatabaseUrl,
    admin: String,
    name: String,
}

impl ScratchPostgres {
    /// A fresh database named after `label` and this process, on the server
    /// of `STEPLAB_TEST_POSTGRES_URL` (default
    /// `postgres://postgres@127.0.0.1:5432/postgres`, as the README says).
    /// A server that cannot be used: `None`, with a loud `*** SKIPPED` line
    /// past the harness's capture, or a panic when
    /// `STEPLAB_REQUIRE_POSTGRES=1` (CI).
    pub fn create(label: &str) -> Option<ScratchPostgres> {
        let admin = std::env::var("STEPLAB_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let name = format!("steplab_{label}_{}", std::process::id());
        let created = PgConnection::establish(&admin).map_err(|e| e.to_string()).and_then(|mut conn| {
            diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\""))
                .execute(&mut conn)
                .and_then(|_| diesel::sql_query(format!("CREATE DATABASE \"{name}\"")).execute(&mut conn))
                .map_err(|e| e.to_string())
        });
        if let Err(e) = created {
            if std::env::var("STEPLAB_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("STEPLAB_REQUIRE_POSTGRES=1 but PostgreSQL at {admin} is not usable: {e}");
            }
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED ({label}): PostgreSQL at {admin} is not usable ({e}); set STEPLAB_REQUIRE_POSTGRES=1 to make this a failure ***\n"
            );
            return None;
        }
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
        Some(ScratchPostgres { url: DatabaseUrl::Postgres(format!("{base}/{name}")), admin: admin.clone(), name })
    }
}

impl Drop for ScratchPostgres {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.admin) {
            let _ =
                diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)).execute(&mut conn);
        }
    }
}

/// Every SQL statement the process's diesel connections start while
/// [`statements_of`] runs, for tests that hold a use case to a statement
/// budget. Process-wide (diesel's default instrumentation), so one such
/// test per test binary.
pub mod counted {
    use diesel::connection::{Instrumentation, InstrumentationEvent, set_default_instrumentation};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    static COUNTING: AtomicBool = AtomicBool::new(false);
    static STATEMENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

    struct Counter;

    impl Instrumentation for Counter {
        fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
            if let InstrumentationEvent::StartQuery { query, .. } = event
                && COUNTING.load(Ordering::SeqCst)
            {
                let query = query.to_string();
                // A new connection's set-up (SQLite's PRAGMAs, PostgreSQL's
                // session SETs) is the pool's, not the use case's: r2d2
                // opens one in the background whenever its idle connections
                // fall below the minimum, and when that landed inside a
                // window two equal use cases counted differently (seen in
                // CI: 12 against 10 and 16 against 12).
                if !(query.starts_with("PRAGMA") || query.starts_with("SET ")) {
                    STATEMENTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(query);
                }
            }
        }
    }

    /// Installs the counter for every connection opened from now on: call
    /// it first, before any database is opened.
    pub fn install() {
        // A second call in one process finds it installed, which is as good.
        let _ = set_default_instrumentation(|| Some(Box::new(Counter)));
    }

    /// The statements `work` runs on the process's databases.
    pub async fn statements_of<T>(work: impl Future<Output = T>) -> (T, Vec<String>) {
        let log = || STATEMENTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        log().clear();
        COUNTING.store(true, Ordering::SeqCst);
        let answer = work.await;
        COUNTING.store(false, Ordering::SeqCst);
        (answer, std::mem::take(&mut *log()))
    }
}
