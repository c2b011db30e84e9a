//! Bearer JWT auth for the business services (DOMAIN.md, Roles). Health and
//! reflection are served outside the interceptor and need no token.
//!
//! A token carries `sub`, `role` and the role's scope claim. The interceptor
//! validates signature, expiry, issuer and audience, checks that the scope
//! claim the role needs is present, and leaves a [`Caller`] in the request's
//! extensions for the handler's permission checks.
//!
//! Verification ([`JwtVerifier`]) and minting ([`mint_hs256`],
//! [`ServiceTokens`]) are apart: a service verifies, `steplab token` and the
//! outbox relay mint. Who the caller is lives in [`crate::identity`].

mod keys;
mod mint;
mod secret;
mod verify;

pub use crate::identity::{Caller, Role, Scope};
pub use mint::{Claims, DEV_AUDIENCE, DEV_ISSUER, ServiceTokens, TokenRequest, mint_hs256};
pub use secret::{ensure_dev_secret, load_secret};
pub use verify::{JwtVerifier, TokenTimeLimits, verifier};

#[cfg(test)]
mod tests;
