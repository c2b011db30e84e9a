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
pub mod grpc;
pub mod service;
pub mod store;

use domain::schedule::ScheduleBook;
use std::future::Future;
use std::sync::Arc;
use steplab_platform::Clock;
use steplab_platform::auth::ServiceTokens;
use steplab_platform::config::{PaymentsConfig, ServiceName};
use steplab_platform::db::Migrations;
use steplab_platform::migrations::PlatformMigration;
use steplab_platform::outbox::{Admission, Pressure, Relay, RelaySettings, TokenSource};
use steplab_platform::startup::Foundation;
use steplab_proto::steplab::payments::v1::payments_service_server::{PaymentsServiceServer, SERVICE_NAME};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

/// The platform's tables go by the versions this service's own folders gave
/// them when it first created them: deployed databases have those recorded.
pub static MIGRATIONS: Migrations = Migrations::new(
    &[
        steplab_platform::migration!("2026-11-28-000002_accrual"),
        steplab_platform::migration!("2026-11-30-400001_dfe_declarations"),
    ],
    &[
        (PlatformMigration::IdempotencyKeys, "2026-11-28-000001_init"),
        (PlatformMigration::AuditLog, "2026-11-28-000003_audit"),
        (PlatformMigration::Heartbeat, "2026-11-29-000001_heartbeat"),
        (PlatformMigration::AuditRetention, "2026-11-29-140100_audit_retention"),
        (PlatformMigration::IdempotencyKeyForm, "2026-11-29-204801_idempotency_key_form"),
    ],
);

/// Loads the schedules and opens the database (running migrations and
/// bringing stored outcomes up to date with the schedules), then serves on
/// `listener` until `shutdown` completes and in-flight calls have drained.
/// Beside the server an outbox relay delivers the declarations and voids
/// payments decides (X5, X6) to the DfE gateway; it stops with the server,
/// and what it has not delivered stays in the outbox for the next start.
pub async fn run(
    config: PaymentsConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let serving = &config.serving;
    // First, before touching the database: a malformed schedules file fails
    // start-up with the file and the place in it.
    let book = ScheduleBook::load(config.schedules_file.as_deref())?;
    let foundation = Foundation::open(serving, ServiceName::Payments, &MIGRATIONS).await?;
    let db = foundation.db.clone();
    let tokens: Arc<dyn TokenSource> = Arc::new(ServiceTokens::from_config(&serving.auth)?);
    let wake_relay = Arc::new(Notify::new());
    // Read and checked now, so a bad TLS file fails start-up, not a delivery.
    let client_tls = steplab_platform::tls::ClientTls::from_files(&serving.tls)?;
    let admission = Admission::new(Pressure::new(), config.backpressure, ServiceName::Payments.as_str());
    let relay = Relay::new(
        db.clone(),
        &[(service::DFE_GATEWAY, &config.dfe_gateway_url)],
        tokens,
        wake_relay.clone(),
        RelaySettings {
            service: ServiceName::Payments.as_str(),
            pressure: admission.pressure().clone(),
            ..RelaySettings::from_retry(&config.relay, client_tls)
        },
    )?;
    let payments = service::Payments::new(db.clone(), Clock::from_settings(serving.clock), book)
        .with_relay_wake(wake_relay)
        .with_admission(admission);
    // Before the relay starts: the start-up recompute may enqueue
    // declarations, which the relay's first pass then finds.
    payments.prepare().await?;
    let limits = serving.limits;
    let svc = PaymentsServiceServer::new(grpc::PaymentsGrpc::new(payments))
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);
    let routes = tonic::service::Routes::new(foundation.stacked(svc));
    // Spawned last, so no start-up error leaves it running.
    let (stop_relay, relay_stopped) = watch::channel(false);
    let relay_task = tokio::spawn(relay.run(relay_stopped));
    let served = foundation.serve(SERVICE_NAME, routes, listener, shutdown).await;
    let _ = stop_relay.send(true);
    if relay_task.await.is_err() {
        tracing::error!("the outbox relay task failed");
    }
    served
}
