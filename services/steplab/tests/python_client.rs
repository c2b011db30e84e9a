//! The Python example (examples/python/defer_and_read.py) as an integrator
//! runs it: stubs generated only from `proto/` with grpcio-tools, the
//! example run against `steplab up`. Proves the protos serve a client in
//! another language, the vendored google/type/date.proto need not be
//! generated (googleapis-common-protos provides it), and the rich error
//! details are readable with grpcio-status.

// Test helpers fail the test that called them.
#![allow(clippy::panic)]

#[path = "support/launch.rs"]
mod launch;
#[path = "support/tools.rs"]
mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;

use launch::{Ports, STEPLAB};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.proto` of ours under `proto/steplab`, relative to `proto/`.
fn our_protos(dir: &Path, root: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read proto dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            our_protos(&path, root, found);
        } else if path.extension().is_some_and(|e| e == "proto") {
            found.push(path.strip_prefix(root).expect("under proto/").display().to_string());
        }
    }
}

/// Python stubs from `proto/` alone, as buf.gen.yaml makes them, into `out`.
fn generate_stubs(python_path: &Path, out: &Path) {
    let proto = repo().join("proto");
    let mut files = Vec::new();
    our_protos(&proto.join("steplab"), &proto, &mut files);
    files.sort();
    let generated = Command::new("python3")
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(&proto)
        .arg(format!("--python_out={}", out.display()))
        .arg(format!("--pyi_out={}", out.display()))
        .arg(format!("--grpc_python_out={}", out.display()))
        .args(&files)
        .env("PYTHONPATH", python_path)
        .output()
        .expect("run grpc_tools.protoc");
    assert!(generated.status.success(), "stub generation failed: {}", String::from_utf8_lossy(&generated.stderr));
    assert!(!out.join("google").exists(), "the vendored google/type/date.proto must not be generated");
}

#[test]
fn the_python_example_registers_defers_and_reads_the_release_state_against_steplab_up() {
    let python = tools::python_grpc();
    let data = tempfile::tempdir().expect("temp dir");
    let stubs = data.path().join("gen");
    std::fs::create_dir_all(&stubs).expect("stub dir");
    generate_stubs(python, &stubs);

    let ports = Ports::free();
    let (mut child, _welcome) = launch::up(data.path(), &ports);
    let python_path = std::env::join_paths([stubs.as_path(), python]).expect("PYTHONPATH");
    let out = Command::new("python3")
        .arg(repo().join("examples/python/defer_and_read.py"))
        .env("PYTHONPATH", python_path)
        .env("STEPLAB_PARTICIPANT", format!("127.0.0.1:{}", ports.participant))
        .env("STEPLAB_CONTENT", format!("127.0.0.1:{}", ports.content))
        .env("STEPLAB_CLI", STEPLAB)
        .env("STEPLAB_DATA_DIR", data.path())
        // The stack's pinned today (support/launch.rs).
        .env("STEPLAB_TODAY", "2026-11-28")
        .output()
        .expect("run the Python example");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the Python example failed:\n{printed}");
    let mut rest = printed.as_str();
    for expected in [
        "registered ECT",
        "a 56-day pause is refused: FAILED_PRECONDITION PAUSE_TOO_LONG",
        // D9: the ECT's dry run lists the mentor deferred with them too, and
        // content release's outlook for them.
        "dry run: 2 status changes",
        "would change",
        "TRAINING_STATUS_DEFERRED on 2026-12-05",
        "next module of",
        // The dry run changed nothing.
        "after the dry run the ECT is TRAINING_STATUS_ACTIVE on the deferral date",
        "deferred; cascaded to",
        "content release holds modules from 2026-12-05",
    ] {
        match rest.find(expected) {
            Some(at) => rest = &rest[at + expected.len()..],
            None => panic!("the example's output lacks {expected:?} (in order):\n{printed}"),
        }
    }
}
