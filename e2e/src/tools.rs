//! Programs some tests run that the machine may lack: `kubectl`, the versioned `kubectl.1.27` … `kubectl.1.33`
//! beside it, `python3`, `prometheus` and `promtool`.
//!
//! A test whose program is missing fails, naming the program and how to install it. With
//! `HNC_ALLOW_MISSING_TOOLS=1` it is skipped with a message instead (a laptop without kubectl), except when `CI`
//! is set (`.ci/run` exports `CI=1`): CI machines have every program, and a test that skipped there would pass
//! without having run.
//!
//! This one file is the rule for the whole workspace: `hnc-e2e` exports it, and the tests of `hnc-apisim` and
//! `hnc-plugin` include it with `#[path]` (they cannot depend on `hnc-e2e`, which depends on them).

#![allow(dead_code)] // each test binary that includes this file uses a different part

use std::path::PathBuf;
use std::process::Command;

/// Set to `1` to skip, rather than fail, tests whose program is missing (ignored when `CI` is set).
pub const ALLOW_MISSING_ENV: &str = "HNC_ALLOW_MISSING_TOOLS";

/// How to get `kubectl`.
pub const KUBECTL_INSTALL: &str = "install kubectl on PATH (https://kubernetes.io/docs/tasks/tools/, or \
                                   `apt-get install kubectl` from the Kubernetes apt repository)";

/// How to get `kubectl.1.27` … `kubectl.1.33`.
pub const VERSIONED_KUBECTL_INSTALL: &str = "the Google Cloud SDK ships kubectl.1.27 … kubectl.1.33 beside its \
    kubectl (`gcloud components install kubectl`); or download those kubectl releases \
    (https://dl.k8s.io/release/v1.33.0/bin/linux/amd64/kubectl) into the directory of the kubectl on PATH, \
    named kubectl.1.33 and so on";

/// How to get `python3`.
pub const PYTHON3_INSTALL: &str = "install Python 3 (standard library only; `apt-get install python3`)";

/// How to get `prometheus` and `promtool`.
pub const PROMETHEUS_INSTALL: &str = "install Prometheus and promtool (`apt-get install prometheus`; .ci/run does, \
                                      without starting its service)";

/// True when a test whose program is missing may skip (see the module documentation).
pub fn may_skip() -> bool {
    skip_allowed(std::env::var(ALLOW_MISSING_ENV).ok().as_deref(), std::env::var("CI").ok().as_deref())
}

/// The rule, from the values of `HNC_ALLOW_MISSING_TOOLS` and `CI`: `CI` counts as set unless empty, `0` or
/// `false`.
fn skip_allowed(allow: Option<&str>, ci: Option<&str>) -> bool {
    let in_ci = ci.is_some_and(|v| !v.is_empty() && v != "0" && v != "false");
    allow == Some("1") && !in_ci
}

/// Reports that `program` is missing: panics, naming it and `install`, unless [`may_skip`]; then prints that
/// the test is skipped and returns, and the caller returns.
#[track_caller]
pub fn missing(program: &str, install: &str) {
    report_missing(program, install, may_skip());
}

#[track_caller]
fn report_missing(program: &str, install: &str, may_skip: bool) {
    if may_skip {
        eprintln!("skipped: {program} not found ({ALLOW_MISSING_ENV}=1); to run this test, {install}");
        return;
    }
    panic!(
        "{program} not found: this test needs it; {install}. To skip such tests on a machine without it, set \
         {ALLOW_MISSING_ENV}=1 (never honoured when CI is set)"
    );
}

/// The machine's `kubectl` (symlinks resolved), or `None` after [`missing`] allowed a skip.
pub fn kubectl() -> Option<PathBuf> {
    let found = Command::new("sh").args(["-c", "readlink -f \"$(command -v kubectl)\""]).output();
    let path = found.ok().map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    match path.filter(|p| p.is_file()) {
        Some(path) => Some(path),
        None => {
            missing("kubectl", KUBECTL_INSTALL);
            None
        }
    }
}

/// `kubectl.<version>` (e.g. `1.33`) beside the machine's `kubectl`, or `None` after [`missing`] allowed a
/// skip.
pub fn versioned_kubectl(version: &str) -> Option<PathBuf> {
    let kubectl = kubectl()?;
    let binary = kubectl.parent().map(|dir| dir.join(format!("kubectl.{version}")));
    match binary.filter(|b| b.is_file()) {
        Some(binary) => Some(binary),
        None => {
            missing(&format!("kubectl.{version} beside {}", kubectl.display()), VERSIONED_KUBECTL_INSTALL);
            None
        }
    }
}

/// `python3` when it runs, or `None` after [`missing`] allowed a skip.
pub fn python3() -> Option<PathBuf> {
    match Command::new("python3").arg("--version").output() {
        Ok(out) if out.status.success() => Some(PathBuf::from("python3")),
        _ => {
            missing("python3", PYTHON3_INSTALL);
            None
        }
    }
}

/// `prometheus`, or `None` after [`missing`] allowed a skip.
pub fn prometheus() -> Option<PathBuf> {
    runs("prometheus", "--version", PROMETHEUS_INSTALL)
}

/// `promtool`, or `None` after [`missing`] allowed a skip.
pub fn promtool() -> Option<PathBuf> {
    runs("promtool", "--version", PROMETHEUS_INSTALL)
}

/// `program` when `program arg` runs and succeeds, or `None` after [`missing`] allowed a skip.
fn runs(program: &str, arg: &str, install: &str) -> Option<PathBuf> {
    match Command::new(program).arg(arg).output() {
        Ok(out) if out.status.success() => Some(PathBuf::from(program)),
        _ => {
            missing(program, install);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_explicit_opt_in_outside_ci_skips() {
        assert!(!skip_allowed(None, None), "a missing program fails by default");
        assert!(skip_allowed(Some("1"), None));
        assert!(skip_allowed(Some("1"), Some("")));
        assert!(skip_allowed(Some("1"), Some("false")));
        assert!(!skip_allowed(Some("yes"), None), "only 1 opts in");
        assert!(!skip_allowed(Some("1"), Some("1")), "CI never skips");
        assert!(!skip_allowed(Some("1"), Some("true")));
        assert!(!skip_allowed(None, Some("1")));
    }

    #[test]
    fn a_missing_program_fails_naming_it_and_its_installation_unless_skipping_is_allowed() {
        let message =
            std::panic::catch_unwind(|| report_missing("nothing-here", "install it", false)).unwrap_err();
        let text = message.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(text.contains("nothing-here not found") && text.contains("install it"), "{text}");
        report_missing("nothing-here", "install it", true);
    }
}
