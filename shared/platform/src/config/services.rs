//! Each service's part of the configuration: the blocks it runs with and no
//! other (the participant service never sees payments' database).

use super::{
    AuditSettings, AuthSettings, Backpressure, ClockSettings, Config, DfeSettings, Limits, MetricsSettings,
    ReadinessSettings, RelayRetry, ServiceName, ServiceSettings, Targets, TlsFiles,
};
use std::path::PathBuf;
use std::time::Duration;

/// What every service serves with: its own listener and database, and the
/// blocks all services share.
#[derive(Debug, Clone)]
pub struct Serving {
    pub service: ServiceSettings,
    pub auth: AuthSettings,
    pub limits: Limits,
    pub tls: TlsFiles,
    pub clock: ClockSettings,
    /// `STEPLAB_DRAIN_SECONDS`: how long in-flight calls may take to finish after SIGTERM.
    pub drain_timeout: Duration,
    pub readiness: ReadinessSettings,
    pub metrics: MetricsSettings,
    pub audit: AuditSettings,
}

/// The participant service relays to all three others.
#[derive(Debug, Clone)]
pub struct ParticipantConfig {
    pub serving: Serving,
    pub targets: Targets,
    pub relay: RelayRetry,
    pub backpressure: Backpressure,
}

#[derive(Debug, Clone)]
pub struct ContentReleaseConfig {
    pub serving: Serving,
    /// `STEPLAB_CURRICULUM_FILE`: a deployment's own curriculum (R1).
    pub curriculum_file: Option<PathBuf>,
}

/// Payments relays milestones to the DfE gateway.
#[derive(Debug, Clone)]
pub struct PaymentsConfig {
    pub serving: Serving,
    pub relay: RelayRetry,
    pub backpressure: Backpressure,
    pub dfe_gateway_url: String,
    /// `STEPLAB_SCHEDULES_FILE`: a deployment's own payment schedules (F1).
    pub schedules_file: Option<PathBuf>,
}

/// The DfE gateway talks to the DfE and relays declaration states to payments.
#[derive(Debug, Clone)]
pub struct DfeGatewayConfig {
    pub serving: Serving,
    pub relay: RelayRetry,
    pub payments_url: String,
    pub dfe: DfeSettings,
}

impl Config {
    /// The blocks `name` serves with, whichever service it is.
    pub fn serving(&self, name: ServiceName) -> Serving {
        Serving {
            service: self.service(name).clone(),
            auth: self.auth.clone(),
            limits: self.limits,
            tls: self.tls.clone(),
            clock: self.clock,
            drain_timeout: self.process.drain_timeout,
            readiness: self.readiness,
            metrics: self.metrics,
            audit: self.audit,
        }
    }

    pub fn participant_config(&self) -> ParticipantConfig {
        ParticipantConfig {
            serving: self.serving(ServiceName::Participant),
            targets: self.targets.clone(),
            relay: self.relay,
            backpressure: self.backpressure,
        }
    }

    pub fn content_release_config(&self) -> ContentReleaseConfig {
        ContentReleaseConfig {
            serving: self.serving(ServiceName::ContentRelease),
            curriculum_file: self.files.curriculum_file.clone(),
        }
    }

    pub fn payments_config(&self) -> PaymentsConfig {
        PaymentsConfig {
            serving: self.serving(ServiceName::Payments),
            relay: self.relay,
            backpressure: self.backpressure,
            dfe_gateway_url: self.targets.dfe_gateway_url.clone(),
            schedules_file: self.files.schedules_file.clone(),
        }
    }

    pub fn dfe_gateway_config(&self) -> DfeGatewayConfig {
        DfeGatewayConfig {
            serving: self.serving(ServiceName::DfeGateway),
            relay: self.relay,
            payments_url: self.targets.payments_url.clone(),
            dfe: self.dfe.clone(),
        }
    }
}
