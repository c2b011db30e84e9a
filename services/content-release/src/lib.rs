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
use steplab_platform::config::{Config, ServiceName};
use steplab_platform::db::{Database, Migrations};
use steplab_platform::observability;
use steplab_platform::server::{self, Hosted};
use steplab_platform::stack;
use steplab_proto::steplab::content::v1::content_release_service_server::{ContentReleaseServiceServer, SERVICE_NAME};
use tokio::net::TcpListener;

pub static MIGRATIONS: Migrations = Migrations {
    sqlite: diesel_migrations::embed_migrations!("migrations/sqlite"),
    postgres: diesel_migrations::embed_migrations!("migrations/postgres"),
};

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
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    // Before the database: a bad curriculum file fails start-up at once.
    let curriculum = Arc::new(load_curriculum(config.curriculum_file.as_deref())?);
    let db = Database::open(&config.content.database, &MIGRATIONS).await?;
    let readiness = steplab_platform::readiness::Readiness::new(&db, config.readiness_interval);
    let verifier = steplab_platform::auth::verifier(&config)?;
    let observing = observability::start(&config, ServiceName::ContentRelease, &db)?;
    let service = service::ContentRelease::new(db.clone(), config.clock(), curriculum);
    service
        .reconcile_curriculum()
        .await
        .map_err(|e| anyhow::anyhow!("cannot recompute the release feed for the curriculum: {e}"))?;
    let limits = config.limits;
    let svc = ContentReleaseServiceServer::new(grpc::ContentReleaseGrpc::new(service))
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);
    // The platform's one layer stack; health and reflection stay outside it.
    let svc = stack::business_service(&observing, &limits, &verifier, svc);
    let tls = steplab_platform::tls::server_config(&config.tls)?;
    let hosted = Hosted { name: SERVICE_NAME, routes: tonic::service::Routes::new(svc), limits, tls, readiness };
    let served = server::run(listener, hosted, shutdown, config.drain_timeout).await;
    observing.stop().await;
    served
}
