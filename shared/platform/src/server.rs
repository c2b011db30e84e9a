//! Every service starts the same way: `run(listener, business routes,
//! shutdown)`. Beside the business service it serves `grpc.health.v1.Health`
//! and reflection v1 and v1alpha (grpcurl 1.8.6 speaks only v1alpha), both
//! open to anyone. On shutdown health turns NOT_SERVING, the listener closes,
//! and in-flight calls get a bounded time to finish.
//!
//! Transport limits (see [`crate::limits::Limits`] and [`crate::connections`]):
//! each connection advertises `SETTINGS_MAX_CONCURRENT_STREAMS`, so a client
//! with more calls than that queues them on its side (HTTP/2 flow control)
//! instead of having them refused; nothing is shed per connection, only at
//! the service-wide cap ([`crate::limits::Limited`]), which never applies to
//! health or reflection. Connections are capped per listener, must finish
//! their handshake in time, are pinged (HTTP/2 keepalive) and are closed when
//! idle.

use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic_health::ServingStatus;

/// The business service a server hosts.
pub struct Hosted {
    /// Fully qualified gRPC service name, e.g. `steplab.participant.v1.ParticipantService`.
    pub name: &'static str,
    pub routes: Routes,
    /// The transport limits (streams per connection, connections, timeouts,
    /// keepalive) come from here; the other limits wrap `routes` (see
    /// [`crate::limits`]).
    pub limits: crate::limits::Limits,
    /// TLS for the whole listener (business service, health and reflection),
    /// from [`crate::tls::server_config`]; `None` serves plaintext.
    pub tls: Option<tonic::transport::ServerTlsConfig>,
    /// Keeps health true to the database (see [`crate::readiness`]).
    pub readiness: crate::readiness::Readiness,
}

/// Serves until `shutdown` completes, then drains for at most `drain`.
pub async fn run(
    listener: TcpListener,
    hosted: Hosted,
    shutdown: impl Future<Output = ()> + Send,
    drain: Duration,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status(hosted.name, ServingStatus::Serving).await;
    let readiness = hosted.readiness.start(health.clone(), hosted.name);

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(steplab_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // So grpcurl can print google.rpc.BadRequest and ErrorInfo details.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(hosted.name)
            .with_service_name("grpc.health.v1.Health")
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .with_service_name("grpc.reflection.v1alpha.ServerReflection")
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let (drain_started_tx, drain_started_rx) = tokio::sync::oneshot::channel::<()>();
    let name = hosted.name;
    let signal = {
        let readiness = &readiness;
        async move {
            shutdown.await;
            tracing::info!(service = name, %addr, "shutting down: health NOT_SERVING, draining in-flight calls");
            // Also stops the readiness probe, so it never turns SERVING again.
            readiness.drain().await;
            let _ = drain_started_tx.send(());
        }
    };

    let tls = hosted.tls.is_some();
    let limits = hosted.limits;
    tracing::info!(service = name, %addr, tls, "serving");
    // With TLS every accepted connection goes through the handshake first
    // (tonic applies the acceptor to the incoming stream, its handshakes
    // bounded by the handshake timeout); one that fails it is dropped
    // without touching the services.
    let builder = match hosted.tls {
        Some(config) => Server::builder()
            .tls_config(config.timeout(limits.handshake_timeout))
            .map_err(|e| anyhow::anyhow!("TLS: {}", crate::tls::error_chain(&e)))?,
        None => Server::builder(),
    };
    let streams = u32::try_from(limits.max_concurrent_per_connection.max(1)).unwrap_or(u32::MAX);
    let server = builder
        .max_concurrent_streams(streams)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .layer(crate::connections::TrackCalls)
        .add_routes(hosted.routes)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(crate::connections::accept(listener, &limits, tls, name), signal);
    tokio::pin!(server);
    let drain_bound = async move {
        if drain_started_rx.await.is_ok() {
            tokio::time::sleep(drain).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = &mut server => result?,
        () = drain_bound => tracing::warn!(service = name, ?drain, "drain bound reached; closing remaining calls"),
    }
    tracing::info!(service = name, "stopped");
    Ok(())
}

/// Completes on SIGTERM (Kubernetes) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
