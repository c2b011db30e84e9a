//! Prism (npm `@stoplight/prism-cli`), the mock server that validates every
//! request against the DfE's OpenAPI description (`dfe/lead-provider-api-v3.json`)
//! and answers 422 with the reasons when one does not match. Provisioned by
//! the tests themselves: the `prism` on `PATH` if there is one; otherwise
//! `npm install --prefix target/tmp/tools/prism @stoplight/prism-cli@5`,
//! once per target directory, staged in a folder of this process's own and
//! renamed into place, so parallel test processes never race. Node.js and npm
//! must be installed; without them the test fails saying so.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

const PRISM_PACKAGE: &str = "@stoplight/prism-cli@5";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The DfE's description: the repository's copy (`dfe/`), else the team
/// folder beside the repository (`../shared/dfe/`).
pub fn spec() -> PathBuf {
    let root = repo_root();
    let candidates = [root.join("dfe/lead-provider-api-v3.json"), root.join("../shared/dfe/lead-provider-api-v3.json")];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| panic!("the DfE's OpenAPI description is in none of {candidates:?}"))
}

fn works(binary: &Path) -> bool {
    Command::new(binary).arg("--version").output().is_ok_and(|o| o.status.success())
}

fn prism_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| if works(Path::new("prism")) { PathBuf::from("prism") } else { provision() })
}

fn provision() -> PathBuf {
    let tools = repo_root().join("target/tmp/tools");
    let home = tools.join("prism");
    let binary = home.join("node_modules/.bin/prism");
    if works(&binary) {
        return binary;
    }
    let npm_ok = Command::new("npm").arg("--version").output().is_ok_and(|o| o.status.success());
    let node_ok = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(
        npm_ok && node_ok,
        "Node.js and npm are needed to run Prism (the DfE spec's mock server): install them (Debian: apt-get install nodejs npm)"
    );
    std::fs::create_dir_all(&tools).unwrap_or_else(|e| panic!("create {}: {e}", tools.display()));
    let staging = tools.join(format!("prism-staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let installed = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"])
        .arg(&staging)
        .arg(PRISM_PACKAGE)
        .status()
        .unwrap_or_else(|e| panic!("cannot run npm: {e}"));
    assert!(installed.success(), "npm install {PRISM_PACKAGE} failed");
    // The first process to finish wins; the others use its copy.
    if std::fs::rename(&staging, &home).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    assert!(works(&binary), "{} does not run after npm install", binary.display());
    binary
}

/// A running `prism mock` of the DfE's description on 127.0.0.1.
pub struct Prism {
    pub url: String,
    child: Child,
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prism {
    pub async fn start() -> Prism {
        let binary = prism_path().to_path_buf();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        let child = Command::new(&binary)
            .args(["mock", "-h", "127.0.0.1", "-p", &port.to_string()])
            .arg(spec())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let prism = Prism { url: format!("http://127.0.0.1:{port}"), child };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "Prism did not listen on {port} within 90 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        prism
    }
}
