//! The `steplab` command: `up` runs all three services in one process on the
//! embedded default (SQLite under the data dir); `serve SERVICE` runs one (for
//! containers); `token` mints a dev token signed with the services' secret;
//! `health` asks a server's gRPC health service (compose healthchecks). The
//! command line itself is defined in `lib.rs`. Configuration comes from the
//! environment (CONTRACT.md's table).

use anyhow::Context;
use clap::Parser;
use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;
use steplab::{Cli, Command, Health};
use steplab_platform::auth::{self, Role, TokenRequest};
use steplab_platform::config::{Config, DatabaseUrl, JwtSecretSource, ServiceName, TlsFiles};
use steplab_platform::tls::ClientTls;
use tokio::net::TcpListener;
use tokio::sync::watch;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Health { addr, service, timeout_seconds, tls, tls_server_name } = cli.command {
        return health(addr, service, timeout_seconds, tls, tls_server_name);
    }
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
        // Answered above, before the configuration was read.
        Command::Health { .. } => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `steplab health`: exit 0 when SERVING, 1 otherwise (a compose healthcheck).
/// Over TLS with `--tls`, or when the environment has STEPLAB_TLS_CERT_FILE
/// (the server's own, as in an exec probe) or STEPLAB_TLS_CA_FILE.
fn health(
    addr: Option<String>,
    service: Option<ServiceName>,
    timeout_seconds: u64,
    tls: bool,
    tls_server_name: Option<String>,
) -> ExitCode {
    let tls = match TlsFiles::from_env() {
        Ok(files) if tls || files.cert_file.is_some() || files.ca_file.is_some() => {
            match ClientTls::from_files(&files) {
                Ok(client) => Some(client),
                Err(e) => {
                    eprintln!("configuration error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        Ok(_) => None,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = match addr {
        Some(addr) => addr,
        None => match Config::from_env() {
            Ok(config) => steplab::default_health_addr(&config, service),
            Err(e) => {
                eprintln!("configuration error: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let grpc_service = service.map_or("", steplab::grpc_service_name);
    let what = match service {
        Some(name) => format!("{} ({grpc_service}) at {addr}", name.as_str()),
        None => format!("the server at {addr}"),
    };
    let what = if tls.is_some() { format!("{what} (TLS)") } else { what };
    let timeout = Duration::from_secs(timeout_seconds.max(1));
    let outcome = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(steplab::check_health_over(
            &addr,
            grpc_service,
            timeout,
            tls.as_ref(),
            tls_server_name.as_deref(),
        )),
        Err(e) => Health::Unreachable(format!("cannot start the runtime: {e}")),
    };
    match outcome {
        Health::Serving => {
            println!("{what}: SERVING");
            ExitCode::SUCCESS
        }
        Health::NotServing(status) => {
            eprintln!("{what}: {status}");
            ExitCode::FAILURE
        }
        Health::Unreachable(why) => {
            eprintln!("{what}: no answer ({why})");
            if tls.is_none() {
                eprintln!("(if the server serves TLS, add --tls, or set STEPLAB_TLS_CA_FILE to the CA that signed it)");
            }
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// The HS256 secret; the dev secret in the data dir is created on first use.
fn secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    match &config.auth.jwt_secret {
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
    if config.auth.hs256_secret().is_none() {
        anyhow::bail!(
            "the services accept only the identity provider's tokens here (STEPLAB_JWKS_FILE or STEPLAB_JWT_PUBLIC_KEY_FILE \
             without STEPLAB_JWT_SECRET): get a token from the identity provider instead"
        );
    }
    // A longer token would be minted only to be refused by every service.
    let max_hours = config.auth.token_time_limits.max_lifetime.as_secs() / 3600;
    if max_hours == 0 {
        anyhow::bail!(
            "STEPLAB_TOKEN_MAX_LIFETIME_SECONDS ({} s) is shorter than the one hour `steplab token` mints at least",
            config.auth.token_time_limits.max_lifetime.as_secs()
        );
    }
    if ttl_hours < 1 || u64::try_from(ttl_hours).is_ok_and(|hours| hours > max_hours) {
        anyhow::bail!(
            "--ttl-hours must be between 1 and {max_hours}: the services accept no token living longer than STEPLAB_TOKEN_MAX_LIFETIME_SECONDS ({} s)",
            config.auth.token_time_limits.max_lifetime.as_secs()
        );
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
            ServiceName::Participant => steplab_participant::run(config.participant_config(), listener, shutdown).await,
            ServiceName::ContentRelease => {
                steplab_content_release::run(config.content_release_config(), listener, shutdown).await
            }
            ServiceName::Payments => steplab_payments::run(config.payments_config(), listener, shutdown).await,
            ServiceName::DfeGateway => steplab_dfe_gateway::run(config.dfe_gateway_config(), listener, shutdown).await,
        };
        result.with_context(|| format!("{} service", name.as_str()))
    })
}

async fn serve(config: Config, name: ServiceName) -> anyhow::Result<()> {
    steplab_platform::telemetry::init(config.process.log_format);
    let listener = bind(&config, name).await?;
    run_service(config, name, listener, steplab_platform::server::shutdown_signal()).await?
}

async fn up(config: Config) -> anyhow::Result<()> {
    steplab_platform::telemetry::init(config.process.log_format);
    // With an identity provider and no STEPLAB_JWT_SECRET there is no dev secret to make.
    let secret = config.auth.hs256_secret().map(|_| secret(&config)).transpose()?;
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
    print_welcome(&config, secret.as_deref())?;

    // Stop everything on SIGTERM/Ctrl-C, or as soon as any service fails.
    // Room for every service's message, so no watcher blocks once nobody reads.
    let (finished_tx, mut finished_rx) = tokio::sync::mpsc::channel::<()>(ServiceName::ALL.len());
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

fn print_welcome(config: &Config, secret: Option<&[u8]>) -> anyhow::Result<()> {
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
    match (secret, &config.auth.identity_provider) {
        (Some(secret), _) => {
            let ttl = chrono::Duration::from_std(config.auth.token_time_limits.max_lifetime)
                .map_or(chrono::Duration::hours(12), |max| max.min(chrono::Duration::hours(12)));
            let admin = auth::mint_hs256(
                secret,
                &TokenRequest {
                    sub: "steplab-up-admin".into(),
                    role: Role::Admin,
                    school_id: None,
                    delivery_partner_ids: vec![],
                    ttl,
                },
            )?;
            let valid_for = match ttl.num_minutes() {
                m if m % 60 == 0 => format!("{} hours", m / 60),
                m => format!("{m} minutes"),
            };
            println!("An admin token, valid for {valid_for} (make others with `steplab token --role ...`):");
            println!("  export TOKEN={admin}");
        }
        (None, Some(idp)) => {
            println!("Tokens come from your identity provider (issuer {}, audience {}):", idp.issuer, idp.audience);
            println!("  export TOKEN=<a token it issued>");
        }
        (None, None) => {}
    }
    println!();
    println!("Try:");
    // With TLS on the listeners answer only TLS: grpcurl trusts the CA file.
    let transport = match (config.tls.serves_tls(), &config.tls.ca_file) {
        (false, _) => "-plaintext".to_owned(),
        (true, Some(ca)) => format!("-cacert {}", ca.display()),
        (true, None) => "-cacert CA.pem".to_owned(),
    };
    println!("  grpcurl {transport} {participant} list");
    println!(
        "  grpcurl {transport} -H \"authorization: Bearer $TOKEN\" -d '{{\"name\": \"North Region\"}}' {participant} steplab.participant.v1.ParticipantService/CreateDeliveryPartner"
    );
    println!();
    println!("Stop with Ctrl-C.");
    Ok(())
}
