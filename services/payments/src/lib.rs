//! The payments service: milestone windows, engagement, accrual suspended
//! during deferral, withdrawal rules, and statements in integer pence. This
//! crate owns its database and migrations and serves health and reflection;
//! its RPCs answer UNIMPLEMENTED until the payments issue builds them.

pub mod grpc;

use std::future::Future;
use steplab_platform::config::Config;
use steplab_platform::db::{Database, Migrations};
use steplab_platform::server::{self, Hosted};
use steplab_proto::steplab::payments::v1::payments_service_server::{
    PaymentsServiceServer, SERVICE_NAME,
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
    // Opened now so the service owns its schema from the first start, and a
    // bad database URL fails start-up rather than the first request.
    let _db = Database::open(&config.payments.database, &MIGRATIONS).await?;
    let verifier = steplab_platform::auth::verifier(&config)?;
    let svc = PaymentsServiceServer::with_interceptor(grpc::PaymentsGrpc, verifier.interceptor());
    let hosted = Hosted {
        name: SERVICE_NAME,
        routes: tonic::service::Routes::new(svc),
    };
    server::run(listener, hosted, shutdown, config.drain_timeout).await
}
