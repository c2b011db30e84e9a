//! Readiness that tells the truth: `grpc.health.v1` answers NOT_SERVING for
//! the service's name while the service cannot write to its database, and
//! SERVING again once it can, so Kubernetes (whose readiness probe asks for
//! the service's name) or any balancer sends calls to a replica that can take
//! them. The overall status, "", is liveness: it stays SERVING through a
//! database outage (the liveness probes ask for ""), since restarting a
//! process that cannot reach its database only trades an unready pod for one
//! that cannot start; it turns NOT_SERVING on shutdown only.
//!
//! Two signals turn it:
//! * a probe every `STEPLAB_READINESS_INTERVAL_MS` that makes a real write,
//!   the upsert of the one-row `heartbeat` table (a read would pass on a full
//!   disk), bounded by [`PROBE_TIMEOUT`];
//! * a [`StorageAlarm`] raised by the database layer the moment a business
//!   call (or the relay, or an audit write) meets a [`crate::db::StorageFault`]: disk
//!   full, connection lost, no connection in time. NOT_SERVING then comes at
//!   once, without waiting for the next probe.
//!
//! SERVING comes back only from a probe that succeeded with no fault raised
//! since the previous one, so calls failing on a full disk between two
//! successful heartbeats (which rewrite a page that already exists) keep the
//! service NOT_SERVING instead of flapping.
//!
//! Shutdown wins: once draining, no probe turns the service SERVING again.

pub use crate::db::StorageAlarm;
use crate::db::{Database, DbConn, DbError};
use diesel::RunQueryDsl;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// The longest a probe's write may take before it counts as failed: a
/// database that cannot take a one-row write in this time cannot serve.
/// Longer than the pool's own connection timeout, so a saturated pool is
/// waited for, not mistaken for a dead database.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The one-row write of the probe: portable upsert, SQLite 3.24+ and PostgreSQL.
pub fn heartbeat(conn: &mut DbConn) -> Result<(), DbError> {
    diesel::sql_query(
        "INSERT INTO heartbeat (id, beat_at) VALUES (1, CURRENT_TIMESTAMP) \
         ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at",
    )
    .execute(conn)?;
    Ok(())
}

/// What the server needs to keep its health status true to its database.
#[derive(Debug, Clone)]
pub struct Readiness {
    db: Database,
    interval: Duration,
}

impl Readiness {
    /// `interval`: time between two probe writes (`STEPLAB_READINESS_INTERVAL_MS`).
    pub fn new(db: &Database, interval: Duration) -> Self {
        Self { db: db.clone(), interval: interval.max(Duration::from_millis(1)) }
    }

    /// Starts watching; the returned handle turns health NOT_SERVING for
    /// good when the server starts draining. `health` is expected SERVING.
    pub fn start(self, health: HealthReporter, service: &'static str) -> Watching {
        let status = Arc::new(Mutex::new(Status { draining: false, serving: true }));
        let task = tokio::spawn(watch(self, health.clone(), service, Arc::clone(&status)));
        Watching { health, service, status, task }
    }
}

/// The status last published, and whether shutdown has begun.
#[derive(Debug)]
struct Status {
    draining: bool,
    serving: bool,
}

/// The running readiness task of one server.
#[derive(Debug)]
pub struct Watching {
    health: HealthReporter,
    service: &'static str,
    status: Arc<Mutex<Status>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watching {
    /// Shutdown: NOT_SERVING for "" and the service, never SERVING again
    /// (the status lock orders this after any probe result being published).
    pub async fn drain(&self) {
        let mut status = self.status.lock().await;
        status.draining = true;
        status.serving = false;
        self.task.abort();
        self.health.set_service_status("", ServingStatus::NotServing).await;
        publish(&self.health, self.service, ServingStatus::NotServing).await;
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The service's readiness; "" (liveness) is left to start-up and shutdown.
async fn publish(health: &HealthReporter, service: &'static str, serving: ServingStatus) {
    health.set_service_status(service, serving).await;
}

/// Sets the published status unless draining; logs each change once.
async fn set(health: &HealthReporter, service: &'static str, status: &Mutex<Status>, serving: bool, why: &str) {
    let mut current = status.lock().await;
    if current.draining || current.serving == serving {
        return;
    }
    current.serving = serving;
    if serving {
        tracing::info!(service, "the database takes writes again: health SERVING");
        publish(health, service, ServingStatus::Serving).await;
    } else {
        tracing::error!(service, reason = why, "the database cannot take writes: health NOT_SERVING");
        publish(health, service, ServingStatus::NotServing).await;
    }
}

async fn watch(readiness: Readiness, health: HealthReporter, service: &'static str, status: Arc<Mutex<Status>>) {
    let alarm = readiness.db.storage_alarm();
    let mut seen = alarm.count();
    let mut tick = tokio::time::interval(readiness.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = alarm.woken() => {
                if alarm.count() != seen {
                    set(&health, service, &status, false, "a call met a storage fault").await;
                }
                continue;
            }
        }
        let probe = tokio::time::timeout(PROBE_TIMEOUT, readiness.db.write(heartbeat)).await;
        let raised = alarm.count();
        let faults_since_last_probe = raised != seen;
        seen = raised;
        match probe {
            Ok(Ok(())) if !faults_since_last_probe => set(&health, service, &status, true, "").await,
            Ok(Ok(())) => set(&health, service, &status, false, "calls met storage faults since the last probe").await,
            Ok(Err(e)) => set(&health, service, &status, false, &format!("the heartbeat write failed: {e}")).await,
            Err(_) => {
                let why = format!("the heartbeat write took longer than {PROBE_TIMEOUT:?}");
                set(&health, service, &status, false, &why).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::{Migrations, PlatformMigration};
    use tonic_health::pb::health_server::Health;
    use tonic_health::pb::{HealthCheckRequest, health_check_response};

    // The probe writes only the heartbeat.
    static MIGRATIONS: Migrations =
        Migrations::platform_only(&[(PlatformMigration::Heartbeat, "2026-11-29-000001_heartbeat")]);

    async fn status_of(health: &HealthReporter, service: &str) -> i32 {
        let reader = tonic_health::server::HealthService::from_health_reporter(health.clone());
        let request = tonic::Request::new(HealthCheckRequest { service: service.into() });
        reader.check(request).await.expect("a known service").into_inner().status
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn draining_wins_over_a_probe_that_keeps_succeeding() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = crate::config::DatabaseUrl::Sqlite(dir.path().join("ready.sqlite3"));
        let db = Database::open(&url, &MIGRATIONS).await.expect("database");
        let health = HealthReporter::new();
        health.set_service_status("svc", ServingStatus::Serving).await;
        // A probe every millisecond, each one succeeding.
        let watching = Readiness::new(&db, Duration::from_millis(1)).start(health.clone(), "svc");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(status_of(&health, "svc").await, health_check_response::ServingStatus::Serving as i32);
        watching.drain().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        for service in ["", "svc"] {
            let status = status_of(&health, service).await;
            assert_eq!(status, health_check_response::ServingStatus::NotServing as i32, "{service:?}");
        }
    }
}
