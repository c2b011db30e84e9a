//! The payments service: milestone windows (F1), engagement, accrual
//! suspended during deferrals (D4, F3), ended by withdrawals and reopened by
//! reinstatements (W5, F4, W9), stopped outside covered areas (S2) and for
//! pilot mentors (M4), and statements in integer pence per delivery partner
//! and window (F5, F6). `domain` holds the rules in plain Rust (schedules,
//! money, the pure accrual engine, command effects, roles); `store` the
//! tables; `service` the use cases; `convert` the wire types; `grpc` the
//! thin adapter.

pub mod convert;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod service;
pub mod store;

use domain::schedule::ScheduleBook;
use std::future::Future;
use steplab_platform::config::{Config, ServiceName};
use steplab_platform::db::{Database, Migrations};
use steplab_platform::observability::{self, Observed};
use steplab_platform::server::{self, Hosted};
use steplab_proto::steplab::payments::v1::payments_service_server::{PaymentsServiceServer, SERVICE_NAME};
use tokio::net::TcpListener;

pub static MIGRATIONS: Migrations = Migrations {
    sqlite: diesel_migrations::embed_migrations!("migrations/sqlite"),
    postgres: diesel_migrations::embed_migrations!("migrations/postgres"),
};

/// Loads the schedules and opens the database (running migrations and
/// bringing stored outcomes up to date with the schedules), then serves on
/// `listener` until `shutdown` completes and in-flight calls have drained.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    // First, before touching the database: a malformed schedules file fails
    // start-up with the file and the place in it.
    let book = ScheduleBook::load(config.schedules_file.as_deref())?;
    let db = Database::open(&config.payments.database, &MIGRATIONS).await?;
    let verifier = steplab_platform::auth::verifier(&config)?;
    let _observing = observability::start(config.metrics_listen, ServiceName::Payments, &db)?;
    let payments = service::Payments::new(db, config.clock(), book);
    payments.prepare().await?;
    let svc = PaymentsServiceServer::with_interceptor(grpc::PaymentsGrpc::new(payments), verifier.interceptor());
    // Metrics and request ids for the business service only, not health or reflection.
    let svc = Observed::new(ServiceName::Payments, svc);
    let hosted = Hosted { name: SERVICE_NAME, routes: tonic::service::Routes::new(svc) };
    server::run(listener, hosted, shutdown, config.drain_timeout).await
}
