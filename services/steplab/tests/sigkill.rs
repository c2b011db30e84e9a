//! The participant service killed with SIGKILL while commands are pending:
//! three real `steplab serve` processes, driven with grpcurl. Nothing the
//! service answered before the kill is lost; every command arrives once it
//! and content release are back.

// Test helpers fail the test that called them.
#![allow(clippy::panic)]

#[path = "support/launch.rs"]
mod launch;
#[path = "support/tools.rs"]
mod tools;

use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use launch::Ports;

const SECRET: &str = "sigkill-test-secret-sigkill-test-secret-0123";

/// The shared `steplab` command, with this test's secret and a short relay
/// backoff so the restarted service delivers soon.
fn steplab(data: &Path, ports: &Ports) -> Command {
    let mut cmd = launch::steplab(data, ports);
    cmd.env("STEPLAB_JWT_SECRET", SECRET).env("STEPLAB_RELAY_MAX_BACKOFF_MS", "200");
    cmd
}

fn serve(data: &Path, ports: &Ports, service: &str, port: u16) -> Child {
    let child = steplab(data, ports)
        .args(["serve", service])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn steplab serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    while grpcurl(&["-plaintext", &format!("127.0.0.1:{port}"), "grpc.health.v1.Health/Check"]).status.code() != Some(0)
    {
        assert!(Instant::now() < deadline, "{service} did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

fn grpcurl(args: &[&str]) -> Output {
    tools::grpcurl().args(args).output().expect("run grpcurl")
}

fn call(port: u16, token: &str, method: &str, body: &str) -> serde_json::Value {
    let header = format!("authorization: Bearer {token}");
    let out = grpcurl(&["-plaintext", "-H", &header, "-d", body, &format!("127.0.0.1:{port}"), method]);
    assert!(out.status.success(), "{method}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

fn token(data: &Path, ports: &Ports, args: &[&str]) -> String {
    let out = steplab(data, ports).arg("token").args(args).output().expect("steplab token");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("utf8").trim().to_owned()
}

fn signal(child: &Child, name: &str) {
    assert!(Command::new("kill").args([name, &child.id().to_string()]).status().expect("kill").success());
}

#[test]
fn d4_a_sigkilled_participant_service_loses_no_pending_command() {
    let data = tempfile::tempdir().expect("temp dir");
    let ports = Ports::free();
    let (p, c) = (ports.participant, ports.content);
    let payments = serve(data.path(), &ports, "payments", ports.payments);
    // The DfE gateway hears of every ECT too (X1), with the DfE sync off.
    let gateway = serve(data.path(), &ports, "dfe-gateway", ports.dfe_gateway);
    let mut participant = serve(data.path(), &ports, "participant", p);

    let admin = token(data.path(), &ports, &["--role", "admin"]);
    let service = token(data.path(), &ports, &["--role", "service"]);
    let s = "steplab.participant.v1.ParticipantService";
    let dp = call(p, &admin, &format!("{s}/CreateDeliveryPartner"), r#"{"name": "North"}"#)["deliveryPartner"]["deliveryPartnerId"]
        .as_str()
        .expect("dp")
        .to_owned();
    let school = call(
        p,
        &admin,
        &format!("{s}/CreateSchool"),
        &format!(r#"{{"urn": "100001", "name": "Hill", "delivery_partner_id": "{dp}", "area_covered": true}}"#),
    )["school"]["schoolId"]
        .as_str()
        .expect("school")
        .to_owned();
    let mut ids = Vec::new();
    for n in 0..5 {
        let body = format!(
            r#"{{"school_id": "{school}", "kind": "PARTICIPANT_KIND_ECT", "full_name": "T {n}", "trn": "500000{n}", "registered_on": {{"year": 2026, "month": 9, "day": 1}}}}"#
        );
        let id = call(p, &admin, &format!("{s}/RegisterParticipant"), &body)["participant"]["participantId"]
            .as_str()
            .expect("id")
            .to_owned();
        let defer = format!(
            r#"{{"participant_id": "{id}", "reason": "DEFERRAL_REASON_LONG_TERM_SICKNESS", "deferral_date": {{"year": 2026, "month": 12, "day": 1}}, "expected_return_date": {{"year": 2027, "month": 4, "day": 1}}}}"#
        );
        call(p, &admin, &format!("{s}/DeferParticipant"), &defer);
        ids.push(id);
    }
    let pending = call(p, &admin, &format!("{s}/GetSyncStatus"), "{}")["pending"]
        .as_str()
        .unwrap_or("0")
        .parse::<i64>()
        .expect("count");
    assert!(pending >= 10, "content release is down, so its commands wait: {pending}");

    signal(&participant, "-KILL");
    let killed = participant.wait().expect("wait");
    assert!(!killed.success(), "SIGKILL ends it abruptly");

    let content = serve(data.path(), &ports, "content-release", c);
    participant = serve(data.path(), &ports, "participant", p);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = call(p, &admin, &format!("{s}/GetSyncStatus"), "{}");
        if status.get("pending").is_none() && status.get("parked").is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "still undelivered: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    for id in &ids {
        let state = call(
            c,
            &service,
            "steplab.content.v1.ContentReleaseService/GetReleaseState",
            &format!(r#"{{"participant_id": "{id}", "as_of": {{"year": 2027, "month": 1, "day": 4}}}}"#),
        );
        let holds = state["activeHolds"].as_array().expect("holds");
        assert_eq!(holds.len(), 1, "{state}");
        assert_eq!(holds[0]["kind"], "HOLD_KIND_DEFERRAL");
    }
    for mut child in [participant, content, payments, gateway] {
        signal(&child, "-TERM");
        assert!(child.wait().expect("wait").success(), "SIGTERM exits 0");
    }
}
