//! The operator runbook (docs/runbook.md), run exactly as written against
//! `steplab up` with the real grpcurl (and jq), so it cannot rot; and the
//! configuration reference (docs/configuration.md) checked against the
//! variables the code reads.

// Test helpers fail the test that called them.
#![allow(clippy::panic)]

#[path = "support/launch.rs"]
mod launch;
#[path = "support/tools.rs"]
mod tools;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use launch::{Ports, STEPLAB};

/// A page of the repository's `docs/`.
fn doc(page: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs").join(page);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The shell block between the runbook markers.
fn runbook(page: &str) -> String {
    let start = page.find("<!-- runbook:start -->").expect("runbook start marker");
    let end = page.find("<!-- runbook:end -->").expect("runbook end marker");
    let block = &page[start..end];
    let open = block.find("```sh\n").expect("sh fence") + "```sh\n".len();
    let close = block.rfind("```").expect("closing fence");
    block[open..close].to_owned()
}

#[test]
fn the_operator_runbook_runs_as_written_against_steplab_up() {
    let script = runbook(&doc("runbook.md"));
    let data = tempfile::tempdir().expect("temp dir");
    let ports = Ports::free();
    let addr = |p: u16| format!("127.0.0.1:{p}");
    let (mut child, _welcome) = launch::up(data.path(), &ports);
    let started = Instant::now();
    let out = Command::new("bash")
        // Errors interleaved with answers, as a person at a terminal sees them.
        .args(["-euo", "pipefail", "-c", &format!("exec 2>&1\n{script}")])
        .current_dir(data.path())
        .env("P", addr(ports.participant))
        .env("C", addr(ports.content))
        .env("M", addr(ports.payments))
        .env("STEPLAB", STEPLAB)
        .env("STEPLAB_DATA_DIR", data.path())
        .env("PATH", tools::path_with_tools())
        .output()
        .expect("bash runs the runbook");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the runbook failed after {:?}:\n{printed}", started.elapsed());
    // What each task must show, in order.
    let mut rest = printed.as_str();
    for expected in [
        r#""status":"TRAINING_STATUS_PAUSED""#,
        "PAUSE_TOO_LONG",
        "TRAINING_STATUS_ACTIVE",
        "PermissionDenied",
        r#""reason":"DEFERRAL_REASON_PARENTAL_LEAVE""#,
        r#""mentorInterim":true"#,
        r#"{"mentorInterim":false}"#,
        r#"{"temporary":true,"mentorOfRecord":true}"#,
        r#"{"backWithMentorOfRecord":true}"#,
        r#""status":"TRAINING_STATUS_WITHDRAWN""#,
        "DEFERRAL_TOO_SHORT",
        "RETURN_DATE_TOO_FAR",
        r#""kind":"REQUEST_KIND_LONG_DEFERRAL","status":"REQUEST_STATUS_APPROVED","latestReturnDate":{"year":2028,"month":3,"day":6}"#,
        r#"{"status":"TRAINING_STATUS_DEFERRED","returns":{"year":2028,"month":2,"day":7}}"#,
        "reinstated from 2026-11-28",
        "ACCESS_GRANTED",
        "ACCRUAL_STATE_ACCRUING",
        "COMMAND_STATE_DELIVERED",
        r#""checkedCount":"5","drifted":null"#,
    ] {
        let at = rest
            .find(expected)
            .unwrap_or_else(|| panic!("the runbook's output lacks {expected} (in order):\n{printed}"));
        rest = &rest[at + expected.len()..];
    }
}

#[test]
fn the_configuration_reference_lists_every_variable_the_code_reads() {
    let reference = doc("configuration.md");
    // The table's rows, first cell: one variable or several, each in backticks.
    let rows = reference.lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|'));
    let listed: Vec<String> = rows
        .filter_map(|row| row.split('|').nth(1))
        .flat_map(|cell| cell.split('`').skip(1).step_by(2).map(str::to_owned).collect::<Vec<_>>())
        .filter(|name| name.starts_with("STEPLAB_"))
        .collect();
    let declared = steplab_platform::config::variables();
    let twice = |names: &[String]| -> Vec<String> {
        let mut seen = std::collections::BTreeSet::new();
        names.iter().filter(|name| !seen.insert(*name)).cloned().collect()
    };
    assert!(twice(&declared).is_empty(), "the configuration declares {:?} twice", twice(&declared));
    assert!(twice(&listed).is_empty(), "docs/configuration.md lists {:?} twice", twice(&listed));
    let missing: Vec<&String> = declared.iter().filter(|name| !listed.contains(name)).collect();
    assert!(missing.is_empty(), "docs/configuration.md does not list {missing:?}");
    let unknown: Vec<&String> = listed.iter().filter(|name| !declared.contains(name)).collect();
    assert!(unknown.is_empty(), "docs/configuration.md lists {unknown:?}, which the code never reads");
}
