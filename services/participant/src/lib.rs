//! The participant service: the system of record for delivery partners,
//! schools, ECTs, mentors and induction coordinators, and for every change to
//! their training status. `domain` holds the rules in plain Rust; `store` the
//! tables; `service` the use cases; `grpc` the thin adapter.

pub mod convert;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod service;
pub mod store;

use std::future::Future;
use steplab_platform::config::Config;
use steplab_platform::db::{Database, Migrations};
use steplab_platform::server::{self, Hosted};
use steplab_proto::steplab::participant::v1::participant_service_server::{
    ParticipantServiceServer, SERVICE_NAME,
};
use tokio::net::TcpListener;

pub static MIGRATIONS: Migrations = Migrations {
    sqlite: diesel_migrations::embed_migrations!("migrations/sqlite"),
    postgres: diesel_migrations::embed_migrations!("migrations/postgres"),
};

/// Opens the database (running migrations), then serves on `listener` until
/// `shutdown` completes and in-flight calls have drained.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let db = Database::open(&config.participant.database, &MIGRATIONS).await?;
    let verifier = steplab_platform::auth::verifier(&config)?;
    let registry = service::Registry::new(db, config.clock());
    let svc = ParticipantServiceServer::with_interceptor(
        grpc::ParticipantGrpc::new(registry),
        verifier.interceptor(),
    );
    let hosted = Hosted {
        name: SERVICE_NAME,
        routes: tonic::service::Routes::new(svc),
    };
    server::run(listener, hosted, shutdown, config.drain_timeout).await
}
