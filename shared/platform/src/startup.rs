//! What every service does first and last when it runs: open its database,
//! verifier and observing; and, once its own parts are built, serve its
//! business service through the platform's stack until shutdown. Written
//! once here, so a service's `run` holds only what it adds.

use crate::auth::JwtVerifier;
use crate::config::{ServiceName, Serving};
use crate::db::{Database, Migrations};
use crate::observability::{self, Observing};
use crate::readiness::Readiness;
use crate::server::{self, Hosted};
use crate::stack::{self, Stacked};
use std::future::Future;
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::{Request, Status};

/// A service's opened database with the parts that watch and guard it.
pub struct Foundation {
    pub db: Database,
    readiness: Readiness,
    verifier: JwtVerifier,
    observing: Observing,
    serving: Serving,
}

impl Foundation {
    /// Opens the database (running `migrations`), then the verifier and the
    /// observing of `service`: a fault in any of them fails start-up.
    pub async fn open(
        serving: &Serving,
        service: ServiceName,
        migrations: &'static Migrations,
    ) -> anyhow::Result<Self> {
        let db = Database::open_sized(&serving.service.database, migrations, serving.service.pool_size).await?;
        let readiness = Readiness::new(&db, serving.readiness.interval);
        let verifier = crate::auth::verifier(&serving.auth)?;
        let observing = observability::start(&serving.metrics, &serving.audit, service, &db)?;
        Ok(Self { db, readiness, verifier, observing, serving: serving.clone() })
    }

    /// `service` (a generated tonic server) in the platform's one layer stack;
    /// health and reflection stay outside it.
    pub fn stacked<S: NamedService>(
        &self,
        service: S,
    ) -> Stacked<S, impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + use<S>> {
        stack::business_service(&self.observing, &self.serving.limits, &self.verifier, service)
    }

    /// Serves `routes` (the stacked service named `name`) on `listener` until
    /// `shutdown` completes and in-flight calls have drained, then stops
    /// observing.
    pub async fn serve(
        self,
        name: &'static str,
        routes: Routes,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let tls = crate::tls::server_config(&self.serving.tls)?;
        let hosted = Hosted { name, routes, limits: self.serving.limits, tls, readiness: self.readiness };
        let served = server::run(listener, hosted, shutdown, self.serving.drain_timeout).await;
        self.observing.stop().await;
        served
    }
}
