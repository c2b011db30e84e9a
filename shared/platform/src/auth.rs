//! Bearer JWT auth for the business services (DOMAIN.md, Roles). Health and
//! reflection are served outside the interceptor and need no token.
//!
//! A token carries `sub`, `role` and the role's scope claim. The interceptor
//! validates signature, expiry, issuer and audience, checks that the scope
//! claim the role needs is present, and leaves a [`Caller`] in the request's
//! extensions for the handler's permission checks.

use crate::config::{AuthSettings, ConfigError, IdentityProvider, JwtSecretSource, TokenTimeLimits};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tonic::{Request, Status};

/// Issuer and audience of the tokens `steplab token` mints.
pub const DEV_ISSUER: &str = "steplab";
pub const DEV_AUDIENCE: &str = "steplab";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    InductionCoordinator,
    EcfLead,
    Dpl,
    Admin,
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::InductionCoordinator => "induction_coordinator",
            Role::EcfLead => "ecf_lead",
            Role::Dpl => "dpl",
            Role::Admin => "admin",
            Role::Service => "service",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Role::InductionCoordinator, Role::EcfLead, Role::Dpl, Role::Admin, Role::Service]
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`: use induction_coordinator, ecf_lead, dpl, admin or service"))
    }
}

/// The JWT claims, as `steplab token` signs them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub school_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_partner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivery_partner_ids: Vec<String>,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// The claims Steplab reads from a verified token. `iss` and `aud` are
/// checked by the validation, so they are not read here (an identity
/// provider may send `aud` as a list). The time claims are read raw and
/// checked by [`TokenTimeLimits::check`], so that a malformed `exp` is
/// named as such rather than as a missing one.
#[derive(Debug, Deserialize)]
struct VerifiedClaims {
    sub: String,
    role: Role,
    #[serde(default)]
    school_id: Option<String>,
    #[serde(default)]
    delivery_partner_id: Option<String>,
    #[serde(default)]
    delivery_partner_ids: Vec<String>,
    #[serde(flatten)]
    times: TimeClaims,
}

/// `exp`, `iat` and `nbf` as the token carries them (any JSON value).
#[derive(Debug, Default, Deserialize)]
struct TimeClaims {
    #[serde(default)]
    exp: Option<serde_json::Value>,
    #[serde(default)]
    iat: Option<serde_json::Value>,
    #[serde(default)]
    nbf: Option<serde_json::Value>,
}

impl TokenTimeLimits {
    /// Checks a signed token's time claims at `now` (seconds since 1970):
    /// `exp` is required, a whole number of seconds, not past (give or take
    /// the skew) and at most the maximum lifetime (plus the skew) away;
    /// `iat`, when present, is not ahead of our clock by more than the skew
    /// and at most the maximum lifetime before `exp`; `nbf`, when present,
    /// is not ahead by more than the skew.
    fn check(&self, times: &TimeClaims, now: i64) -> Result<(), String> {
        let max = i64::try_from(self.max_lifetime.as_secs()).unwrap_or(i64::MAX);
        let skew = i64::try_from(self.clock_skew.as_secs()).unwrap_or(i64::MAX);
        let exp = match &times.exp {
            None | Some(serde_json::Value::Null) => return Err("the token has no `exp` claim".into()),
            Some(value) => seconds_since_1970("exp", value)?,
        };
        let iat = times.iat.as_ref().filter(|v| !v.is_null()).map(|v| seconds_since_1970("iat", v)).transpose()?;
        let nbf = times.nbf.as_ref().filter(|v| !v.is_null()).map(|v| seconds_since_1970("nbf", v)).transpose()?;
        if exp.saturating_add(skew) < now {
            return Err("the token has expired: get a new one".into());
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
        Ok(())
    }
}

/// A time claim as seconds since 1970: a JSON integer from 0 up. Anything
/// else (a string, a fraction, 1e20, a negative number) is named for what it is.
fn seconds_since_1970(claim: &str, value: &serde_json::Value) -> Result<i64, String> {
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

/// What a caller may reach, derived from a validated token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    InductionCoordinator { school_id: String },
    EcfLead { delivery_partner_id: String },
    Dpl { delivery_partner_ids: Vec<String> },
    Admin,
    Service,
}

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub sub: String,
    pub scope: Scope,
}

impl Caller {
    pub fn role(&self) -> Role {
        match self.scope {
            Scope::InductionCoordinator { .. } => Role::InductionCoordinator,
            Scope::EcfLead { .. } => Role::EcfLead,
            Scope::Dpl { .. } => Role::Dpl,
            Scope::Admin => Role::Admin,
            Scope::Service => Role::Service,
        }
    }

    /// The caller the interceptor left on the request. Its absence means the
    /// service was mounted without the interceptor: refuse rather than trust.
    pub fn from_request<T>(request: &Request<T>) -> Result<Caller, Status> {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("no authenticated caller on this request"))
    }

    fn from_claims(claims: VerifiedClaims) -> Result<Caller, String> {
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
    inner: Arc<VerifierInner>,
    time_limits: TokenTimeLimits,
}

struct VerifierInner {
    /// Keys without a `kid` (the HS256 secret, the PEM key): tried for any token.
    keys: Vec<TrustedKey>,
    /// The identity provider's JWKS, matched by `kid`.
    jwks: Option<Jwks>,
}

/// One key the verifier trusts and the single algorithm it is pinned to.
struct TrustedKey {
    /// The `kid` a token must name to be checked with this key; `None` for
    /// keys without one (they are tried whatever the token names).
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
}

impl TrustedKey {
    fn new(kid: Option<String>, algorithm: Algorithm, key: DecodingKey, issuer: &str, audience: &str) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        // `exp`, `iat` and `nbf` are checked by `TokenTimeLimits::check`,
        // which can say what is wrong with a malformed one.
        validation.set_required_spec_claims(&["iss", "aud", "sub"]);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        Self { kid, algorithm, key, validation, issuer: issuer.to_owned(), audience: audience.to_owned() }
    }

    /// Why this key refused the token, in words that name nothing secret.
    fn describe(&self, error: &jsonwebtoken::errors::Error) -> String {
        use jsonwebtoken::errors::ErrorKind;
        match error.kind() {
            ErrorKind::InvalidSignature => "the signature does not match any trusted key".into(),
            ErrorKind::ExpiredSignature => "the token has expired: get a new one".into(),
            ErrorKind::ImmatureSignature => "the token is not valid yet (`nbf` is in the future)".into(),
            ErrorKind::InvalidIssuer => format!("the token's issuer (`iss`) is not `{}`", self.issuer),
            ErrorKind::InvalidAudience => format!("the token's audience (`aud`) does not include `{}`", self.audience),
            ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
            ErrorKind::Json(e) => format!("the token's claims are not Steplab's: {e}"),
            _ => format!("invalid token: {error}"),
        }
    }
}

/// How often an unknown `kid` may make the verifier read the JWKS file again.
const JWKS_RELOAD_INTERVAL: Duration = Duration::from_secs(30);

/// The identity provider's key set. A token naming a `kid` the set lacks makes
/// the verifier re-read the file (at most every [`JWKS_RELOAD_INTERVAL`]), so
/// a rotated key published in the mounted file is picked up without a restart.
struct Jwks {
    path: PathBuf,
    issuer: String,
    audience: String,
    keys: RwLock<Arc<Vec<TrustedKey>>>,
    last_load: Mutex<Instant>,
}

impl Jwks {
    fn load(path: &Path, issuer: &str, audience: &str) -> Result<Self, ConfigError> {
        let keys = load_jwks(path, issuer, audience)?;
        Ok(Self {
            path: path.to_owned(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            keys: RwLock::new(Arc::new(keys)),
            last_load: Mutex::new(Instant::now()),
        })
    }

    fn current(&self) -> Arc<Vec<TrustedKey>> {
        match self.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The current keys, re-read from the file first when `kid` is unknown
    /// and the last read is old enough.
    fn keys_for(&self, kid: Option<&str>) -> Arc<Vec<TrustedKey>> {
        let keys = self.current();
        let Some(kid) = kid else { return keys };
        if keys.iter().any(|k| k.kid.as_deref() == Some(kid)) {
            return keys;
        }
        let Ok(mut last_load) = self.last_load.lock() else { return keys };
        if last_load.elapsed() < JWKS_RELOAD_INTERVAL {
            return keys;
        }
        *last_load = Instant::now();
        match load_jwks(&self.path, &self.issuer, &self.audience) {
            Ok(fresh) => {
                tracing::info!(kid, keys = fresh.len(), "token names an unknown kid: re-read STEPLAB_JWKS_FILE");
                let fresh = Arc::new(fresh);
                match self.keys.write() {
                    Ok(mut keys) => *keys = fresh.clone(),
                    Err(poisoned) => *poisoned.into_inner() = fresh.clone(),
                }
                fresh
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-read STEPLAB_JWKS_FILE; keeping the keys loaded before");
                keys
            }
        }
    }
}

impl JwtVerifier {
    /// The dev verifier: HS256 tokens that `steplab token` mints.
    pub fn hs256(secret: &[u8]) -> Result<Self, jsonwebtoken::errors::Error> {
        let key = TrustedKey::new(None, Algorithm::HS256, DecodingKey::from_secret(secret)?, DEV_ISSUER, DEV_AUDIENCE);
        Ok(Self {
            inner: Arc::new(VerifierInner { keys: vec![key], jwks: None }),
            time_limits: TokenTimeLimits::default(),
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
        Ok(Self { inner: Arc::new(VerifierInner { keys, jwks }), time_limits: TokenTimeLimits::default() })
    }

    /// The same keys with other lifetime and clock-skew limits.
    pub fn with_time_limits(mut self, time_limits: TokenTimeLimits) -> Self {
        self.time_limits = time_limits;
        self
    }

    pub fn verify(&self, token: &str) -> Result<Caller, String> {
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
                    self.time_limits.check(&data.claims.times, chrono::Utc::now().timestamp())?;
                    return Caller::from_claims(data.claims);
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
            let refuse = |reason: String| {
                tracing::warn!(reason = %reason, "request refused: UNAUTHENTICATED");
                Status::unauthenticated(reason)
            };
            let header = request
                .metadata()
                .get("authorization")
                .ok_or_else(|| refuse("missing `authorization: Bearer <token>` metadata".into()))?;
            let value = header.to_str().map_err(|_| refuse("the authorization header is not text".into()))?;
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .ok_or_else(|| refuse("the authorization header must be `Bearer <token>`".into()))?;
            let caller = verifier.verify(token.trim()).map_err(refuse)?;
            if let Some(call) = request.extensions().get::<std::sync::Arc<crate::observability::CallContext>>() {
                call.set_actor(&caller);
            }
            request.extensions_mut().insert(caller);
            Ok(request)
        }
    }
}

/// Reads `STEPLAB_JWT_PUBLIC_KEY_FILE`: one RSA (RS256) or P-256 (ES256)
/// public key in PEM (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`).
fn load_pem_public_key(path: &Path) -> Result<(Algorithm, DecodingKey), ConfigError> {
    const VARIABLE: &str = "STEPLAB_JWT_PUBLIC_KEY_FILE";
    let fail = |problem: String| ConfigError::new(VARIABLE, format!("{}: {problem}", path.display()));
    let pem = std::fs::read(path).map_err(|e| fail(format!("cannot be read ({e})")))?;
    let text = String::from_utf8_lossy(&pem);
    let label = text.lines().find_map(|line| line.trim().strip_prefix("-----BEGIN ")?.strip_suffix("-----"));
    match label {
        Some("PUBLIC KEY" | "RSA PUBLIC KEY") => {}
        Some(label) if label.contains("PRIVATE") => {
            return Err(fail(format!(
                "holds a private key ({label}): give Steplab only the identity provider's public key"
            )));
        }
        Some(label) => {
            return Err(fail(format!(
                "holds a {label}, not a public key: extract it with `openssl x509 -pubkey -noout` or `openssl pkey -pubout`"
            )));
        }
        None => return Err(fail("is not a PEM file: expected -----BEGIN PUBLIC KEY-----".into())),
    }
    if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
        return Ok((Algorithm::RS256, key));
    }
    match DecodingKey::from_ec_pem(&pem) {
        Ok(key) if is_p256_point(&key) => Ok((Algorithm::ES256, key)),
        Ok(_) => Err(fail("is an EC key on a curve other than P-256: only ES256 (P-256) is accepted".into())),
        Err(_) => Err(fail("is neither an RSA nor a P-256 public key".into())),
    }
}

/// A P-256 public key is the 65-byte uncompressed point 0x04 || x || y.
fn is_p256_point(key: &DecodingKey) -> bool {
    key.try_get_as_bytes().is_ok_and(|point| point.len() == 65 && point[0] == 4)
}

/// Reads `STEPLAB_JWKS_FILE`: every signing key with a `kid` that is RSA
/// (RS256) or P-256 (ES256), its algorithm taken from the key (`alg` when
/// present must agree). Encryption keys are ignored; other keys are skipped
/// with a warning; no usable key at all is an error.
fn load_jwks(path: &Path, issuer: &str, audience: &str) -> Result<Vec<TrustedKey>, ConfigError> {
    const VARIABLE: &str = "STEPLAB_JWKS_FILE";
    let fail = |problem: String| ConfigError::new(VARIABLE, format!("{}: {problem}", path.display()));
    #[derive(Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot be read ({e})")))?;
    let set: RawSet =
        serde_json::from_str(&text).map_err(|e| fail(format!("is not a JWKS (`{{\"keys\": [...]}}`): {e}")))?;
    let mut keys: Vec<TrustedKey> = Vec::new();
    let mut skipped = Vec::new();
    for (index, value) in set.keys.into_iter().enumerate() {
        match jwk_to_key(value, issuer, audience) {
            Ok(Some(key)) => {
                if keys.iter().any(|k| k.kid == key.kid) {
                    return Err(fail(format!("two keys have kid `{}`", key.kid.unwrap_or_default())));
                }
                keys.push(key);
            }
            Ok(None) => {}
            Err(why) => skipped.push(format!("key {index}: {why}")),
        }
    }
    if keys.is_empty() {
        let why = if skipped.is_empty() { String::new() } else { format!(" ({})", skipped.join("; ")) };
        return Err(fail(format!("has no RS256 or ES256 signing key with a `kid`{why}")));
    }
    if !skipped.is_empty() {
        tracing::warn!(skipped = %skipped.join("; "), "STEPLAB_JWKS_FILE: some keys are not used");
    }
    Ok(keys)
}

fn jwk_to_key(value: serde_json::Value, issuer: &str, audience: &str) -> Result<Option<TrustedKey>, String> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| format!("not a JWK ({e})"))?;
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return Ok(None);
    }
    let kid = jwk.common.key_id.clone().filter(|kid| !kid.trim().is_empty()).ok_or("has no `kid`")?;
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        (AlgorithmParameters::EllipticCurve(p), None | Some(KeyAlgorithm::ES256)) if p.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        (_, Some(alg)) => return Err(format!("kid `{kid}`: {alg} is not accepted (RS256 and ES256 are)")),
        (_, None) => return Err(format!("kid `{kid}`: only RSA (RS256) and P-256 (ES256) keys are accepted")),
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("kid `{kid}`: {e}"))?;
    if algorithm == Algorithm::ES256 && !is_p256_point(&key) {
        return Err(format!("kid `{kid}`: `x` and `y` are not a P-256 point"));
    }
    Ok(Some(TrustedKey::new(Some(kid), algorithm, key, issuer, audience)))
}

/// What a dev token grants; `steplab token` builds one from its flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub sub: String,
    pub role: Role,
    pub school_id: Option<String>,
    pub delivery_partner_ids: Vec<String>,
    pub ttl: chrono::Duration,
}

/// Mints an HS256 token the services accept.
pub fn mint_hs256(secret: &[u8], request: &TokenRequest) -> Result<String, jsonwebtoken::errors::Error> {
    let now = chrono::Utc::now().timestamp();
    let (delivery_partner_id, delivery_partner_ids) = match request.role {
        Role::Dpl => (None, request.delivery_partner_ids.clone()),
        _ => (request.delivery_partner_ids.first().cloned(), Vec::new()),
    };
    let claims = Claims {
        sub: request.sub.clone(),
        role: request.role,
        school_id: request.school_id.clone(),
        delivery_partner_id,
        delivery_partner_ids,
        iss: DEV_ISSUER.to_owned(),
        aud: DEV_AUDIENCE.to_owned(),
        iat: now,
        exp: now + request.ttl.num_seconds(),
    };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret)?)
}

/// The verifier a service uses, from its configuration: the HS256 dev secret
/// alone by default; with an identity provider configured, its keys, plus
/// HS256 only if `STEPLAB_JWT_SECRET` is set too (see
/// [`AuthSettings::hs256_secret`]).
pub fn verifier(config: &AuthSettings) -> anyhow::Result<JwtVerifier> {
    let secret = config.hs256_secret().map(load_secret).transpose().map_err(anyhow::Error::msg)?;
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

/// Reads the HS256 secret from the configured source.
pub fn load_secret(source: &JwtSecretSource) -> Result<Vec<u8>, String> {
    match source {
        JwtSecretSource::Value(v) => Ok(v.as_bytes().to_vec()),
        JwtSecretSource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "STEPLAB_JWT_SECRET is not set and the dev secret {} cannot be read ({e}): set STEPLAB_JWT_SECRET or run `steplab up` once",
                    path.display()
                )
            })?;
            let secret = text.trim();
            if secret.len() < 32 {
                return Err(format!("the dev secret in {} is shorter than 32 characters", path.display()));
            }
            Ok(secret.as_bytes().to_vec())
        }
    }
}

/// Creates the dev secret file (mode 0600) unless it exists; returns the secret.
pub fn ensure_dev_secret(path: &Path) -> std::io::Result<Vec<u8>> {
    if let Ok(existing) = std::fs::read_to_string(path)
        && existing.trim().len() >= 32
    {
        return Ok(existing.trim().as_bytes().to_vec());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    use rand::Rng;
    let secret: String = rand::rng().sample_iter(rand::distr::Alphanumeric).take(48).map(char::from).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, secret.as_bytes())?;
    Ok(secret.into_bytes())
}

/// The `service` token the participant service's relay presents to content
/// release and payments: either minted here with the HS256 secret (dev, and
/// deployments that keep a shared secret), renewed well before it expires, or
/// the token an operator configures in `STEPLAB_SERVICE_TOKEN_FILE` (typically
/// issued by the identity provider), read afresh for every delivery so a
/// rotated token is used as soon as the file changes.
pub struct ServiceTokens {
    source: ServiceTokenSource,
    cached: std::sync::Mutex<Option<(String, i64)>>,
    /// How long a minted token lives: an hour, or less when the services
    /// accept no token that long (`STEPLAB_TOKEN_MAX_LIFETIME_SECONDS`).
    ttl: chrono::Duration,
}

enum ServiceTokenSource {
    Minted(Vec<u8>),
    File(PathBuf),
}

impl ServiceTokens {
    /// Mints its own HS256 `service` tokens with `secret`.
    pub fn new(secret: Vec<u8>) -> Self {
        Self {
            source: ServiceTokenSource::Minted(secret),
            cached: std::sync::Mutex::new(None),
            ttl: chrono::Duration::hours(1),
        }
    }

    /// Presents the token in `path`, checked now so a missing or empty file
    /// stops the start-up with an error naming `STEPLAB_SERVICE_TOKEN_FILE`.
    pub fn from_file(path: PathBuf) -> Result<Self, ConfigError> {
        read_service_token(&path).map_err(|problem| ConfigError::new("STEPLAB_SERVICE_TOKEN_FILE", problem))?;
        Ok(Self {
            source: ServiceTokenSource::File(path),
            cached: std::sync::Mutex::new(None),
            ttl: chrono::Duration::hours(1),
        })
    }

    /// The operator's token file when `STEPLAB_SERVICE_TOKEN_FILE` is set,
    /// else tokens minted with the HS256 secret. With an identity provider
    /// and no HS256 secret there is nothing to mint with: the file is required.
    pub fn from_config(config: &AuthSettings) -> anyhow::Result<Self> {
        if let Some(path) = &config.service_token_file {
            return Ok(Self::from_file(path.clone())?);
        }
        match config.hs256_secret() {
            Some(source) => {
                let mut tokens = Self::new(load_secret(source).map_err(anyhow::Error::msg)?);
                let max = chrono::Duration::from_std(config.token_time_limits.max_lifetime).unwrap_or(tokens.ttl);
                tokens.ttl = tokens.ttl.min(max);
                Ok(tokens)
            }
            None => Err(ConfigError::new(
                "STEPLAB_SERVICE_TOKEN_FILE",
                "is required when tokens come from an identity provider and STEPLAB_JWT_SECRET is not set: \
                 the relay presents that `service` token to content release and payments",
            )
            .into()),
        }
    }
}

/// The token in an operator's token file: one JWT, surrounding whitespace ignored.
fn read_service_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot be read ({e})", path.display()))?;
    let token = text.trim();
    let parts: Vec<&str> = token.split('.').collect();
    if token.is_empty() {
        return Err(format!("{} is empty: write the relay's `service` token into it", path.display()));
    }
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) || token.chars().any(char::is_whitespace) {
        return Err(format!("{} does not hold one JWT (header.payload.signature)", path.display()));
    }
    Ok(token.to_owned())
}

impl crate::outbox::TokenSource for ServiceTokens {
    fn bearer(&self) -> Result<String, String> {
        let secret = match &self.source {
            ServiceTokenSource::File(path) => {
                return read_service_token(path).map_err(|e| format!("STEPLAB_SERVICE_TOKEN_FILE: {e}"));
            }
            ServiceTokenSource::Minted(secret) => secret,
        };
        let now = chrono::Utc::now().timestamp();
        let mut cached = self.cached.lock().map_err(|_| "token cache poisoned".to_string())?;
        if let Some((token, renew_at)) = cached.as_ref()
            && now < *renew_at
        {
            return Ok(token.clone());
        }
        let request = TokenRequest {
            sub: "steplab-participant-relay".into(),
            role: Role::Service,
            school_id: None,
            delivery_partner_ids: Vec::new(),
            ttl: self.ttl,
        };
        let token = mint_hs256(secret, &request).map_err(|e| format!("cannot mint the service token: {e}"))?;
        // Renewed at half its life, so a token in flight never expires.
        *cached = Some((token.clone(), now + self.ttl.num_seconds() / 2));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn token(role: Role, school: Option<&str>, dps: &[&str]) -> String {
        mint_hs256(
            SECRET,
            &TokenRequest {
                sub: "someone".into(),
                role,
                school_id: school.map(str::to_owned),
                delivery_partner_ids: dps.iter().map(|s| s.to_string()).collect(),
                ttl: chrono::Duration::hours(1),
            },
        )
        .expect("mint")
    }

    #[test]
    fn a_minted_token_verifies_with_its_scope() {
        let v = JwtVerifier::hs256(SECRET).expect("key");
        let caller = v.verify(&token(Role::Dpl, None, &["dp1", "dp2"])).expect("valid");
        assert_eq!(caller.scope, Scope::Dpl { delivery_partner_ids: vec!["dp1".into(), "dp2".into()] });
        let lead = v.verify(&token(Role::EcfLead, None, &["dp1"])).expect("valid");
        assert_eq!(lead.scope, Scope::EcfLead { delivery_partner_id: "dp1".into() });
    }

    #[test]
    fn a_role_without_its_scope_claim_is_refused() {
        let v = JwtVerifier::hs256(SECRET).expect("key");
        assert!(v.verify(&token(Role::InductionCoordinator, None, &[])).is_err());
        assert!(v.verify(&token(Role::EcfLead, None, &[])).is_err());
        assert!(v.verify(&token(Role::Dpl, None, &[])).is_err());
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let v = JwtVerifier::hs256(b"another-secret-another-secret-xx").expect("key");
        assert!(v.verify(&token(Role::Admin, None, &[])).is_err());
    }

    #[test]
    fn an_expired_token_is_refused() {
        let expired = mint_hs256(
            SECRET,
            &TokenRequest {
                sub: "x".into(),
                role: Role::Admin,
                school_id: None,
                delivery_partner_ids: vec![],
                ttl: chrono::Duration::hours(-2),
            },
        )
        .expect("mint");
        assert!(JwtVerifier::hs256(SECRET).expect("key").verify(&expired).is_err());
    }

    /// A dev token with these time claims (`null` leaves a claim out).
    fn dev_token_with_times(exp: serde_json::Value, iat: serde_json::Value, nbf: serde_json::Value) -> String {
        let mut claims = serde_json::json!({"sub": "x", "role": "admin", "iss": DEV_ISSUER, "aud": DEV_AUDIENCE});
        for (name, value) in [("exp", exp), ("iat", iat), ("nbf", nbf)] {
            if !value.is_null() {
                claims[name] = value;
            }
        }
        sign(Algorithm::HS256, None, &EncodingKey::from_secret(SECRET).expect("key"), &claims)
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn a_token_living_longer_than_the_maximum_lifetime_is_refused() {
        use serde_json::{Value, json};
        let v = JwtVerifier::hs256(SECRET).expect("key");
        let year_3000 = 32_503_680_000i64;
        for (exp, iat) in [
            (json!(year_3000), json!(now())),
            (json!(year_3000), Value::Null),
            (json!(now() + 25 * 3600), json!(now())),
            (json!(now() + 3600), json!(now() - 24 * 3600)),
        ] {
            let err = v.verify(&dev_token_with_times(exp.clone(), iat, Value::Null)).expect_err("too long");
            assert!(err.contains("STEPLAB_TOKEN_MAX_LIFETIME_SECONDS"), "exp {exp}: {err}");
        }
        assert!(v.verify(&dev_token_with_times(json!(now() + 24 * 3600), json!(now()), Value::Null)).is_ok());
        let short = v.clone().with_time_limits(TokenTimeLimits {
            max_lifetime: Duration::from_secs(600),
            clock_skew: Duration::from_secs(60),
        });
        assert!(short.verify(&dev_token_with_times(json!(now() + 3600), json!(now()), Value::Null)).is_err());
        assert!(short.verify(&dev_token_with_times(json!(now() + 600), json!(now()), Value::Null)).is_ok());
    }

    #[test]
    fn a_token_issued_or_valid_only_beyond_the_clock_skew_in_the_future_is_refused() {
        use serde_json::{Value, json};
        let v = JwtVerifier::hs256(SECRET).expect("key");
        let exp = json!(now() + 3600);
        let err = v.verify(&dev_token_with_times(exp.clone(), json!(now() + 600), Value::Null)).expect_err("iat");
        assert!(err.contains("`iat`") && err.contains("future"), "{err}");
        let err = v.verify(&dev_token_with_times(exp.clone(), json!(now()), json!(now() + 600))).expect_err("nbf");
        assert!(err.contains("`nbf`"), "{err}");
        // An issuer's clock a little ahead of ours is tolerated.
        assert!(v.verify(&dev_token_with_times(exp.clone(), json!(now() + 30), json!(now() + 30))).is_ok());
        let strict = v.with_time_limits(TokenTimeLimits { clock_skew: Duration::ZERO, ..TokenTimeLimits::default() });
        assert!(strict.verify(&dev_token_with_times(exp, json!(now() + 30), Value::Null)).is_err());
    }

    #[test]
    fn an_out_of_range_or_malformed_exp_is_named_as_such_not_as_missing() {
        use serde_json::{Value, json};
        let v = JwtVerifier::hs256(SECRET).expect("key");
        for exp in [json!(1e20), json!(-5), json!(1.5), json!(u64::MAX), json!(i64::MIN)] {
            let err = v.verify(&dev_token_with_times(exp.clone(), json!(now()), Value::Null)).expect_err("bad exp");
            assert!(err.contains("`exp`") && err.contains("out of range"), "exp {exp}: {err}");
        }
        // (An array or object `exp` is refused too, but by jsonwebtoken's own
        // claim parsing, which stops at it: "the token's claims are not Steplab's".)
        for exp in [json!("soon"), json!(true)] {
            let err = v.verify(&dev_token_with_times(exp.clone(), json!(now()), Value::Null)).expect_err("bad exp");
            assert!(err.contains("`exp`") && err.contains("not a number"), "exp {exp}: {err}");
        }
        let err = v.verify(&dev_token_with_times(json!(now() + 60), json!(1e20), Value::Null)).expect_err("bad iat");
        assert!(err.contains("`iat`") && err.contains("out of range"), "{err}");
        let err = v.verify(&dev_token_with_times(Value::Null, json!(now()), Value::Null)).expect_err("no exp");
        assert!(err.contains("no `exp` claim"), "{err}");
    }

    #[test]
    fn the_time_limits_hold_whatever_the_exp_iat_and_nbf() {
        // Every combination of claims around the edges: accepted exactly when
        // not expired, not from the future, and not living too long.
        let limits = TokenTimeLimits::default();
        let (max, skew, now) = (86_400i64, 60i64, 1_800_000_000i64);
        let offsets = [-max - 1, -skew - 1, -skew, -1, 0, 1, skew, skew + 1, max, max + skew, max + skew + 1];
        for exp in offsets.map(|o| now + o) {
            for iat in offsets.map(|o| Some(now + o)).into_iter().chain([None]) {
                for nbf in [None, Some(now), Some(now + skew), Some(now + skew + 1)] {
                    let times =
                        TimeClaims { exp: Some(exp.into()), iat: iat.map(Into::into), nbf: nbf.map(Into::into) };
                    let expected = exp + skew >= now
                        && nbf.is_none_or(|nbf| nbf <= now + skew)
                        && iat.is_none_or(|iat| iat <= now + skew && exp >= iat && exp - iat <= max)
                        && exp - now <= max + skew;
                    assert_eq!(limits.check(&times, now).is_ok(), expected, "exp {exp} iat {iat:?} nbf {nbf:?}");
                }
            }
        }
    }

    #[test]
    fn identity_provider_tokens_obey_the_same_time_limits() {
        let mut claims = idp_claims(ISSUER, AUDIENCE, 3600);
        claims["exp"] = serde_json::json!(32_503_680_000i64);
        let v = JwtVerifier::identity_provider(&idp(None, Some("jwks.json")), None).expect("jwks");
        let err = v.verify(&sign(Algorithm::RS256, Some("test-rsa-1"), &rsa_key(), &claims)).expect_err("year 3000");
        assert!(err.contains("STEPLAB_TOKEN_MAX_LIFETIME_SECONDS"), "{err}");
        claims["exp"] = serde_json::json!(1e20);
        let err = v.verify(&sign(Algorithm::RS256, Some("test-rsa-1"), &rsa_key(), &claims)).expect_err("1e20");
        assert!(err.contains("out of range"), "{err}");
    }

    // --- production auth: identity provider keys (test-only fixtures, see tests/fixtures/README.md) ---

    const ISSUER: &str = "https://idp.test.example/realms/steplab";
    const AUDIENCE: &str = "steplab-api";
    /// base64url of `{"alg":"none","typ":"JWT"}` and of the same with `"kid":"test-rsa-1"`.
    const NONE_HEADER: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
    const NONE_HEADER_WITH_KID: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIiwia2lkIjoidGVzdC1yc2EtMSJ9";

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
    }

    fn fixture_bytes(name: &str) -> Vec<u8> {
        std::fs::read(fixture(name)).expect("fixture")
    }

    fn idp(pem: Option<&str>, jwks: Option<&str>) -> IdentityProvider {
        IdentityProvider {
            public_key_file: pem.map(fixture),
            jwks_file: jwks.map(fixture),
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
        }
    }

    fn idp_claims(iss: &str, aud: &str, exp_in: i64) -> serde_json::Value {
        let now = chrono::Utc::now().timestamp();
        serde_json::json!({
            "sub": "lms-backend",
            "role": "ecf_lead",
            "delivery_partner_id": "dp-1",
            "iss": iss,
            "aud": [aud, "another-api"],
            "iat": now,
            "exp": now + exp_in,
        })
    }

    fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &serde_json::Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, key).expect("sign")
    }

    fn rsa_key() -> EncodingKey {
        EncodingKey::from_rsa_pem(&fixture_bytes("rsa-private.pem")).expect("rsa key")
    }

    fn ec_key() -> EncodingKey {
        EncodingKey::from_ec_pem(&fixture_bytes("ec-private.pem")).expect("ec key")
    }

    fn rs256(kid: Option<&str>) -> String {
        sign(Algorithm::RS256, kid, &rsa_key(), &idp_claims(ISSUER, AUDIENCE, 3600))
    }

    fn es256(kid: Option<&str>) -> String {
        sign(Algorithm::ES256, kid, &ec_key(), &idp_claims(ISSUER, AUDIENCE, 3600))
    }

    fn every_idp_verifier() -> Vec<(&'static str, JwtVerifier)> {
        vec![
            ("rsa pem", JwtVerifier::identity_provider(&idp(Some("rsa-public.pem"), None), None).expect("pem")),
            ("jwks", JwtVerifier::identity_provider(&idp(None, Some("jwks.json")), None).expect("jwks")),
            (
                "jwks + dev secret",
                JwtVerifier::identity_provider(&idp(Some("rsa-public.pem"), Some("jwks.json")), Some(SECRET))
                    .expect("both"),
            ),
        ]
    }

    #[test]
    fn rs256_and_es256_tokens_from_pem_files_are_accepted() {
        let rsa = JwtVerifier::identity_provider(&idp(Some("rsa-public.pem"), None), None).expect("rsa pem");
        let caller = rsa.verify(&rs256(None)).expect("rs256 from pem");
        assert_eq!(
            caller,
            Caller { sub: "lms-backend".into(), scope: Scope::EcfLead { delivery_partner_id: "dp-1".into() } }
        );
        // A PEM key has no kid: a token naming one is still checked with it.
        assert!(rsa.verify(&rs256(Some("whatever-the-idp-calls-it"))).is_ok());
        let ec = JwtVerifier::identity_provider(&idp(Some("ec-public.pem"), None), None).expect("ec pem");
        assert!(ec.verify(&es256(None)).is_ok(), "es256 from pem");
    }

    #[test]
    fn rs256_and_es256_tokens_from_a_jwks_are_accepted_by_kid() {
        let v = JwtVerifier::identity_provider(&idp(None, Some("jwks.json")), None).expect("jwks");
        assert!(v.verify(&rs256(Some("test-rsa-1"))).is_ok());
        assert!(v.verify(&es256(Some("test-ec-1"))).is_ok());
        // The kid chooses the key: an RSA-signed token naming the EC key is refused.
        let err = v.verify(&rs256(Some("test-ec-1"))).expect_err("kid of another key");
        assert!(err.contains("no trusted RS256 key has kid `test-ec-1`"), "{err}");
        let err = v.verify(&rs256(Some("rotated-away"))).expect_err("unknown kid");
        assert!(err.contains("no trusted RS256 key has kid `rotated-away`"), "{err}");
        let err = v.verify(&rs256(None)).expect_err("no kid");
        assert!(err.contains("kid"), "{err}");
        // The encryption key in the set is never used to verify.
        assert!(v.verify(&rs256(Some("test-rsa-enc"))).is_err());
    }

    #[test]
    fn dev_tokens_still_verify_beside_the_identity_provider_when_the_secret_is_set() {
        let v = JwtVerifier::identity_provider(&idp(None, Some("jwks.json")), Some(SECRET)).expect("both");
        assert!(v.verify(&token(Role::Admin, None, &[])).is_ok());
        let without = JwtVerifier::identity_provider(&idp(None, Some("jwks.json")), None).expect("idp only");
        let err = without.verify(&token(Role::Admin, None, &[])).expect_err("no HS256 key");
        assert!(err.contains("HS256"), "{err}");
    }

    #[test]
    fn a_wrong_issuer_is_refused() {
        let wrong = idp_claims("https://evil.example", AUDIENCE, 3600);
        for (name, v) in every_idp_verifier() {
            let err = v.verify(&sign(Algorithm::RS256, Some("test-rsa-1"), &rsa_key(), &wrong)).expect_err(name);
            assert!(err.contains("issuer"), "{name}: {err}");
        }
    }

    #[test]
    fn a_wrong_audience_is_refused() {
        let wrong = idp_claims(ISSUER, "some-other-api", 3600);
        for (name, v) in every_idp_verifier() {
            let err = v.verify(&sign(Algorithm::RS256, Some("test-rsa-1"), &rsa_key(), &wrong)).expect_err(name);
            assert!(err.contains("audience"), "{name}: {err}");
        }
    }

    #[test]
    fn an_expired_identity_provider_token_is_refused() {
        let expired = idp_claims(ISSUER, AUDIENCE, -3600);
        for (name, v) in every_idp_verifier() {
            let err = v.verify(&sign(Algorithm::RS256, Some("test-rsa-1"), &rsa_key(), &expired)).expect_err(name);
            assert!(err.contains("expired"), "{name}: {err}");
        }
        let v = JwtVerifier::identity_provider(&idp(None, Some("jwks.json")), None).expect("jwks");
        let err = v
            .verify(&sign(Algorithm::ES256, Some("test-ec-1"), &ec_key(), &idp_claims(ISSUER, AUDIENCE, -3600)))
            .expect_err("es256 expired");
        assert!(err.contains("expired"), "{err}");
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let other = EncodingKey::from_rsa_pem(&fixture_bytes("other-rsa-private.pem")).expect("other key");
        let claims = idp_claims(ISSUER, AUDIENCE, 3600);
        for (name, v) in every_idp_verifier() {
            let err = v.verify(&sign(Algorithm::RS256, Some("test-rsa-1"), &other, &claims)).expect_err(name);
            assert!(err.contains("signature"), "{name}: {err}");
        }
    }

    #[test]
    fn an_alg_none_token_is_refused() {
        let valid = rs256(Some("test-rsa-1"));
        let payload = valid.split('.').nth(1).expect("payload");
        for (name, v) in every_idp_verifier() {
            for header in [NONE_HEADER, NONE_HEADER_WITH_KID] {
                for signature in ["", "c2lnbmF0dXJl"] {
                    let err = v.verify(&format!("{header}.{payload}.{signature}")).expect_err(name);
                    assert!(err.contains("none"), "{name}: {err}");
                }
            }
        }
        let dev = JwtVerifier::hs256(SECRET).expect("dev");
        assert!(dev.verify(&format!("{NONE_HEADER}.{payload}.")).is_err());
    }

    #[test]
    fn an_hs256_token_signed_with_the_rsa_public_key_bytes_is_refused() {
        // Algorithm confusion: a verifier that let the header pick HMAC would
        // take the public key as the shared secret and accept this.
        let public_pem = fixture_bytes("rsa-public.pem");
        let forged_key = EncodingKey::from_secret(&public_pem).expect("hmac key");
        let claims = idp_claims(ISSUER, AUDIENCE, 3600);
        for (name, v) in every_idp_verifier() {
            for kid in [None, Some("test-rsa-1")] {
                assert!(v.verify(&sign(Algorithm::HS256, kid, &forged_key, &claims)).is_err(), "{name} {kid:?}");
            }
        }
        // The dev claims (iss/aud `steplab`) and the JWKS modulus as the secret fare no better.
        let dev_claims = serde_json::to_value(Claims {
            sub: "x".into(),
            role: Role::Admin,
            school_id: None,
            delivery_partner_id: None,
            delivery_partner_ids: vec![],
            iss: DEV_ISSUER.into(),
            aud: DEV_AUDIENCE.into(),
            iat: chrono::Utc::now().timestamp(),
            exp: chrono::Utc::now().timestamp() + 600,
        })
        .expect("claims");
        let jwks = fixture_bytes("jwks.json");
        for (name, v) in every_idp_verifier() {
            for secret in [&public_pem, &jwks] {
                let forged = EncodingKey::from_secret(secret).expect("hmac key");
                assert!(v.verify(&sign(Algorithm::HS256, None, &forged, &dev_claims)).is_err(), "{name}");
            }
        }
    }

    #[test]
    fn key_files_that_cannot_serve_are_start_up_errors_naming_their_variable() {
        let dir = tempfile::tempdir().expect("dir");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            path
        };
        let private = fixture("rsa-private.pem");
        let cases = [
            (Some(dir.path().join("missing.pem")), None, "STEPLAB_JWT_PUBLIC_KEY_FILE", "cannot be read"),
            (Some(private), None, "STEPLAB_JWT_PUBLIC_KEY_FILE", "private key"),
            (Some(write("junk.pem", "hello")), None, "STEPLAB_JWT_PUBLIC_KEY_FILE", "not a PEM"),
            (None, Some(write("empty.json", r#"{"keys": []}"#)), "STEPLAB_JWKS_FILE", "no RS256 or ES256"),
            (None, Some(write("bad.json", "[1, 2]")), "STEPLAB_JWKS_FILE", "not a JWKS"),
            (
                None,
                Some(write("hs.json", r#"{"keys": [{"kty": "oct", "kid": "s", "alg": "HS256", "k": "c2VjcmV0"}]}"#)),
                "STEPLAB_JWKS_FILE",
                "HS256 is not accepted",
            ),
            (
                None,
                Some(write(
                    "nokid.json",
                    r#"{"keys": [{"kty": "EC", "crv": "P-256", "x": "h8lfL4pnqSYcDbzPur9Kujqo_sgoieiHOy075yLxuUI", "y": "2mdo22iA5tejWx1_Pwm03CXWrYzCgyC_Kx29UXXXBBo"}]}"#,
                )),
                "STEPLAB_JWKS_FILE",
                "kid",
            ),
        ];
        for (pem, jwks, variable, problem) in cases {
            let idp = IdentityProvider {
                public_key_file: pem,
                jwks_file: jwks,
                issuer: ISSUER.into(),
                audience: AUDIENCE.into(),
            };
            let err = JwtVerifier::identity_provider(&idp, None).err().expect(problem);
            assert_eq!(err.variable, variable, "{err}");
            assert!(err.problem.contains(problem), "{err}");
        }
    }

    #[test]
    fn a_key_rotated_into_the_jwks_file_is_picked_up_without_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("jwks.json");
        let full: serde_json::Value = serde_json::from_slice(&fixture_bytes("jwks.json")).expect("json");
        let only_rsa = serde_json::json!({"keys": [full["keys"][0].clone()]});
        std::fs::write(&path, only_rsa.to_string()).expect("write");
        let v = JwtVerifier::identity_provider(
            &IdentityProvider {
                public_key_file: None,
                jwks_file: Some(path.clone()),
                issuer: ISSUER.into(),
                audience: AUDIENCE.into(),
            },
            None,
        )
        .expect("jwks");
        assert!(v.verify(&es256(Some("test-ec-1"))).is_err(), "not published yet");
        std::fs::write(&path, full.to_string()).expect("rotate");
        // Re-reading is rate-limited; pretend the last read is old.
        let jwks = v.inner.jwks.as_ref().expect("jwks");
        *jwks.last_load.lock().expect("lock") = Instant::now() - JWKS_RELOAD_INTERVAL;
        assert!(v.verify(&es256(Some("test-ec-1"))).is_ok(), "published");
    }

    #[test]
    fn the_relay_reads_an_operator_token_file_afresh_for_every_delivery() {
        use crate::outbox::TokenSource;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("token");
        let first = rs256(Some("test-rsa-1"));
        std::fs::write(&path, format!("{first}\n")).expect("write");
        let tokens = ServiceTokens::from_file(path.clone()).expect("valid file");
        assert_eq!(tokens.bearer().expect("token"), first);
        let rotated = es256(Some("test-ec-1"));
        std::fs::write(&path, &rotated).expect("rotate");
        assert_eq!(tokens.bearer().expect("token"), rotated);

        for text in ["", "  \n", "not a token", "a.b"] {
            std::fs::write(&path, text).expect("write");
            let err = ServiceTokens::from_file(path.clone()).err().expect(text);
            assert_eq!(err.variable, "STEPLAB_SERVICE_TOKEN_FILE");
        }
        let err = ServiceTokens::from_file(dir.path().join("missing")).err().expect("missing");
        assert_eq!(err.variable, "STEPLAB_SERVICE_TOKEN_FILE");
    }

    #[test]
    fn the_configuration_chooses_the_keys_and_the_relay_token() {
        use std::collections::HashMap;
        let dir = tempfile::tempdir().expect("dir");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, rs256(Some("test-rsa-1"))).expect("write");
        let config = |vars: &[(&str, String)]| {
            let mut map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            map.insert("STEPLAB_DATA_DIR".into(), dir.path().display().to_string());
            crate::config::Config::from_lookup(|k| map.get(k).cloned()).expect("valid config").auth
        };
        let jwks = ("STEPLAB_JWKS_FILE", fixture("jwks.json").display().to_string());
        let iss = ("STEPLAB_JWT_ISSUER", ISSUER.to_owned());
        let aud = ("STEPLAB_JWT_AUDIENCE", AUDIENCE.to_owned());

        // Production: the provider's keys only; the relay needs the token file.
        let production = config(&[jwks.clone(), iss.clone(), aud.clone()]);
        let v = verifier(&production).expect("verifier");
        assert!(v.verify(&rs256(Some("test-rsa-1"))).is_ok());
        assert!(v.verify(&token(Role::Admin, None, &[])).is_err(), "no dev tokens in production");
        let err = ServiceTokens::from_config(&production).err().expect("token file needed").to_string();
        assert!(err.contains("STEPLAB_SERVICE_TOKEN_FILE"), "{err}");
        let with_file = config(&[
            jwks.clone(),
            iss.clone(),
            aud.clone(),
            ("STEPLAB_SERVICE_TOKEN_FILE", token_file.display().to_string()),
        ]);
        assert!(ServiceTokens::from_config(&with_file).is_ok());

        // Dev: exactly as before, the HS256 secret for both.
        let dev = config(&[("STEPLAB_JWT_SECRET", String::from_utf8(SECRET.to_vec()).expect("utf8"))]);
        assert!(verifier(&dev).expect("verifier").verify(&token(Role::Admin, None, &[])).is_ok());
        assert!(ServiceTokens::from_config(&dev).is_ok());
    }
}
