//! The content-release service: what Steplab releases to whom and when (R1-R4).
//! It holds release during a pause or deferral, stops it on withdrawal and
//! resumes it on reinstatement (P5, P6, D4, D5, D8, W5, W9), records where a
//! participant resumes and which clinics and conferences they attended (R3,
//! D11), and serves the release feed Steplab syncs from. `domain` holds the
//! curriculum and the release engine in plain Rust; `store` the tables;
//! `service` the use cases; `grpc` the thin adapter.

pub mod convert;
pub mod domain;
pub mod grpc;
pub mod service;
pub mod store;

use domain::Curriculum;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use steplab_platform::Clock;
use steplab_platform::config::{ContentReleaseConfig, ServiceName};
use steplab_platform::db::Migrations;
use steplab_platform::migrations::PlatformMigration;
use steplab_platform::startup::Foundation;
use steplab_proto::steplab::content::v1::content_release_service_server::{ContentReleaseServiceServer, SERVICE_NAME};
use tokio::net::TcpListener;

/// The platform's tables go by the versions this service's own folders gave
/// them when it first created them: deployed databases have those recorded.
pub static MIGRATIONS: Migrations = Migrations::new(
    &[steplab_platform::migration!("2026-11-28-000002_release")],
    &[
        (PlatformMigration::IdempotencyKeys, "2026-11-28-000001_init"),
        (PlatformMigration::AuditLog, "2026-11-28-000003_audit"),
        (PlatformMigration::Heartbeat, "2026-11-29-000001_heartbeat"),
        (PlatformMigration::AuditRetention, "2026-11-29-140100_audit_retention"),
        (PlatformMigration::IdempotencyKeyForm, "2026-11-29-204801_idempotency_key_form"),
    ],
);

/// The curriculum a deployment runs with: its own file
/// (`STEPLAB_CURRICULUM_FILE`) or the built-in default. Any fault is an
/// error naming the file and where in it.
pub fn load_curriculum(file: Option<&Path>) -> anyhow::Result<Curriculum> {
    let curriculum = match file {
        None => Curriculum::built_in()?,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("STEPLAB_CURRICULUM_FILE: cannot read {}: {e}", path.display()))?;
            Curriculum::parse(&path.display().to_string(), &text)
                .map_err(|e| anyhow::anyhow!("STEPLAB_CURRICULUM_FILE: {e}"))?
        }
    };
    Ok(curriculum)
}

/// Loads the curriculum, opens the database (running migrations and, when
/// the curriculum changed, recomputing the release feed), then serves on
/// `listener` until `shutdown` completes and in-flight calls have drained.
pub async fn run(
    config: ContentReleaseConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let serving = &config.serving;
    // Before the database: a bad curriculum file fails start-up at once.
    let curriculum = Arc::new(load_curriculum(config.curriculum_file.as_deref())?);
    let foundation = Foundation::open(serving, ServiceName::ContentRelease, &MIGRATIONS).await?;
    let db = foundation.db.clone();
    let service = service::ContentRelease::new(db.clone(), Clock::from_settings(serving.clock), curriculum);
    service
        .reconcile_curriculum()
        .await
        .map_err(|e| anyhow::anyhow!("cannot recompute the release feed for the curriculum: {e}"))?;
    let limits = serving.limits;
    let svc = ContentReleaseServiceServer::new(grpc::ContentReleaseGrpc::new(service))
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);
    let routes = tonic::service::Routes::new(foundation.stacked(svc));
    foundation.serve(SERVICE_NAME, routes, listener, shutdown).await
}
