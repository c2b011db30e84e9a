//! The keys a verifier trusts: the HS256 dev secret, an identity
//! provider's PEM public key and its JWKS (re-read when a token names an
//! unknown `kid`), each pinned to the one algorithm it verifies.

use crate::config::ConfigError;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// One key the verifier trusts and the single algorithm it is pinned to.
pub(super) struct TrustedKey {
    /// The `kid` a token must name to be checked with this key; `None` for
    /// keys without one (they are tried whatever the token names).
    pub(super) kid: Option<String>,
    pub(super) algorithm: Algorithm,
    pub(super) key: DecodingKey,
    pub(super) validation: Validation,
    pub(super) issuer: String,
    pub(super) audience: String,
}

impl TrustedKey {
    pub(super) fn new(
        kid: Option<String>,
        algorithm: Algorithm,
        key: DecodingKey,
        issuer: &str,
        audience: &str,
    ) -> Self {
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
    pub(super) fn describe(&self, error: &jsonwebtoken::errors::Error) -> String {
        use jsonwebtoken::errors::ErrorKind;
        match error.kind() {
            ErrorKind::InvalidSignature => "the signature does not match any trusted key".into(),
            ErrorKind::ExpiredSignature => super::verify::TOKEN_EXPIRED.into(),
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
pub(super) const JWKS_RELOAD_INTERVAL: Duration = Duration::from_secs(30);

/// The identity provider's key set. A token naming a `kid` the set lacks makes
/// the verifier re-read the file (at most every [`JWKS_RELOAD_INTERVAL`]), so
/// a rotated key published in the mounted file is picked up without a restart.
pub(super) struct Jwks {
    pub(super) path: PathBuf,
    pub(super) issuer: String,
    pub(super) audience: String,
    pub(super) keys: RwLock<Arc<Vec<TrustedKey>>>,
    pub(super) last_load: Mutex<Instant>,
}

impl Jwks {
    pub(super) fn load(path: &Path, issuer: &str, audience: &str) -> Result<Self, ConfigError> {
        let keys = load_jwks(path, issuer, audience)?;
        Ok(Self {
            path: path.to_owned(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            keys: RwLock::new(Arc::new(keys)),
            last_load: Mutex::new(Instant::now()),
        })
    }

    pub(super) fn current(&self) -> Arc<Vec<TrustedKey>> {
        match self.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The current keys, re-read from the file first when `kid` is unknown
    /// and the last read is old enough.
    pub(super) fn keys_for(&self, kid: Option<&str>) -> Arc<Vec<TrustedKey>> {
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

/// Reads `STEPLAB_JWT_PUBLIC_KEY_FILE`: one RSA (RS256) or P-256 (ES256)
/// public key in PEM (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`).
pub(super) fn load_pem_public_key(path: &Path) -> Result<(Algorithm, DecodingKey), ConfigError> {
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
pub(super) fn is_p256_point(key: &DecodingKey) -> bool {
    key.try_get_as_bytes().is_ok_and(|point| point.len() == 65 && point[0] == 4)
}

/// Reads `STEPLAB_JWKS_FILE`: every signing key with a `kid` that is RSA
/// (RS256) or P-256 (ES256), its algorithm taken from the key (`alg` when
/// present must agree). Encryption keys are ignored; other keys are skipped
/// with a warning; no usable key at all is an error.
pub(super) fn load_jwks(path: &Path, issuer: &str, audience: &str) -> Result<Vec<TrustedKey>, ConfigError> {
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

pub(super) fn jwk_to_key(value: serde_json::Value, issuer: &str, audience: &str) -> Result<Option<TrustedKey>, String> {
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
