//! The test harness: starts the four real services on 127.0.0.1:0 against
//! temporary SQLite files or freshly created PostgreSQL databases (dropped
//! afterwards), and hands out typed clients and tokens.
//!
//! PostgreSQL comes from `STEPLAB_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Without it a PostgreSQL
//! test is skipped with a loud message, unless `STEPLAB_REQUIRE_POSTGRES=1`,
//! when it fails.

// Test support: a setup that cannot proceed fails the test that asked for it.
#![allow(clippy::panic)]

pub mod chaos;
pub mod fake_dfe;
pub mod fixtures;
pub mod prism;
pub mod receivers;
pub mod slow_target;
pub mod statements;

use diesel::{Connection, PgConnection, RunQueryDsl};
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;
use steplab_platform::auth::{self, Role, TokenRequest};
use steplab_platform::config::{Config, ServiceName};
use steplab_platform::tls::ClientTls;
use steplab_proto::steplab::content::v1::content_release_service_client::ContentReleaseServiceClient;
use steplab_proto::steplab::dfe::v1::dfe_gateway_service_client::DfeGatewayServiceClient;
use steplab_proto::steplab::participant::v1::participant_service_client::ParticipantServiceClient;
use steplab_proto::steplab::payments::v1::payments_service_client::PaymentsServiceClient;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";
/// "Today" in every harness stack unless a test pins another date.
pub const TODAY: &str = "2026-11-28";

/// Backpressure is off in harness stacks unless a test sets
/// `STEPLAB_BACKPRESSURE_MAX_LAG_MS`: the suite's other tests check other
/// rules while the relay is behind on purpose (backlogs, outages, floods) or
/// by accident (a debug build on a shared machine), and a refusal for the
/// lag would fail them for a reason that is not theirs. tests/backpressure.rs
/// checks the refusals.
pub const NO_BACKPRESSURE: &str = "0";

/// Each service's pool in a PostgreSQL harness stack (see `Stack::start_with`).
pub const TEST_POSTGRES_POOL_SIZE: &str = "4";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Participants = ParticipantServiceClient<InterceptedService<Channel, Bearer>>;
pub type Content = ContentReleaseServiceClient<InterceptedService<Channel, Bearer>>;
pub type Payments = PaymentsServiceClient<InterceptedService<Channel, Bearer>>;
pub type DfeGateway = DfeGatewayServiceClient<InterceptedService<Channel, Bearer>>;

/// The admin URL of the test PostgreSQL server.
pub fn postgres_admin_url() -> String {
    std::env::var("STEPLAB_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn postgres_required() -> bool {
    std::env::var("STEPLAB_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// Fresh PostgreSQL databases for one stack, dropped with it.
struct PostgresDatabases {
    admin_url: String,
    names: Vec<String>,
}

impl PostgresDatabases {
    fn create(count_prefix: &str) -> Result<(Self, Vec<String>), String> {
        let admin_url = postgres_admin_url();
        let mut conn = PgConnection::establish(&admin_url).map_err(|e| e.to_string())?;
        let run = uuid::Uuid::now_v7().simple().to_string();
        let mut names = Vec::new();
        let mut urls = Vec::new();
        for service in ["participant", "content", "payments", "dfe_gateway"] {
            let name = format!("steplab_{count_prefix}_{service}_{run}");
            diesel::sql_query(format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).map_err(|e| e.to_string())?;
            let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base);
            urls.push(format!("{base}/{name}"));
            names.push(name);
        }
        Ok((PostgresDatabases { admin_url, names }, urls))
    }
}

impl Drop for PostgresDatabases {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.admin_url) {
            for name in &self.names {
                // FORCE ends the pool connections a stopped service may still hold.
                let _ =
                    diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut conn);
            }
        }
    }
}

/// One service task and the switch that stops it.
struct Running {
    name: ServiceName,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn spawn_service(config: Config, name: ServiceName, listener: TcpListener) -> Running {
    let (stop, mut stop_rx) = watch::channel(false);
    let shutdown = async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    };
    let task = tokio::spawn(async move {
        match name {
            ServiceName::Participant => steplab_participant::run(config.participant_config(), listener, shutdown).await,
            ServiceName::ContentRelease => {
                steplab_content_release::run(config.content_release_config(), listener, shutdown).await
            }
            ServiceName::Payments => steplab_payments::run(config.payments_config(), listener, shutdown).await,
            ServiceName::DfeGateway => steplab_dfe_gateway::run(config.dfe_gateway_config(), listener, shutdown).await,
        }
    });
    Running { name, stop, task }
}

/// Three running services.
pub struct Stack {
    pub backend: Backend,
    pub participant_addr: SocketAddr,
    pub content_addr: SocketAddr,
    pub payments_addr: SocketAddr,
    /// The DfE gateway; its DfE is off unless the test set `STEPLAB_DFE_API_URL`.
    pub dfe_gateway_addr: SocketAddr,
    pub config: Config,
    running: Vec<Running>,
    /// How the harness's own clients connect when the stack serves TLS
    /// (started with `STEPLAB_TLS_CERT_FILE`/`_KEY_FILE` among its settings):
    /// `https://`, trusting `STEPLAB_TLS_CA_FILE`. `None`: plaintext.
    pub client_tls: Option<ClientTls>,
    data_dir: Option<tempfile::TempDir>,
    // Held only so the databases are dropped with the stack.
    _postgres: Option<PostgresDatabases>,
}

impl Stack {
    /// Starts a stack with today pinned to [`TODAY`]; `None` when PostgreSQL is
    /// wanted but absent and not required (the skip is printed loudly).
    pub async fn start(backend: Backend) -> Option<Stack> {
        Self::start_on(backend, TODAY).await
    }

    pub async fn start_on(backend: Backend, today: &str) -> Option<Stack> {
        Self::start_with(backend, today, &[]).await
    }

    /// Starts a stack whose DfE gateway calls the DfE at `api_url` with
    /// `token_content` in the token file `dfe-token` of the directory it
    /// also answers (kept alive by the caller, so a test can rotate the
    /// token), plus `extra` settings.
    pub async fn start_with_dfe(
        backend: Backend,
        api_url: &str,
        token_content: &str,
        extra: &[(&str, &str)],
    ) -> Option<(Stack, tempfile::TempDir)> {
        let dir = tempfile::tempdir().expect("temp dir");
        let token_file = dir.path().join("dfe-token");
        std::fs::write(&token_file, token_content).expect("token file");
        let token_path = token_file.display().to_string();
        let mut settings = vec![("STEPLAB_DFE_API_URL", api_url), ("STEPLAB_DFE_TOKEN_FILE", token_path.as_str())];
        settings.extend_from_slice(extra);
        let stack = Self::start_with(backend, TODAY, &settings).await?;
        Some((stack, dir))
    }

    /// Starts a stack with extra settings, e.g. `("STEPLAB_RELAY_MAX_ATTEMPTS", "3")`.
    pub async fn start_with(backend: Backend, today: &str, settings: &[(&str, &str)]) -> Option<Stack> {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut vars: HashMap<String, String> = HashMap::new();
        for (k, v) in settings {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        vars.insert("STEPLAB_DATA_DIR".into(), data_dir.path().display().to_string());
        vars.insert("STEPLAB_JWT_SECRET".into(), SECRET.into());
        vars.entry("STEPLAB_TODAY".into()).or_insert_with(|| today.into());
        vars.insert("STEPLAB_DRAIN_SECONDS".into(), "5".into());
        // Retries every few hundred milliseconds at most, so fault tests see
        // a target's recovery quickly.
        vars.entry("STEPLAB_RELAY_MAX_BACKOFF_MS".into()).or_insert_with(|| "300".into());
        vars.entry("STEPLAB_BACKPRESSURE_MAX_LAG_MS".into()).or_insert_with(|| NO_BACKPRESSURE.into());
        let postgres = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => match PostgresDatabases::create("test") {
                Ok((dbs, urls)) => {
                    for (name, url) in ServiceName::ALL.into_iter().zip(urls) {
                        vars.insert(name.database_variable(), url);
                    }
                    // Four tests run at once, each with four services on one
                    // PostgreSQL server of 100 connections: at the production
                    // default (10 each) busy stacks could take 160 and be
                    // refused ("too many clients already", seen in CI).
                    vars.entry("STEPLAB_DATABASE_POOL_SIZE".into()).or_insert_with(|| TEST_POSTGRES_POOL_SIZE.into());
                    Some(dbs)
                }
                Err(e) if postgres_required() => {
                    panic!("STEPLAB_REQUIRE_POSTGRES=1 but PostgreSQL at {} is not usable: {e}", postgres_admin_url())
                }
                Err(e) => {
                    // Written to the real stderr, past the test harness's capture, so a
                    // skip is seen even when the test "passes".
                    let _ = writeln!(
                        std::io::stderr(),
                        "\n*** SKIPPED: PostgreSQL at {} is not usable ({e}); set STEPLAB_REQUIRE_POSTGRES=1 to make this a failure ***\n",
                        postgres_admin_url()
                    );
                    return None;
                }
            },
        };
        let stack = Self::launch(backend, vars, Some(data_dir), postgres).await;
        Some(stack)
    }

    /// Starts a SQLite stack on an existing data dir (restart tests).
    pub async fn restart_sqlite_in(data_dir: tempfile::TempDir) -> Stack {
        let mut vars: HashMap<String, String> = HashMap::new();
        vars.insert("STEPLAB_DATA_DIR".into(), data_dir.path().display().to_string());
        vars.insert("STEPLAB_JWT_SECRET".into(), SECRET.into());
        vars.insert("STEPLAB_TODAY".into(), TODAY.into());
        vars.insert("STEPLAB_DRAIN_SECONDS".into(), "5".into());
        vars.insert("STEPLAB_RELAY_MAX_BACKOFF_MS".into(), "300".into());
        vars.insert("STEPLAB_BACKPRESSURE_MAX_LAG_MS".into(), NO_BACKPRESSURE.into());
        Self::launch(Backend::Sqlite, vars, Some(data_dir), None).await
    }

    async fn launch(
        backend: Backend,
        mut vars: HashMap<String, String>,
        data_dir: Option<tempfile::TempDir>,
        postgres: Option<PostgresDatabases>,
    ) -> Stack {
        let mut listeners = Vec::new();
        for name in ServiceName::ALL {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            vars.insert(name.listen_variable(), addr.to_string());
            listeners.push((name, listener, addr));
        }
        // A test may route the relay through a proxy by setting these first.
        // With TLS settings the services serve TLS only, so the relay uses https.
        let scheme = if vars.contains_key("STEPLAB_TLS_CERT_FILE") { "https" } else { "http" };
        vars.entry("STEPLAB_CONTENT_URL".into()).or_insert_with(|| format!("{scheme}://{}", listeners[1].2));
        vars.entry("STEPLAB_PAYMENTS_URL".into()).or_insert_with(|| format!("{scheme}://{}", listeners[2].2));
        vars.entry("STEPLAB_DFE_GATEWAY_URL".into()).or_insert_with(|| format!("{scheme}://{}", listeners[3].2));
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("harness config is valid");
        let client_tls =
            config.tls.serves_tls().then(|| ClientTls::from_files(&config.tls).expect("harness TLS files are valid"));
        let mut running = Vec::new();
        let mut addrs = Vec::new();
        for (name, listener, addr) in listeners {
            addrs.push(addr);
            running.push(spawn_service(config.clone(), name, listener));
        }
        let stack = Stack {
            backend,
            participant_addr: addrs[0],
            content_addr: addrs[1],
            payments_addr: addrs[2],
            dfe_gateway_addr: addrs[3],
            config,
            running,
            client_tls,
            data_dir,
            _postgres: postgres,
        };
        for addr in [stack.participant_addr, stack.content_addr, stack.payments_addr, stack.dfe_gateway_addr] {
            wait_until_serving_over(addr, stack.client_tls.as_ref()).await;
        }
        stack
    }

    /// Signals shutdown and waits for every service to exit cleanly.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        for service in self.running.drain(..) {
            let _ = service.stop.send(true);
            service.task.await.expect("service task").expect("service exited cleanly");
        }
        self.data_dir.take()
    }

    fn addr(&self, name: ServiceName) -> SocketAddr {
        match name {
            ServiceName::Participant => self.participant_addr,
            ServiceName::ContentRelease => self.content_addr,
            ServiceName::Payments => self.payments_addr,
            ServiceName::DfeGateway => self.dfe_gateway_addr,
        }
    }

    /// Stops one service gracefully; its port stays unanswered until restarted.
    pub async fn stop_service(&mut self, name: ServiceName) {
        let Some(i) = self.running.iter().position(|r| r.name == name) else { return };
        let service = self.running.remove(i);
        let _ = service.stop.send(true);
        service.task.await.expect("service task").expect("service exited cleanly");
    }

    /// Ends one service at once, as a crash would: no drain, nothing flushed.
    pub async fn kill_service(&mut self, name: ServiceName) {
        let Some(i) = self.running.iter().position(|r| r.name == name) else { return };
        let service = self.running.remove(i);
        service.task.abort();
        let _ = service.task.await;
    }

    /// Starts a stopped service again on the same address and database.
    pub async fn restart_service(&mut self, name: ServiceName) {
        let addr = self.addr(name);
        let listener = TcpListener::bind(addr).await.expect("rebind the same port");
        self.running.push(spawn_service(self.config.clone(), name, listener));
        wait_until_serving_over(addr, self.client_tls.as_ref()).await;
    }

    /// A second participant service on the same database, as a second
    /// replica would be, listening on its own port.
    pub async fn start_participant_replica(&mut self) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        self.running.push(spawn_service(self.config.clone(), ServiceName::Participant, listener));
        wait_until_serving_over(addr, self.client_tls.as_ref()).await;
        addr
    }

    /// A participant client for another replica's address.
    pub async fn participants_at(&self, addr: SocketAddr, token: Option<&str>) -> Participants {
        ParticipantServiceClient::with_interceptor(self.channel(addr).await, bearer(token))
    }

    /// A channel to one of the stack's services, over TLS when it serves TLS.
    pub async fn channel(&self, addr: SocketAddr) -> Channel {
        match &self.client_tls {
            Some(tls) => tls_channel(addr, tls).await.unwrap_or_else(|e| panic!("connect to https://{addr}: {e}")),
            None => channel(addr).await,
        }
    }

    pub fn token(&self, role: Role, school: Option<&str>, delivery_partners: &[&str]) -> String {
        token(role, school, delivery_partners)
    }

    pub fn admin_token(&self) -> String {
        token(Role::Admin, None, &[])
    }

    pub async fn participants(&self, token: Option<&str>) -> Participants {
        ParticipantServiceClient::with_interceptor(self.channel(self.participant_addr).await, bearer(token))
    }

    pub async fn content(&self, token: Option<&str>) -> Content {
        ContentReleaseServiceClient::with_interceptor(self.channel(self.content_addr).await, bearer(token))
    }

    pub async fn payments(&self, token: Option<&str>) -> Payments {
        PaymentsServiceClient::with_interceptor(self.channel(self.payments_addr).await, bearer(token))
    }

    pub async fn dfe_gateway(&self, token: Option<&str>) -> DfeGateway {
        DfeGatewayServiceClient::with_interceptor(self.channel(self.dfe_gateway_addr).await, bearer(token))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for service in &self.running {
            let _ = service.stop.send(true);
            service.task.abort();
        }
    }
}

pub fn token(role: Role, school: Option<&str>, delivery_partners: &[&str]) -> String {
    auth::mint_hs256(
        SECRET.as_bytes(),
        &TokenRequest {
            sub: format!("test-{}", role.as_str()),
            role,
            school_id: school.map(str::to_owned),
            delivery_partner_ids: delivery_partners.iter().map(|s| s.to_string()).collect(),
            ttl: chrono::Duration::hours(1),
        },
    )
    .expect("mint token")
}

fn bearer(token: Option<&str>) -> Bearer {
    Bearer(token.map(|t| format!("Bearer {t}").parse().expect("ascii token")))
}

pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .expect("connect")
}

/// A channel to `https://addr` with the given TLS (the stack's CA, and a
/// client certificate if it has one); the error says why TLS failed.
pub async fn tls_channel(addr: SocketAddr, tls: &ClientTls) -> Result<Channel, String> {
    tls.endpoint(&format!("https://{addr}"), None)
        .map_err(|e| format!("{e:#}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .map_err(|e| steplab_platform::tls::error_chain(&e))
}

async fn wait_until_serving_over(addr: SocketAddr, tls: Option<&ClientTls>) {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let connected = match tls {
            Some(tls) => tls_channel(addr, tls).await.ok(),
            None => Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await.ok(),
        };
        if let Some(channel) = connected {
            let answer = HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await;
            if answer.is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32) {
                return;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "service at {addr} did not start serving within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a scenario once on SQLite and once on PostgreSQL, as two tests named
/// `<scenario>::sqlite` and `<scenario>::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let stack = $crate::Stack::start($crate::Backend::Sqlite).await.expect("sqlite stack");
                super::$scenario(&stack).await;
                stack.stop().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(stack) = $crate::Stack::start($crate::Backend::Postgres).await {
                    super::$scenario(&stack).await;
                    stack.stop().await;
                }
            }
        }
    )*};
}

/// Waits until the participant service has delivered every command, or
/// panics after `within` with what is still undelivered.
pub async fn wait_until_delivered(stack: &Stack, within: Duration) {
    use steplab_proto::steplab::participant::v1::GetSyncStatusRequest;
    let admin = stack.admin_token();
    let mut client = stack.participants(Some(&admin)).await;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let status = client
            .get_sync_status(GetSyncStatusRequest {
                page_size: 0,
                page_token: String::new(),
                participant_id: String::new(),
                parked_only: false,
            })
            .await
            .expect("sync status")
            .into_inner();
        if status.pending == 0 && status.parked == 0 {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let first = status
                .commands
                .first()
                .map(|c| format!("{} {}: {}", c.target, c.rpc, c.last_error))
                .unwrap_or_default();
            panic!("{} commands pending and {} parked after {within:?}; first: {first}", status.pending, status.parked);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Like [`on_both_backends!`] for scenarios that stop and restart services:
/// each takes `&mut Stack`.
#[macro_export]
macro_rules! on_both_backends_mut {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let mut stack = $crate::Stack::start($crate::Backend::Sqlite).await.expect("sqlite stack");
                super::$scenario(&mut stack).await;
                stack.stop().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(mut stack) = $crate::Stack::start($crate::Backend::Postgres).await {
                    super::$scenario(&mut stack).await;
                    stack.stop().await;
                }
            }
        }
    )*};
}
