//! Bearer JWT auth for the business services (DOMAIN.md, Roles). Health and
//! reflection are served outside the interceptor and need no token.
//!
//! A token carries `sub`, `role` and the role's scope claim. The interceptor
//! validates signature, expiry, issuer and audience, checks that the scope
//! claim the role needs is present, and leaves a [`Caller`] in the request's
//! extensions for the handler's permission checks.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
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

/// The JWT claims, as signed.
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

    fn from_claims(claims: Claims) -> Result<Caller, String> {
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
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<VerifierInner>,
}

struct VerifierInner {
    key: DecodingKey,
    validation: Validation,
}

impl JwtVerifier {
    pub fn hs256(secret: &[u8]) -> Result<Self, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[DEV_ISSUER]);
        validation.set_audience(&[DEV_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        let key = DecodingKey::from_secret(secret)?;
        Ok(Self { inner: Arc::new(VerifierInner { key, validation }) })
    }

    pub fn verify(&self, token: &str) -> Result<Caller, String> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.inner.key, &self.inner.validation)
            .map_err(|e| format!("invalid token: {e}"))?;
        Caller::from_claims(data.claims)
    }

    /// The tonic interceptor: UNAUTHENTICATED without a valid bearer token.
    pub fn interceptor(&self) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + use<> {
        let verifier = self.clone();
        move |mut request: Request<()>| {
            let header = request
                .metadata()
                .get("authorization")
                .ok_or_else(|| Status::unauthenticated("missing `authorization: Bearer <token>` metadata"))?;
            let value = header.to_str().map_err(|_| Status::unauthenticated("the authorization header is not text"))?;
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .ok_or_else(|| Status::unauthenticated("the authorization header must be `Bearer <token>`"))?;
            let caller = verifier.verify(token.trim()).map_err(Status::unauthenticated)?;
            request.extensions_mut().insert(caller);
            Ok(request)
        }
    }
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

/// The verifier a service uses, from its configuration.
pub fn verifier(config: &crate::config::Config) -> anyhow::Result<JwtVerifier> {
    let secret = load_secret(&config.jwt_secret).map_err(anyhow::Error::msg)?;
    Ok(JwtVerifier::hs256(&secret)?)
}

/// Reads the HS256 secret from the configured source.
pub fn load_secret(source: &crate::config::JwtSecretSource) -> Result<Vec<u8>, String> {
    match source {
        crate::config::JwtSecretSource::Value(v) => Ok(v.as_bytes().to_vec()),
        crate::config::JwtSecretSource::File(path) => {
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
}

/// Mints the participant service's own `service` token for the relay,
/// renewing it well before it expires.
pub struct ServiceTokens {
    secret: Vec<u8>,
    cached: std::sync::Mutex<Option<(String, i64)>>,
}

impl ServiceTokens {
    pub fn new(secret: Vec<u8>) -> Self {
        Self { secret, cached: std::sync::Mutex::new(None) }
    }
}

impl crate::outbox::TokenSource for ServiceTokens {
    fn bearer(&self) -> Result<String, String> {
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
            ttl: chrono::Duration::hours(1),
        };
        let token = mint_hs256(&self.secret, &request).map_err(|e| format!("cannot mint the service token: {e}"))?;
        *cached = Some((token.clone(), now + 30 * 60));
        Ok(token)
    }
}
