//! The `steplab` command: `up` runs all three services in one process on the
//! embedded default (SQLite under the data dir); `serve SERVICE` runs one (for
//! containers); `token` mints a dev token signed with the services' secret.
//! Configuration comes from the environment (CONTRACT.md's table).

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::future::Future;
use std::process::ExitCode;
use steplab_platform::auth::{self, Role, TokenRequest};
use steplab_platform::config::{Config, DatabaseUrl, JwtSecretSource, ServiceName};
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Parser)]
#[command(name = "steplab", version, about = "Steplab programme services: participant, content-release and payments")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Token { role, school, delivery_partners, sub, ttl_hours } => {
            token(&config, role, school, delivery_partners, sub, ttl_hours)
        }
        Command::Up => runtime().and_then(|rt| rt.block_on(up(config))),
        Command::Serve { service } => runtime().and_then(|rt| rt.block_on(serve(config, service))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// The HS256 secret; the dev secret in the data dir is created on first use.
fn secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    match &config.jwt_secret {
        JwtSecretSource::Value(v) => Ok(v.as_bytes().to_vec()),
        JwtSecretSource::File(path) => {
            auth::ensure_dev_secret(path).with_context(|| format!("cannot create the dev secret {}", path.display()))
        }
    }
}

fn token(
    config: &Config,
    role: Role,
    school: Option<String>,
    delivery_partners: Vec<String>,
    sub: String,
    ttl_hours: i64,
) -> anyhow::Result<()> {
    match role {
        Role::InductionCoordinator if school.is_none() => {
            anyhow::bail!("--role induction_coordinator needs --school ID")
        }
        Role::EcfLead if delivery_partners.len() != 1 => {
            anyhow::bail!("--role ecf_lead needs exactly one --delivery-partner ID")
        }
        Role::Dpl if delivery_partners.is_empty() => {
            anyhow::bail!("--role dpl needs --delivery-partner ID (repeat it for each)")
        }
        _ => {}
    }
    if !(1..=24 * 366).contains(&ttl_hours) {
        anyhow::bail!("--ttl-hours must be between 1 and 8784");
    }
    let request = TokenRequest {
        sub,
        role,
        school_id: school,
        delivery_partner_ids: delivery_partners,
        ttl: chrono::Duration::hours(ttl_hours),
    };
    println!("{}", auth::mint_hs256(&secret(config)?, &request)?);
    Ok(())
}

async fn bind(config: &Config, name: ServiceName) -> anyhow::Result<TcpListener> {
    let addr = config.service(name).listen;
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} ({})", name.listen_variable()))
}

fn run_service(
    config: Config,
    name: ServiceName,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let result = match name {
            ServiceName::Participant => steplab_participant::run(config, listener, shutdown).await,
            ServiceName::ContentRelease => steplab_content_release::run(config, listener, shutdown).await,
            ServiceName::Payments => steplab_payments::run(config, listener, shutdown).await,
        };
        result.with_context(|| format!("{} service", name.as_str()))
    })
}

async fn serve(config: Config, name: ServiceName) -> anyhow::Result<()> {
    steplab_platform::telemetry::init(config.log_format);
    let listener = bind(&config, name).await?;
    run_service(config, name, listener, steplab_platform::server::shutdown_signal()).await?
}

async fn up(config: Config) -> anyhow::Result<()> {
    steplab_platform::telemetry::init(config.log_format);
    let secret = secret(&config)?;
    let mut listeners = Vec::new();
    for name in ServiceName::ALL {
        listeners.push((name, bind(&config, name).await?));
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for (name, listener) in listeners {
        let mut rx = stop_rx.clone();
        let stop = async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        tasks.push(run_service(config.clone(), name, listener, stop));
    }
    print_welcome(&config, &secret)?;

    // Stop everything on SIGTERM/Ctrl-C, or as soon as any service fails.
    let (finished_tx, mut finished_rx) = tokio::sync::mpsc::channel::<()>(3);
    let mut watched = Vec::new();
    for task in tasks {
        let finished_tx = finished_tx.clone();
        watched.push(tokio::spawn(async move {
            let result = task.await;
            let _ = finished_tx.send(()).await;
            result
        }));
    }
    tokio::select! {
        () = steplab_platform::server::shutdown_signal() => {}
        _ = finished_rx.recv() => {}
    }
    let _ = stop_tx.send(true);
    let mut first_error = None;
    for task in watched {
        if let Err(e) = task
            .await
            .context("service task panicked")
            .and_then(|joined| joined.context("service task"))
            .and_then(|r| r)
        {
            tracing::error!(error = %format!("{e:#}"), "service failed");
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn print_welcome(config: &Config, secret: &[u8]) -> anyhow::Result<()> {
    let admin = auth::mint_hs256(
        secret,
        &TokenRequest {
            sub: "steplab-up-admin".into(),
            role: Role::Admin,
            school_id: None,
            delivery_partner_ids: vec![],
            ttl: chrono::Duration::hours(12),
        },
    )?;
    let participant = config.participant.listen;
    println!("Steplab is running. Data directory: {}", config.data_dir.display());
    for name in ServiceName::ALL {
        let service = config.service(name);
        let db = match &service.database {
            DatabaseUrl::Sqlite(path) => format!("SQLite {}", path.display()),
            postgres @ DatabaseUrl::Postgres(_) => format!("PostgreSQL {postgres:?}"),
        };
        println!("  {:<16} {:<22} {db}", name.as_str(), service.listen.to_string());
    }
    println!();
    println!("An admin token, valid for 12 hours (make others with `steplab token --role ...`):");
    println!("  export TOKEN={admin}");
    println!();
    println!("Try:");
    println!("  grpcurl -plaintext {participant} list");
    println!(
        "  grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" -d '{{\"name\": \"North Region\"}}' {participant} steplab.participant.v1.ParticipantService/CreateDeliveryPartner"
    );
    println!();
    println!("Stop with Ctrl-C.");
    Ok(())
}
