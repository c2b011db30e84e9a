//! The `steplab` command's definition: its subcommands (parsed with clap)
//! and the health check. A library beside `main.rs` so that the manifest test
//! (`tests/tests/manifests.rs`) parses the container commands of the compose
//! file and the Kubernetes manifests with this very parser.

use clap::{Parser, Subcommand};
use std::time::Duration;
use steplab_platform::auth::Role;
use steplab_platform::config::{Config, ServiceName};
use steplab_platform::tls::ClientTls;

#[derive(Debug, Parser)]
#[command(name = "steplab", version, about = "Steplab programme services: participant, content-release and payments")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run all three services in one process (ports 50051-50053 by default).
    Up,
    /// Run one service: participant, content-release or payments.
    Serve {
        #[arg(value_parser = |s: &str| s.parse::<ServiceName>())]
        service: ServiceName,
    },
    /// Print a dev token signed with STEPLAB_JWT_SECRET (else the data dir's secret).
    Token {
        /// induction_coordinator, ecf_lead, dpl, admin or service.
        #[arg(long, value_parser = |s: &str| s.parse::<Role>())]
        role: Role,
        /// The school of an induction coordinator.
        #[arg(long)]
        school: Option<String>,
        /// The delivery partner of an ECF Lead; repeat for each of a DPL's.
        #[arg(long = "delivery-partner")]
        delivery_partners: Vec<String>,
        /// The token's subject (who is calling).
        #[arg(long, default_value = "dev-user")]
        sub: String,
        /// How long the token is valid.
        #[arg(long, default_value_t = 12)]
        ttl_hours: i64,
    },
    /// Ask a server's gRPC health service (grpc.health.v1.Health/Check), e.g.
    /// as a compose healthcheck: exit code 0 when SERVING, 1 otherwise.
    Health {
        /// HOST:PORT to ask. Default: the --service's listen address from its
        /// STEPLAB_*_LISTEN (0.0.0.0 asked on 127.0.0.1), else the participant's.
        #[arg(long)]
        addr: Option<String>,
        /// participant, content-release or payments: ask for that service's
        /// status. Without it, the server's overall status.
        #[arg(long, value_parser = |s: &str| s.parse::<ServiceName>())]
        service: Option<ServiceName>,
        /// How long to wait for the answer.
        #[arg(long, default_value_t = 3)]
        timeout_seconds: u64,
        /// Ask over TLS. Implied when STEPLAB_TLS_CERT_FILE or
        /// STEPLAB_TLS_CA_FILE is set; the server's certificate is checked
        /// against STEPLAB_TLS_CA_FILE (else the webpki roots).
        #[arg(long)]
        tls: bool,
        /// The name the server's certificate must carry, when it is not the
        /// --addr host (e.g. a DNS name while asking 127.0.0.1).
        #[arg(long)]
        tls_server_name: Option<String>,
    },
}

/// The fully qualified gRPC service a Steplab service hosts (and reports
/// health for).
pub fn grpc_service_name(service: ServiceName) -> &'static str {
    use steplab_proto::steplab::{content, dfe, participant, payments};
    match service {
        ServiceName::Participant => participant::v1::participant_service_server::SERVICE_NAME,
        ServiceName::ContentRelease => content::v1::content_release_service_server::SERVICE_NAME,
        ServiceName::Payments => payments::v1::payments_service_server::SERVICE_NAME,
        ServiceName::DfeGateway => dfe::v1::dfe_gateway_service_server::SERVICE_NAME,
    }
}

/// What a health check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Serving,
    /// Answered, but not SERVING (e.g. NOT_SERVING while draining).
    NotServing(String),
    /// No answer: refused, timed out, or the service is unknown there.
    Unreachable(String),
}

/// The address `steplab health` asks when no `--addr` is given.
pub fn default_health_addr(config: &Config, service: Option<ServiceName>) -> String {
    let listen = config.service(service.unwrap_or(ServiceName::Participant)).listen;
    steplab_platform::config::connectable(listen).to_string()
}

/// One `grpc.health.v1.Health/Check` call; `service` "" is the server as a whole.
pub async fn check_health(addr: &str, service: &str, timeout: Duration) -> Health {
    check_health_over(addr, service, timeout, None, None).await
}

/// [`check_health`], over TLS when `tls` is given (verifying the server's
/// certificate for `server_name`, else for the host of `addr`).
pub async fn check_health_over(
    addr: &str,
    service: &str,
    timeout: Duration,
    tls: Option<&ClientTls>,
    server_name: Option<&str>,
) -> Health {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let endpoint = match tls {
        Some(tls) => tls.endpoint(&format!("https://{addr}"), server_name),
        None => ClientTls::default().endpoint(&format!("http://{addr}"), None),
    };
    let endpoint = match endpoint {
        Ok(endpoint) => endpoint.connect_timeout(timeout).timeout(timeout),
        Err(e) => return Health::Unreachable(format!("`{addr}` is not HOST:PORT ({e:#})")),
    };
    let channel = match endpoint.connect().await {
        Ok(channel) => channel,
        // tonic's transport error says only "transport error"; the cause is in its sources.
        Err(e) => return Health::Unreachable(format!("cannot connect: {}", steplab_platform::tls::error_chain(&e))),
    };
    match HealthClient::new(channel).check(HealthCheckRequest { service: service.to_owned() }).await {
        Ok(answer) => match ServingStatus::try_from(answer.into_inner().status) {
            Ok(ServingStatus::Serving) => Health::Serving,
            Ok(other) => Health::NotServing(other.as_str_name().to_owned()),
            Err(_) => Health::NotServing("an unknown status".to_owned()),
        },
        Err(status) => Health::Unreachable(format!("{:?}: {}", status.code(), status.message())),
    }
}

/// Parses a command line (`["steplab", "serve", "payments"]`) exactly as the
/// `steplab` binary does; the manifest test checks container commands with it.
pub fn parse_command<I, T>(args: I) -> Result<Command, String>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::try_parse_from(args).map(|cli| cli.command).map_err(|e| e.to_string())
}
