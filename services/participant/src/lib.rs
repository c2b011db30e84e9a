//! The participant service: the system of record for delivery partners,
//! schools, ECTs, mentors and induction coordinators, and for every change to
//! their training status. `domain` holds the rules in plain Rust; `store` the
//! tables; `service` the use cases; `grpc` the thin adapter.

pub mod commands;
pub mod convert;
pub mod domain;
pub mod drift;
pub mod grpc;
pub mod peers;
pub mod service;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use steplab_platform::Clock;
use steplab_platform::auth::ServiceTokens;
use steplab_platform::config::{ParticipantConfig, ServiceName};
use steplab_platform::db::Migrations;
use steplab_platform::migrations::PlatformMigration;
use steplab_platform::outbox::{Admission, Pressure, Relay, RelaySettings, TokenSource};
use steplab_platform::startup::Foundation;
use steplab_proto::steplab::participant::v1::participant_service_server::{ParticipantServiceServer, SERVICE_NAME};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

/// The platform's tables go by the versions this service's own folders gave
/// them when it first created them: deployed databases have those recorded.
/// No idempotency-keys step: its registry migration created idempotency_keys itself.
pub static MIGRATIONS: Migrations = Migrations::new(
    &[
        steplab_platform::migration!("2026-11-28-000001_registry"),
        steplab_platform::migration!("2026-11-28-000002_lifecycle"),
        steplab_platform::migration!("2026-11-28-000003_request_id"),
        steplab_platform::migration!("2026-11-29-000002_relay_group_heads"),
        steplab_platform::migration!("2026-11-30-100001_long_deferral"),
        steplab_platform::migration!("2026-11-30-200001_reinstate_with_mentor"),
        steplab_platform::migration!("2026-11-30-300002_dfe_participant_id"),
        steplab_platform::migration!("2026-11-30-400001_feed_position"),
    ],
    &[
        (PlatformMigration::AuditLog, "2026-11-28-000004_audit"),
        (PlatformMigration::Heartbeat, "2026-11-29-000001_heartbeat"),
        (PlatformMigration::AuditRetention, "2026-11-29-140100_audit_retention"),
        (PlatformMigration::IdempotencyKeyForm, "2026-11-29-204801_idempotency_key_form"),
    ],
);

/// Opens the database (running migrations), then serves on `listener` until
/// `shutdown` completes and in-flight calls have drained.
pub async fn run(
    config: ParticipantConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let serving = &config.serving;
    let foundation = Foundation::open(serving, ServiceName::Participant, &MIGRATIONS).await?;
    let db = foundation.db.clone();
    let tokens: Arc<dyn TokenSource> = Arc::new(ServiceTokens::from_config(&serving.auth)?);
    let wake_relay = Arc::new(Notify::new());
    // Read and checked now, so a bad TLS file fails start-up, not a delivery.
    let client_tls = steplab_platform::tls::ClientTls::from_files(&serving.tls)?;
    let peers =
        peers::Peers::new(&config.targets.content_url, &config.targets.payments_url, &client_tls, tokens.clone())?;
    // One pressure: the relay reports into it, the registry's admission
    // check reads it.
    let admission = Admission::new(Pressure::new(), config.backpressure, ServiceName::Participant.as_str());
    let registry = service::Registry::new(
        db.clone(),
        Clock::from_settings(serving.clock),
        wake_relay.clone(),
        Arc::new(Notify::new()),
    )
    .with_peers(peers)
    .with_admission(admission.clone());

    // The relay runs beside the server and stops with it; commands it has
    // not delivered stay in the outbox for the next start.
    let relay = Relay::new(
        db,
        &[
            (commands::CONTENT, &config.targets.content_url),
            (commands::PAYMENTS, &config.targets.payments_url),
            (commands::DFE_GATEWAY, &config.targets.dfe_gateway_url),
        ],
        tokens,
        wake_relay,
        RelaySettings {
            service: ServiceName::Participant.as_str(),
            pressure: admission.pressure().clone(),
            ..RelaySettings::from_retry(&config.relay, client_tls)
        },
    )?;
    let (stop_relay, relay_stopped) = watch::channel(false);
    let returns_task = tokio::spawn(record_due_returns(registry.clone(), relay_stopped.clone()));
    let relay_task = tokio::spawn(relay.run(relay_stopped));

    let limits = serving.limits;
    let svc = ParticipantServiceServer::new(grpc::ParticipantGrpc::new(registry))
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);
    let routes = tonic::service::Routes::new(foundation.stacked(svc));
    let served = foundation.serve(SERVICE_NAME, routes, listener, shutdown).await;
    let _ = stop_relay.send(true);
    if relay_task.await.is_err() {
        tracing::error!("the outbox relay task failed");
    }
    if returns_task.await.is_err() {
        tracing::error!("the due-returns sweep task failed");
    }
    served
}

/// How often returns that happen by themselves (D7) are looked for after the
/// sweep at start-up: "today" moves once a day, so a few minutes' delay is
/// well within the day the return is dated.
const DUE_RETURNS_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// D7: the catch-up sweep, at start-up and then every [`DUE_RETURNS_EVERY`],
/// until `stopped`.
async fn record_due_returns(registry: service::Registry, mut stopped: watch::Receiver<bool>) {
    loop {
        match registry.record_due_returns().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(returns = n, "returns that happened by themselves recorded"),
            Err(e) => tracing::warn!(error = %e, "the due-returns sweep failed; it runs again later"),
        }
        tokio::select! {
            _ = tokio::time::sleep(DUE_RETURNS_EVERY) => {}
            _ = stopped.changed() => return,
        }
    }
}
