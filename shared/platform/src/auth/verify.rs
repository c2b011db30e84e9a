//! Verification: the signature, issuer, audience and time checks of a
//! bearer token, the tonic interceptor that refuses a call without a valid
//! one, and the verifier a service builds from its configuration.

use super::keys::{Jwks, TrustedKey, load_pem_public_key};
use super::mint::{DEV_AUDIENCE, DEV_ISSUER};
use super::secret::load_secret;
pub use crate::config::TokenTimeLimits;
use crate::config::{AuthSettings, ConfigError, IdentityProvider};
use crate::error::{reason, unauthenticated};
use crate::identity::{Caller, Role, Scope};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use std::sync::Arc;
use tonic::{Request, Status};

/// The claims Steplab reads from a verified token. `iss` and `aud` are
/// checked by the validation, so they are not read here (an identity
/// provider may send `aud` as a list). The time claims are read raw and
/// checked by [`TokenTimeLimits::check`], so that a malformed `exp` is
/// named as such rather than as a missing one.
#[derive(Debug, Deserialize)]
pub(super) struct VerifiedClaims {
    pub(super) sub: String,
    pub(super) role: Role,
    #[serde(default)]
    pub(super) school_id: Option<String>,
    #[serde(default)]
    pub(super) delivery_partner_id: Option<String>,
    #[serde(default)]
    pub(super) delivery_partner_ids: Vec<String>,
    #[serde(flatten)]
    pub(super) times: TimeClaims,
}

/// `exp`, `iat` and `nbf` as the token carries them (any JSON value).
#[derive(Debug, Default, Deserialize)]
pub(super) struct TimeClaims {
    #[serde(default)]
    pub(super) exp: Option<serde_json::Value>,
    #[serde(default)]
    pub(super) iat: Option<serde_json::Value>,
    #[serde(default)]
    pub(super) nbf: Option<serde_json::Value>,
}

/// Why an authentic but expired token is refused; the interceptor answers it
/// with the ErrorInfo reason `TOKEN_EXPIRED` (any other refusal of a token
/// is `TOKEN_INVALID`), so a client knows to get a new token.
pub(super) const TOKEN_EXPIRED: &str = "the token has expired: get a new one";

impl TokenTimeLimits {
    /// Checks a signed token's time claims at `now` (seconds since 1970):
    /// `exp` is required, a whole number of seconds, not past (give or take
    /// the skew) and at most the maximum lifetime (plus the skew) away;
    /// `iat`, when present, is not ahead of our clock by more than the skew
    /// and at most the maximum lifetime before `exp`; `nbf`, when present,
    /// is not ahead by more than the skew. Answers `exp`.
    pub(super) fn check(&self, times: &TimeClaims, now: i64) -> Result<i64, String> {
        let max = i64::try_from(self.max_lifetime.as_secs()).unwrap_or(i64::MAX);
        let skew = i64::try_from(self.clock_skew.as_secs()).unwrap_or(i64::MAX);
        let exp = match &times.exp {
            None | Some(serde_json::Value::Null) => return Err("the token has no `exp` claim".into()),
            Some(value) => seconds_since_1970("exp", value)?,
        };
        let iat = times.iat.as_ref().filter(|v| !v.is_null()).map(|v| seconds_since_1970("iat", v)).transpose()?;
        let nbf = times.nbf.as_ref().filter(|v| !v.is_null()).map(|v| seconds_since_1970("nbf", v)).transpose()?;
        if exp.saturating_add(skew) < now {
            return Err(TOKEN_EXPIRED.into());
        }
        if let Some(nbf) = nbf
            && nbf > now.saturating_add(skew)
        {
            return Err(format!(
                "the token is not valid yet (`nbf` is {} s ahead of this server's clock, more than the {skew} s allowed)",
                nbf - now
            ));
        }
        if let Some(iat) = iat {
            if iat > now.saturating_add(skew) {
                return Err(format!(
                    "the token claims to be issued in the future (`iat` is {} s ahead of this server's clock, more than the {skew} s allowed): check the issuer's clock",
                    iat - now
                ));
            }
            if exp < iat {
                return Err("the token's `exp` is before its `iat`".into());
            }
            if exp - iat > max {
                return Err(format!(
                    "the token lives {} s (`exp` - `iat`), longer than the {max} s allowed (STEPLAB_TOKEN_MAX_LIFETIME_SECONDS): get a shorter-lived token",
                    exp - iat
                ));
            }
        }
        if exp - now > max.saturating_add(skew) {
            return Err(format!(
                "the token expires {} s from now, later than the {max} s a token may live (STEPLAB_TOKEN_MAX_LIFETIME_SECONDS): get a shorter-lived token",
                exp - now
            ));
        }
        Ok(exp)
    }
}

/// A time claim as seconds since 1970: a JSON integer from 0 up. Anything
/// else (a string, a fraction, 1e20, a negative number) is named for what it is.
pub(super) fn seconds_since_1970(claim: &str, value: &serde_json::Value) -> Result<i64, String> {
    let out_of_range = || {
        format!(
            "the token's `{claim}` claim ({value}) is out of range: it must be a whole number of seconds since 1970, such as 1767225600"
        )
    };
    match value {
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(seconds) if seconds >= 0 => Ok(seconds),
            _ => Err(out_of_range()),
        },
        _ => Err(format!("the token's `{claim}` claim is not a number of seconds since 1970")),
    }
}
impl Caller {
    /// The caller the interceptor left on the request. Its absence means the
    /// service was mounted without the interceptor: refuse rather than trust.
    pub fn from_request<T>(request: &Request<T>) -> Result<Caller, Status> {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| unauthenticated(reason::TOKEN_MISSING, "no authenticated caller on this request"))
    }

    pub(super) fn from_claims(claims: VerifiedClaims) -> Result<Caller, String> {
        if claims.sub.trim().is_empty() {
            return Err("token has an empty `sub` claim".into());
        }
        let present = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let scope = match claims.role {
            Role::InductionCoordinator => Scope::InductionCoordinator {
                school_id: present(claims.school_id)
                    .ok_or("an induction_coordinator token needs a `school_id` claim")?,
            },
            Role::EcfLead => Scope::EcfLead {
                delivery_partner_id: present(claims.delivery_partner_id)
                    .ok_or("an ecf_lead token needs a `delivery_partner_id` claim")?,
            },
            Role::Dpl => {
                let mut ids: Vec<String> = claims.delivery_partner_ids;
                ids.extend(present(claims.delivery_partner_id));
                ids.retain(|s| !s.trim().is_empty());
                if ids.is_empty() {
                    return Err("a dpl token needs a `delivery_partner_ids` claim".into());
                }
                Scope::Dpl { delivery_partner_ids: ids }
            }
            Role::Admin => Scope::Admin,
            Role::Service => Scope::Service,
        };
        Ok(Caller { sub: claims.sub, scope })
    }
}

/// Verifies tokens; cheap to clone into every service's interceptor.
///
/// Each trusted key carries the one algorithm it verifies: the HS256 dev
/// secret only HS256, an RSA key only RS256, a P-256 key only ES256. The
/// token's header only selects among the keys (by `kid`); it never chooses
/// how a key is used, so an HS256 token "signed" with an RSA public key, or
/// an `alg: none` token, is refused.
#[derive(Clone)]
pub struct JwtVerifier {
    pub(super) inner: Arc<VerifierInner>,
    time_limits: TokenTimeLimits,
    /// Tokens these keys and time limits accepted lately.
    verified: Arc<Remembered>,
}

/// The tokens a verifier accepted lately, so that a client's every call
/// with the same token does not pay for its signature and claims again
/// (decoding them was 7% of a GetReleaseState's CPU). Keyed by the token's
/// exact text, and only a token the verifier accepted gets in, so a hit
/// proves what a full check would: the same bytes carry the same signature
/// and claims. A hit still checks the expiry against the clock (nothing
/// else in a token it accepted can turn invalid with time), and one
/// verified by the identity provider's keys counts only while that key set
/// is the current one, so a key removed from the JWKS file stops working
/// when the file is re-read. Bounded: when full it is emptied, and only
/// the issuer can make valid tokens to fill it.
#[derive(Default)]
pub(super) struct Remembered {
    tokens: std::sync::Mutex<std::collections::HashMap<Box<str>, Accepted>>,
}

struct Accepted {
    caller: Caller,
    /// The token's `exp`, seconds since 1970.
    expires: i64,
    /// The identity provider's key set when it was verified (`None`: a
    /// verifier without a JWKS file).
    keys: Option<Arc<Vec<TrustedKey>>>,
}

/// Tokens remembered at most: a busy service's callers, many times over.
const REMEMBERED_TOKENS: usize = 4_096;

impl Remembered {
    /// The caller of `token`, if it was accepted under the key set `keys`
    /// and its `exp`, give or take `skew`, is not past at `now`.
    pub(super) fn get(&self, token: &str, now: i64, skew: i64, keys: Option<&Arc<Vec<TrustedKey>>>) -> Option<Caller> {
        let tokens = self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let accepted = tokens.get(token)?;
        let same_keys = match (&accepted.keys, keys) {
            (None, None) => true,
            (Some(then), Some(now)) => Arc::ptr_eq(then, now),
            _ => false,
        };
        (same_keys && accepted.expires.saturating_add(skew) >= now).then(|| accepted.caller.clone())
    }

    pub(super) fn put(&self, token: &str, caller: &Caller, expires: i64, keys: Option<Arc<Vec<TrustedKey>>>) {
        let mut tokens = self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if tokens.len() >= REMEMBERED_TOKENS {
            tokens.clear();
        }
        tokens.insert(token.into(), Accepted { caller: caller.clone(), expires, keys });
    }
}

pub(super) struct VerifierInner {
    /// Keys without a `kid` (the HS256 secret, the PEM key): tried for any token.
    pub(super) keys: Vec<TrustedKey>,
    /// The identity provider's JWKS, matched by `kid`.
    pub(super) jwks: Option<Jwks>,
}

impl JwtVerifier {
    /// The dev verifier: HS256 tokens that `steplab token` mints.
    pub fn hs256(secret: &[u8]) -> Result<Self, jsonwebtoken::errors::Error> {
        let key = TrustedKey::new(None, Algorithm::HS256, DecodingKey::from_secret(secret)?, DEV_ISSUER, DEV_AUDIENCE);
        Ok(Self {
            inner: Arc::new(VerifierInner { keys: vec![key], jwks: None }),
            time_limits: TokenTimeLimits::default(),
            verified: Arc::default(),
        })
    }

    /// The production verifier: the identity provider's RS256/ES256 keys
    /// (PEM file, JWKS file or both) with its issuer and audience, and, when
    /// `hs256_secret` is given, HS256 dev tokens as well. Every problem with a
    /// file is an error naming its variable.
    pub fn identity_provider(idp: &IdentityProvider, hs256_secret: Option<&[u8]>) -> Result<Self, ConfigError> {
        let mut keys = Vec::new();
        if let Some(secret) = hs256_secret {
            let key = DecodingKey::from_secret(secret)
                .map_err(|e| ConfigError::new("STEPLAB_JWT_SECRET", format!("is not a usable HS256 secret: {e}")))?;
            keys.push(TrustedKey::new(None, Algorithm::HS256, key, DEV_ISSUER, DEV_AUDIENCE));
        }
        if let Some(path) = &idp.public_key_file {
            let (algorithm, key) = load_pem_public_key(path)?;
            keys.push(TrustedKey::new(None, algorithm, key, &idp.issuer, &idp.audience));
        }
        let jwks = match &idp.jwks_file {
            Some(path) => Some(Jwks::load(path, &idp.issuer, &idp.audience)?),
            None => None,
        };
        Ok(Self {
            inner: Arc::new(VerifierInner { keys, jwks }),
            time_limits: TokenTimeLimits::default(),
            verified: Arc::default(),
        })
    }

    /// The same keys with other lifetime and clock-skew limits.
    pub fn with_time_limits(mut self, time_limits: TokenTimeLimits) -> Self {
        self.time_limits = time_limits;
        // What other limits accepted proves nothing under these.
        self.verified = Arc::default();
        self
    }

    /// The caller a bearer token names, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<Caller, String> {
        let now = chrono::Utc::now().timestamp();
        let skew = i64::try_from(self.time_limits.clock_skew.as_secs()).unwrap_or(i64::MAX);
        let keys = self.inner.jwks.as_ref().map(Jwks::current);
        if let Some(caller) = self.verified.get(token, now, skew, keys.as_ref()) {
            return Ok(caller);
        }
        let (caller, expires) = self.verify_fully(token, now)?;
        // The key set as it is after the check (which may have re-read it).
        let keys = self.inner.jwks.as_ref().map(Jwks::current);
        self.verified.put(token, &caller, expires, keys);
        Ok(caller)
    }

    /// [`JwtVerifier::verify`] without the remembered tokens: the caller and
    /// the token's `exp`.
    fn verify_fully(&self, token: &str, now: i64) -> Result<(Caller, i64), String> {
        // `decode_header` knows only real algorithms: `none` (or a header
        // that is not JSON) fails here, before any key is looked at.
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            "the token is not a signed JWT, or its header names an algorithm Steplab never accepts (such as `none`)"
                .to_owned()
        })?;
        let kid = header.kid.as_deref();
        let jwks_keys = self.inner.jwks.as_ref().map(|jwks| jwks.keys_for(kid));
        let keys: Vec<&TrustedKey> =
            self.inner.keys.iter().chain(jwks_keys.iter().flat_map(|keys| keys.iter())).collect();
        // The algorithm each key is pinned to decides which keys may be tried;
        // the header's `alg` can only narrow that, never widen it.
        let pinned: Vec<&TrustedKey> = keys.iter().copied().filter(|key| key.algorithm == header.alg).collect();
        if pinned.is_empty() {
            let mut accepted: Vec<String> = keys.iter().map(|key| format!("{:?}", key.algorithm)).collect();
            accepted.sort();
            accepted.dedup();
            return Err(format!(
                "the token's algorithm {:?} is not accepted here (only {})",
                header.alg,
                accepted.join(", ")
            ));
        }
        let candidates: Vec<&TrustedKey> =
            pinned.into_iter().filter(|key| key.kid.is_none() || key.kid.as_deref() == kid).collect();
        if candidates.is_empty() {
            return Err(match kid {
                Some(kid) => format!("no trusted {:?} key has kid `{kid}`", header.alg),
                None => "the token has no `kid` header, and the identity provider's keys (STEPLAB_JWKS_FILE) are chosen by it".into(),
            });
        }
        // A key whose signature matched explains the refusal best (expired,
        // wrong audience, ...); a bad signature only when no key matched.
        let mut refusal: Option<(bool, String)> = None;
        for key in candidates {
            match jsonwebtoken::decode::<VerifiedClaims>(token, &key.key, &key.validation) {
                // The signature matched: the token is authentic, so its
                // time claims decide, whatever the other keys would say.
                Ok(data) => {
                    let expires = self.time_limits.check(&data.claims.times, now)?;
                    return Caller::from_claims(data.claims).map(|caller| (caller, expires));
                }
                Err(e) => {
                    let signature_matched = !matches!(
                        e.kind(),
                        jsonwebtoken::errors::ErrorKind::InvalidSignature
                            | jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey
                            | jsonwebtoken::errors::ErrorKind::InvalidRsaKey(_)
                            | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat
                    );
                    if refusal.as_ref().is_none_or(|(matched, _)| signature_matched && !matched) {
                        refusal = Some((signature_matched, key.describe(&e)));
                    }
                }
            }
        }
        Err(refusal.map_or_else(|| "invalid token".to_owned(), |(_, why)| why))
    }

    /// The tonic interceptor: UNAUTHENTICATED without a valid bearer token,
    /// with a log line saying why (never the token itself).
    pub fn interceptor(&self) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + use<> {
        let verifier = self.clone();
        move |mut request: Request<()>| {
            let refuse = |code: &'static str, why: String| {
                tracing::warn!(reason = %why, code, "request refused: UNAUTHENTICATED");
                unauthenticated(code, why)
            };
            let header = request.metadata().get("authorization").ok_or_else(|| {
                refuse(reason::TOKEN_MISSING, "missing `authorization: Bearer <token>` metadata".into())
            })?;
            let value = header
                .to_str()
                .map_err(|_| refuse(reason::TOKEN_INVALID, "the authorization header is not text".into()))?;
            let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).ok_or_else(|| {
                refuse(reason::TOKEN_INVALID, "the authorization header must be `Bearer <token>`".into())
            })?;
            let caller = verifier.verify(token.trim()).map_err(|why| {
                let code = if why == TOKEN_EXPIRED { reason::TOKEN_EXPIRED } else { reason::TOKEN_INVALID };
                refuse(code, why)
            })?;
            if let Some(call) = request.extensions().get::<std::sync::Arc<crate::call::CallContext>>() {
                call.set_actor(&caller);
            }
            request.extensions_mut().insert(caller);
            Ok(request)
        }
    }
}

/// The verifier a service uses, from its configuration: the HS256 dev secret
/// alone by default; with an identity provider configured, its keys, plus
/// HS256 only if `STEPLAB_JWT_SECRET` is set too (see
/// [`AuthSettings::hs256_secret`]).
pub fn verifier(config: &AuthSettings) -> anyhow::Result<JwtVerifier> {
    let secret = config.hs256_secret().map(load_secret).transpose().map_err(anyhow::Error::msg)?;
    // Page tokens: the deployment's own page-token secret first (the first key
    // a process sets counts), else one derived from the HS256 secret.
    if let Some(path) = &config.page_token_secret_file {
        crate::paging::derive_key_from(&load_page_token_secret(path).map_err(anyhow::Error::msg)?);
    } else if let Some(secret) = &secret {
        crate::paging::derive_key_from(secret);
    } else {
        tracing::warn!(
            "no STEPLAB_PAGE_TOKEN_SECRET_FILE and no HS256 secret: page tokens are keyed for this process only, so a \
             client's next page is refused by another replica or after a restart; mount one secret file on every replica"
        );
    }
    let verifier = match (&config.identity_provider, secret) {
        (Some(idp), secret) => {
            if secret.is_some() {
                tracing::warn!(
                    "STEPLAB_JWT_SECRET is set: HS256 dev tokens are accepted besides the identity provider's; unset it in production"
                );
            }
            JwtVerifier::identity_provider(idp, secret.as_deref())?
        }
        (None, Some(secret)) => JwtVerifier::hs256(&secret)?,
        (None, None) => anyhow::bail!("no way to verify tokens: set STEPLAB_JWT_SECRET or STEPLAB_JWKS_FILE"),
    };
    Ok(verifier.with_time_limits(config.token_time_limits))
}

/// The page-token secret from its file: at least 32 characters, trimmed.
fn load_page_token_secret(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "STEPLAB_PAGE_TOKEN_SECRET_FILE {} cannot be read ({e}): mount the page-token secret there",
            path.display()
        )
    })?;
    let secret = text.trim();
    if secret.len() < 32 {
        return Err(format!(
            "STEPLAB_PAGE_TOKEN_SECRET_FILE {} holds fewer than 32 characters: use a long random secret (e.g. `openssl rand -hex 32`)",
            path.display()
        ));
    }
    Ok(secret.as_bytes().to_vec())
}

#[cfg(test)]
mod page_token_secret_tests {
    use super::load_page_token_secret;

    #[test]
    fn a_page_token_secret_is_read_trimmed_and_must_be_long_enough() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("secret");
        std::fs::write(&path, format!("{}\n", "s".repeat(40))).expect("write");
        assert_eq!(load_page_token_secret(&path).expect("read"), "s".repeat(40).into_bytes());
        std::fs::write(&path, "short").expect("write");
        let err = load_page_token_secret(&path).expect_err("short");
        assert!(err.contains("STEPLAB_PAGE_TOKEN_SECRET_FILE") && err.contains("32"), "{err}");
        let err = load_page_token_secret(&dir.path().join("missing")).expect_err("missing");
        assert!(err.contains("cannot be read"), "{err}");
    }
}
