//! What every Steplab service shares, used identically by all three: typed
//! configuration from the environment, the database layer (one diesel code
//! path for SQLite and PostgreSQL), JWT auth, the error mapping to gRPC
//! status codes, `google.type.Date` conversions, the pinnable clock, logging,
//! request idempotency and the service-to-service command envelope, metrics and request ids, the audit log, and the server bootstrap (health, reflection, graceful
//! shutdown).

pub mod ack;
pub mod audit;
pub mod auth;
pub mod batch;
pub mod call;
pub mod clock;
pub mod config;
pub mod connections;
pub mod date;
pub mod db;
pub mod dfe;
pub mod envelope;
pub mod error;
pub mod grpc;
pub mod idempotency;
pub mod identity;
pub mod ids;
pub mod limits;
pub mod migrations;
pub mod observability;
pub mod outbox;
pub mod paging;
pub mod preview;
pub mod reach;
pub mod readiness;
pub mod rules;
pub mod server;
pub mod stack;
pub mod startup;
pub mod telemetry;
pub mod text;
pub mod tls;
pub mod uow;

pub use clock::Clock;
pub use error::{FieldViolation, FieldViolations};
pub use identity::{Caller, Role, Scope};
