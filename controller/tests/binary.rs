//! The controller binary as an operator meets it: clear errors and exit codes before anything else works.

use std::process::Command;

fn controller() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hnc-controller"))
}

/// A kubeconfig pointing at a loopback port nothing listens on.
fn unreachable_kubeconfig(dir: &std::path::Path) -> std::path::PathBuf {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }; // dropped: the port is closed again
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\n\
             users:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n\
             current-context: x\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn unreachable_api_server_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = controller()
        .arg("--kubeconfig")
        .arg(unreachable_kubeconfig(dir.path()))
        .args(["--metrics-addr=127.0.0.1:0", "--health-probe-bind-address=127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("error: the API server at http://127.0.0.1:"), "{stderr}");
    assert!(stderr.contains("unreachable"), "{stderr}");
}

#[test]
fn invalid_flags_exit_with_usage_errors() {
    let output = controller().arg("--nopropagation-label=broken").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("KEY=VALUE"));

    let output = controller().args(["--lease-duration=5s", "--renew-deadline=6s"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--renew-deadline"));
}

#[test]
fn missing_kubeconfig_file_is_named() {
    let output = controller()
        .args(["--kubeconfig=/nonexistent/kubeconfig", "--metrics-addr=127.0.0.1:0"])
        .args(["--health-probe-bind-address=127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/kubeconfig"));
}
