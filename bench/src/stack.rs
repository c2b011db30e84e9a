//! The real stack as separate `steplab serve` child processes, on SQLite
//! files in a temporary data dir or on fresh PostgreSQL databases (created
//! per stack with unique names and dropped with it), plus typed clients.

use crate::procs::{self, Placement, Server};
use anyhow::Context;
use diesel::{Connection, PgConnection, RunQueryDsl};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use steplab_platform::auth::{self, Role, TokenRequest};
use steplab_proto::steplab::content::v1::content_release_service_client::ContentReleaseServiceClient;
use steplab_proto::steplab::participant::v1::participant_service_client::ParticipantServiceClient;
use steplab_proto::steplab::payments::v1::payments_service_client::PaymentsServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// "Today" in every benchmark stack, as in the tests.
pub const TODAY: &str = "2026-11-28";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

pub type Participants = ParticipantServiceClient<InterceptedService<Channel, Bearer>>;
pub type Content = ContentReleaseServiceClient<InterceptedService<Channel, Bearer>>;
pub type Payments = PaymentsServiceClient<InterceptedService<Channel, Bearer>>;

/// Fresh PostgreSQL databases, dropped on drop.
pub struct PgDatabases {
    admin_url: String,
    names: Vec<String>,
    pub urls: Vec<String>,
}

impl PgDatabases {
    pub fn create(admin_url: &str) -> anyhow::Result<Self> {
        let mut conn = PgConnection::establish(admin_url)
            .with_context(|| format!("PostgreSQL at {admin_url} is not reachable"))?;
        let run = uuid::Uuid::now_v7().simple().to_string();
        // The same server and parameters (`?sslmode=...`), another database.
        let (path, query) = admin_url.split_once('?').map_or((admin_url, None), |(path, query)| (path, Some(query)));
        let base = path.rsplit_once('/').map_or(path, |(base, _)| base);
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        let mut dbs = PgDatabases { admin_url: admin_url.into(), names: Vec::new(), urls: Vec::new() };
        for service in ["participant", "content", "payments", "dfe"] {
            let name = format!("steplab_bench_{service}_{run}");
            diesel::sql_query(format!("CREATE DATABASE \"{name}\"")).execute(&mut conn)?;
            dbs.urls.push(format!("{base}/{name}{query}"));
            dbs.names.push(name);
        }
        Ok(dbs)
    }

    /// Whether the admin database answers at all.
    pub fn reachable(admin_url: &str) -> Result<(), String> {
        PgConnection::establish(admin_url).map(|_| ()).map_err(|e| e.to_string())
    }
}

impl Drop for PgDatabases {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.admin_url) {
            for name in &self.names {
                let _ =
                    diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut conn);
            }
        }
    }
}

pub struct StackOptions {
    pub backend: Backend,
    pub postgres_admin_url: String,
    /// Participant-service replicas on the one participant database.
    pub participant_replicas: usize,
    pub rust_log: String,
}

pub struct Stack {
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    pub participants: Vec<Server>,
    pub content: Server,
    pub payments: Server,
    /// The DfE gateway, with the DfE sync off: it takes the participant
    /// service's DfE commands (TrackParticipant, ReportStatusChange) and keeps
    /// them, so the participant outbox drains as in production.
    pub dfe_gateway: Server,
    secret: String,
    pub content_db: String,
    pub payments_db: String,
    pg: Option<PgDatabases>,
}

impl Stack {
    pub async fn start(placement: &Placement, opts: &StackOptions) -> anyhow::Result<Stack> {
        let dir = tempfile::Builder::new().prefix("steplab-bench-").tempdir()?;
        let secret = format!("bench-{}", uuid::Uuid::now_v7().simple());
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        let mut set = |k: &str, v: String| {
            env.insert(k.to_owned(), v);
        };
        set("STEPLAB_DATA_DIR", dir.path().display().to_string());
        set("STEPLAB_JWT_SECRET", secret.clone());
        set("STEPLAB_TODAY", TODAY.into());
        // All load comes from a handful of callers: no per-caller rate limit,
        // and no shedding of calls past the default concurrency caps.
        set("STEPLAB_RATE_LIMIT_PER_MINUTE", "0".into());
        set("STEPLAB_MAX_CONCURRENT_PER_CONNECTION", "100000".into());
        set("STEPLAB_MAX_CONCURRENT_REQUESTS", "1000000".into());
        set("STEPLAB_DRAIN_SECONDS", "2".into());
        set("RUST_LOG", opts.rust_log.clone());
        let content_addr = procs::free_addr()?;
        let payments_addr = procs::free_addr()?;
        set("STEPLAB_CONTENT_LISTEN", content_addr.to_string());
        set("STEPLAB_PAYMENTS_LISTEN", payments_addr.to_string());
        set("STEPLAB_CONTENT_URL", format!("http://{content_addr}"));
        set("STEPLAB_PAYMENTS_URL", format!("http://{payments_addr}"));
        let dfe_addr = procs::free_addr()?;
        set("STEPLAB_DFE_GATEWAY_LISTEN", dfe_addr.to_string());
        set("STEPLAB_DFE_GATEWAY_URL", format!("http://{dfe_addr}"));
        let pg = match opts.backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PgDatabases::create(&opts.postgres_admin_url)?),
        };
        let (content_db, payments_db) = match &pg {
            Some(dbs) => {
                set("STEPLAB_PARTICIPANT_DATABASE_URL", dbs.urls[0].clone());
                set("STEPLAB_CONTENT_DATABASE_URL", dbs.urls[1].clone());
                set("STEPLAB_PAYMENTS_DATABASE_URL", dbs.urls[2].clone());
                set("STEPLAB_DFE_GATEWAY_DATABASE_URL", dbs.urls[3].clone());
                (dbs.urls[1].clone(), dbs.urls[2].clone())
            }
            None => (
                dir.path().join("content-release.sqlite3").display().to_string(),
                dir.path().join("payments.sqlite3").display().to_string(),
            ),
        };
        let logs = dir.path().to_path_buf();
        let content = procs::start_service(placement, "content-release", "content", content_addr, &env, &logs).await?;
        let payments = procs::start_service(placement, "payments", "payments", payments_addr, &env, &logs).await?;
        let dfe_gateway = procs::start_service(placement, "dfe-gateway", "dfe-gateway", dfe_addr, &env, &logs).await?;
        let mut participants = Vec::new();
        for i in 0..opts.participant_replicas.max(1) {
            let addr = procs::free_addr()?;
            env.insert("STEPLAB_PARTICIPANT_LISTEN".into(), addr.to_string());
            let name = if i == 0 { "participant".to_owned() } else { format!("participant{}", i + 1) };
            participants.push(procs::start_service(placement, "participant", &name, addr, &env, &logs).await?);
        }
        Ok(Stack {
            backend: opts.backend,
            dir,
            participants,
            content,
            payments,
            dfe_gateway,
            secret,
            content_db,
            payments_db,
            pg,
        })
    }

    pub fn token(&self, role: Role, delivery_partners: &[&str]) -> String {
        #[allow(clippy::expect_used)] // a valid secret and claims always sign
        auth::mint_hs256(
            self.secret.as_bytes(),
            &TokenRequest {
                sub: format!("bench-{}", role.as_str()),
                role,
                school_id: None,
                delivery_partner_ids: delivery_partners.iter().map(|s| s.to_string()).collect(),
                ttl: chrono::Duration::hours(4),
            },
        )
        .expect("mint token")
    }

    pub async fn participants(&self, replica: usize, token: &str) -> anyhow::Result<Participants> {
        let addr = self.participants[replica % self.participants.len()].addr;
        Ok(ParticipantServiceClient::with_interceptor(channel(addr).await?, bearer(token)?))
    }

    pub async fn content(&self, token: &str) -> anyhow::Result<Content> {
        Ok(ContentReleaseServiceClient::with_interceptor(channel(self.content.addr).await?, bearer(token)?))
    }

    pub async fn payments(&self, token: &str) -> anyhow::Result<Payments> {
        Ok(PaymentsServiceClient::with_interceptor(channel(self.payments.addr).await?, bearer(token)?))
    }

    /// (name, pid) of every service process, for CPU and memory figures.
    pub fn pids(&self) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        for s in self.participants.iter().chain([&self.content, &self.payments, &self.dfe_gateway]) {
            if let Some(pid) = s.pid() {
                out.push((s.name.clone(), pid));
            }
        }
        out
    }

    /// Service pids plus this process as `load`.
    pub fn cpu_pids(&self) -> Vec<(String, u32)> {
        let mut pids = self.pids();
        pids.push(("load".into(), std::process::id()));
        pids
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The participant database's size on PostgreSQL (`None` on SQLite).
    pub fn participant_database_bytes(&self) -> Option<u64> {
        let url = self.pg.as_ref()?.urls.first()?;
        let mut conn = PgConnection::establish(url).ok()?;
        let size: Count =
            diesel::sql_query("SELECT pg_database_size(current_database()) AS n").get_result(&mut conn).ok()?;
        u64::try_from(size.n).ok()
    }

    /// The participant service's audit rows and the calls they stand for.
    pub fn participant_audit_rows(&self) -> Option<(i64, i64)> {
        let query = "SELECT COUNT(*) AS n FROM audit_log UNION ALL SELECT CAST(COALESCE(SUM(calls), 0) AS BIGINT) AS n FROM audit_log";
        let counts: Vec<Count> = match &self.pg {
            Some(pg) => diesel::sql_query(query).load(&mut PgConnection::establish(pg.urls.first()?).ok()?).ok()?,
            None => {
                let path = self.dir.path().join("participant.sqlite3");
                let mut conn = diesel::SqliteConnection::establish(&path.display().to_string()).ok()?;
                diesel::sql_query(query).load(&mut conn).ok()?
            }
        };
        Some((counts.first()?.n, counts.get(1)?.n))
    }

    /// Stops every process (SIGTERM, then SIGKILL), then drops the databases.
    pub async fn stop(self) {
        let Stack { participants, content, payments, dfe_gateway, pg, dir, .. } = self;
        for p in participants {
            p.stop(Duration::from_secs(5)).await;
        }
        content.stop(Duration::from_secs(5)).await;
        payments.stop(Duration::from_secs(5)).await;
        dfe_gateway.stop(Duration::from_secs(5)).await;
        drop(pg);
        drop(dir);
    }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn bearer(token: &str) -> anyhow::Result<Bearer> {
    Ok(Bearer(format!("Bearer {token}").parse()?))
}

pub async fn channel(addr: SocketAddr) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .connect()
        .await?)
}
