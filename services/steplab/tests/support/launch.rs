//! Starting the `steplab` binary in the operator tests: four free ports and
//! a command that points the services at them and at the test's own data
//! dir, on a fixed today, with none of the developer's own secret or
//! database URLs leaking in.

// Test support: each test file uses the part it needs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub const STEPLAB: &str = env!("CARGO_BIN_EXE_steplab");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The services' listen ports.
pub struct Ports {
    pub participant: u16,
    pub content: u16,
    pub payments: u16,
    pub dfe_gateway: u16,
}

impl Ports {
    pub fn free() -> Self {
        Self { participant: free_port(), content: free_port(), payments: free_port(), dfe_gateway: free_port() }
    }
}

/// A `steplab` command for the services on `ports`, keeping its data in
/// `data_dir`.
pub fn steplab(data_dir: &Path, ports: &Ports) -> Command {
    let mut cmd = Command::new(STEPLAB);
    for var in [
        "STEPLAB_JWT_SECRET",
        "STEPLAB_PARTICIPANT_DATABASE_URL",
        "STEPLAB_CONTENT_DATABASE_URL",
        "STEPLAB_PAYMENTS_DATABASE_URL",
        "STEPLAB_DFE_GATEWAY_DATABASE_URL",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("STEPLAB_DATA_DIR", data_dir)
        .env("STEPLAB_TODAY", "2026-11-28")
        .env("STEPLAB_PARTICIPANT_LISTEN", format!("127.0.0.1:{}", ports.participant))
        .env("STEPLAB_CONTENT_LISTEN", format!("127.0.0.1:{}", ports.content))
        .env("STEPLAB_PAYMENTS_LISTEN", format!("127.0.0.1:{}", ports.payments))
        .env("STEPLAB_CONTENT_URL", format!("http://127.0.0.1:{}", ports.content))
        .env("STEPLAB_PAYMENTS_URL", format!("http://127.0.0.1:{}", ports.payments))
        .env("STEPLAB_DFE_GATEWAY_LISTEN", format!("127.0.0.1:{}", ports.dfe_gateway))
        .env("STEPLAB_DFE_GATEWAY_URL", format!("http://127.0.0.1:{}", ports.dfe_gateway));
    cmd
}

/// Starts `steplab up` and reads its welcome text up to the line that
/// says how to stop it: the running child and that text.
pub fn up(data_dir: &Path, ports: &Ports) -> (Child, String) {
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
    (child, welcome)
}
