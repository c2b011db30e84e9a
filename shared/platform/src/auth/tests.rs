use super::keys::*;
use super::mint::*;
use super::verify::*;
use super::*;
use crate::config::{Config, IdentityProvider};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

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
                let times = TimeClaims { exp: Some(exp.into()), iat: iat.map(Into::into), nbf: nbf.map(Into::into) };
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
        Config::from_lookup(|k| map.get(k).cloned()).expect("valid config").auth
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

#[test]
fn a_remembered_token_is_still_refused_once_it_expires() {
    use serde_json::{Value, json};
    let v = JwtVerifier::hs256(SECRET)
        .expect("key")
        .with_time_limits(TokenTimeLimits { clock_skew: Duration::ZERO, ..TokenTimeLimits::default() });
    let token = dev_token_with_times(json!(now() + 1), json!(now()), Value::Null);
    assert!(v.verify(&token).is_ok(), "fresh");
    assert!(v.verify(&token).is_ok(), "remembered");
    std::thread::sleep(Duration::from_millis(2_200));
    assert_eq!(v.verify(&token).expect_err("past its exp"), TOKEN_EXPIRED);
}

#[test]
fn what_looser_time_limits_accepted_is_checked_again_under_stricter_ones() {
    use serde_json::{Value, json};
    let loose = JwtVerifier::hs256(SECRET).expect("key");
    let token = dev_token_with_times(json!(now() + 3600), json!(now()), Value::Null);
    assert!(loose.verify(&token).is_ok());
    let strict = loose.clone().with_time_limits(TokenTimeLimits {
        max_lifetime: Duration::from_secs(600),
        clock_skew: Duration::from_secs(60),
    });
    let err = strict.verify(&token).expect_err("lives an hour, ten minutes allowed");
    assert!(err.contains("STEPLAB_TOKEN_MAX_LIFETIME_SECONDS"), "{err}");
    assert!(loose.verify(&token).is_ok(), "the looser verifier still accepts it");
}

#[test]
fn a_token_remembered_under_one_identity_provider_key_set_is_checked_again_under_the_next() {
    let remembered = Remembered::default();
    let caller = Caller { sub: "someone".into(), scope: Scope::Admin };
    let before = Arc::new(Vec::new());
    let reloaded = Arc::new(Vec::new());
    remembered.put("token", &caller, now() + 60, Some(Arc::clone(&before)));
    assert_eq!(remembered.get("token", now(), 0, Some(&before)), Some(caller.clone()));
    assert_eq!(remembered.get("token", now(), 0, Some(&reloaded)), None, "the JWKS file was read again");
    assert_eq!(remembered.get("token", now(), 0, None), None);
    assert_eq!(remembered.get("another token", now(), 0, Some(&before)), None);
    remembered.put("static", &caller, now() + 60, None);
    assert_eq!(remembered.get("static", now(), 0, None), Some(caller));
}
