//! The tests provision their own tools (grpcurl, the Python gRPC packages)
//! with pip; this checks that a version manager's shim for `python3` cannot
//! fail that provisioning. A CI run failed because pyenv's shim follows
//! every `pip install` with a `pyenv rehash`, which failed against another
//! test process's rehash, after pip itself had installed everything.

#[path = "support/tools.rs"]
mod tools;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A `python3` shim like pyenv's, whose rehash after `pip install` always
/// loses the race: it runs the real command and then exits 1.
const SHIM_WHOSE_REHASH_FAILS: &str = r#"#!/usr/bin/env bash
python3 "$@" || exit $?
for arg in "$@"; do
  if [ "$arg" = install ]; then echo "pyenv: cannot rehash: shims isn't writable" >&2; exit 1; fi
done
"#;

#[test]
fn packages_install_with_the_interpreter_behind_a_shim_whose_rehash_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let shim = dir.path().join("python3");
    std::fs::write(&shim, SHIM_WHOSE_REHASH_FAILS).expect("write the shim");
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).expect("make the shim executable");
    // A small pure-Python package from the same index the tools come from.
    let package = ["six==1.16.0"];

    let through_shim = tools::pip_install_with(&shim, &dir.path().join("through-shim"), &package);
    assert!(through_shim.is_err(), "the shim must fail an install, or this test shows nothing");

    let interpreter = tools::interpreter_behind(&shim);
    assert_ne!(interpreter, shim, "the shim's interpreter is Python itself, not the shim");
    let target = dir.path().join("behind-shim");
    tools::pip_install_with(&interpreter, &target, &package).expect("install with the interpreter behind the shim");
    assert!(Path::new(&target).join("six.py").is_file(), "the package is in the target folder");
}
