//! The one layer stack every business service is served through, outermost
//! first:
//!
//! 1. [`Observed`]: request id, metrics, the call log and the audit entry,
//!    and the refusal the caller is answered with; outermost, so calls shed
//!    or refused by the layers below are counted and audited too;
//! 2. [`Limited`]: the service-wide cap on calls in progress (load shedding);
//! 3. the auth interceptor ([`JwtVerifier::interceptor`]) inside the
//!    per-caller rate limit ([`Limits::rate_limited`]), which needs the
//!    verified caller.
//!
//! Health and reflection are never wrapped (see [`crate::server::run`]). The
//! message size limits are set on each generated server, whose builder
//! methods are its own.

use crate::auth::JwtVerifier;
use crate::limits::{Limited, Limits};
use crate::observability::{Observed, Observing};
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};

/// A business service `S` wrapped in the platform's layers, `A` being the
/// rate-limited authentication.
pub type Stacked<S, A> = Observed<Limited<InterceptedService<S, A>>>;

/// `service` (a generated tonic server) wrapped in the platform's layers,
/// ready for `tonic::service::Routes::new`.
pub fn business_service<S: NamedService>(
    observing: &Observing,
    limits: &Limits,
    verifier: &JwtVerifier,
    service: S,
) -> Stacked<S, impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + use<S>> {
    let authenticated = InterceptedService::new(service, limits.rate_limited(verifier.interceptor()));
    Observed::new(observing, Limited::new(limits, authenticated))
}
