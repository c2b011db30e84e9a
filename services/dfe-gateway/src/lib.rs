//! The DfE gateway (X1-X9): the one component that talks to the DfE's Lead
//! Provider API. It stores what the participant service and payments decide
//! (TrackParticipant, ReportStatusChange, DeclareMilestone, VoidMilestone),
//! maps it to the DfE's words (`domain::mapping`), delivers the calls from
//! its own outbox in order per participant at a bounded rate (`delivery`),
//! tells payments the DfE's declaration ids and states through the platform
//! relay, and answers the operator's questions (ListDfeCalls, RetryDfeCall,
//! ListUnreportable, Reconcile).
//!
//! Without `STEPLAB_DFE_API_URL` the DfE sync is off (X9): commands are still
//! stored and wait; start-up says so once.

pub mod convert;
pub mod delivery;
pub mod dfe;
pub mod domain;
pub mod grpc;
pub mod service;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use steplab_platform::Clock;
use steplab_platform::auth::ServiceTokens;
use steplab_platform::config::{DfeGatewayConfig, ServiceName};
use steplab_platform::db::Migrations;
use steplab_platform::outbox::{Relay, RelaySettings, TokenSource};
use steplab_platform::startup::Foundation;
use steplab_proto::steplab::dfe::v1::dfe_gateway_service_server::{DfeGatewayServiceServer, SERVICE_NAME};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

/// No platform steps: the gateway's first migration created the platform's
/// tables itself, already in their current form.
pub static MIGRATIONS: Migrations = Migrations::new(&[steplab_platform::migration!("2026-11-30-300001_gateway")], &[]);

/// Opens the database (running migrations), starts the delivery worker (when
/// the DfE is configured) and the relay to payments, then serves on
/// `listener` until `shutdown` completes and in-flight calls have drained.
pub async fn run(
    config: DfeGatewayConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let serving = &config.serving;
    let foundation = Foundation::open(serving, ServiceName::DfeGateway, &MIGRATIONS).await?;
    let db = foundation.db.clone();
    let tokens: Arc<dyn TokenSource> = Arc::new(ServiceTokens::from_config(&serving.auth)?);
    let client_tls = steplab_platform::tls::ClientTls::from_files(&serving.tls)?;
    let client = dfe::DfeClient::from_settings(&config.dfe)?;
    match &config.dfe.api_url {
        Some(url) => {
            tracing::info!(dfe_api_url = %url, rate_limit_per_5_min = config.dfe.rate_limit_per_5_min, "the DfE sync is on")
        }
        None => tracing::warn!(
            "the DfE sync is off (STEPLAB_DFE_API_URL is not set): status changes and declarations are stored and wait until it is configured"
        ),
    }
    let (wake_delivery, wake_relay) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let gateway =
        service::Gateway::new(db.clone(), Clock::from_settings(serving.clock), wake_delivery.clone(), client.clone());

    let (stop_workers, workers_stopped) = watch::channel(false);
    let relay = Relay::new(
        db.clone(),
        &[(delivery::PAYMENTS, &config.payments_url)],
        tokens,
        wake_relay.clone(),
        RelaySettings::from_retry(&config.relay, client_tls),
    )?;
    let relay_task = tokio::spawn(relay.run(workers_stopped.clone()));
    let delivery_task = client.map(|client| {
        let worker = delivery::Delivery::new(
            db.clone(),
            client,
            wake_delivery,
            wake_relay,
            delivery::DeliverySettings {
                poll_interval: Duration::from_secs(1),
                lease: Duration::from_secs(60),
                initial_backoff: Duration::from_millis(200),
                max_backoff: config.relay.max_backoff,
                batch: 16,
                rate_limit_per_5_min: config.dfe.rate_limit_per_5_min,
            },
        );
        tokio::spawn(worker.run(workers_stopped))
    });

    let limits = serving.limits;
    let svc = DfeGatewayServiceServer::new(grpc::GatewayGrpc::new(gateway))
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);
    let routes = tonic::service::Routes::new(foundation.stacked(svc));
    let served = foundation.serve(SERVICE_NAME, routes, listener, shutdown).await;
    let _ = stop_workers.send(true);
    if relay_task.await.is_err() {
        tracing::error!("the outbox relay task failed");
    }
    if let Some(task) = delivery_task
        && task.await.is_err()
    {
        tracing::error!("the DfE delivery task failed");
    }
    served
}
