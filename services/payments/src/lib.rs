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
use steplab_platform::limits::Limited;
use steplab_platform::observability::{self, Observed};
use steplab_platform::server::{self, Hosted};
use steplab_proto::steplab::payments::v1::payments_service_server::{PaymentsServiceServer, SERVICE_NAME};
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;

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
    let readiness = steplab_platform::readiness::Readiness::new(&db, config.readiness_interval);
    let verifier = steplab_platform::auth::verifier(&config)?;
    let observing = observability::start(&config, ServiceName::Payments, &db)?;
    let payments = service::Payments::new(db.clone(), config.clock(), book);
    payments.prepare().await?;
    let limits = config.limits;
    let svc = PaymentsServiceServer::new(grpc::PaymentsGrpc::new(payments))
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);
    let svc = InterceptedService::new(svc, limits.rate_limited(verifier.interceptor()));
    // Metrics and request ids for the business service only, not health or reflection.
    // Shed calls past the global cap are still counted by `Observed`.
    // The audit log is in the service's own database.
    let svc = Observed::new(&observing, Limited::new(&limits, svc));
    let tls = steplab_platform::tls::server_config(&config.tls)?;
    let hosted = Hosted { name: SERVICE_NAME, routes: tonic::service::Routes::new(svc), limits, tls, readiness };
    let served = server::run(listener, hosted, shutdown, config.drain_timeout).await;
    observing.stop().await;
    served
}
