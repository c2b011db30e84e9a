//! What the platform's integration tests share: a fresh PostgreSQL database
//! on the test server, dropped with its guard.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use steplab_platform::config::DatabaseUrl;

/// A fresh PostgreSQL database on the test server, dropped (WITH FORCE) when
/// this is, even by a test that failed.
pub struct FreshPostgres {
    pub admin_url: String,
    pub name: String,
}

impl FreshPostgres {
    /// Creates `steplab_<prefix>_<unique>`; `None` (said loudly) when no
    /// server answers and none is required (`STEPLAB_REQUIRE_POSTGRES=1`).
    pub fn create(prefix: &str) -> Option<(FreshPostgres, DatabaseUrl)> {
        let admin_url = std::env::var("STEPLAB_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut conn = match PgConnection::establish(&admin_url) {
            Ok(conn) => conn,
            Err(e) if std::env::var("STEPLAB_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => {
                panic!("PostgreSQL is required (STEPLAB_REQUIRE_POSTGRES=1): {e}")
            }
            Err(e) => {
                eprintln!(
                    "SKIPPED: no PostgreSQL at {admin_url} ({e}); set STEPLAB_REQUIRE_POSTGRES=1 to fail instead"
                );
                return None;
            }
        };
        let name = format!("steplab_{prefix}_{}", unique());
        diesel::sql_query(format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).unwrap();
        let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base);
        let url = DatabaseUrl::Postgres(format!("{base}/{name}"));
        Some((FreshPostgres { admin_url, name }, url))
    }

    /// A connection to the server's admin database.
    #[allow(dead_code)] // each test file compiles this module; not all ask for it
    pub fn admin(&self) -> PgConnection {
        PgConnection::establish(&self.admin_url).unwrap()
    }
}

impl Drop for FreshPostgres {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.admin_url) {
            let _ =
                diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)).execute(&mut conn);
        }
    }
}

/// A name part unique to this process and call.
fn unique() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{}_{nanos}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
}
