//! The controller process lifecycle: start, serve health/readiness/metrics, stop cleanly; clear failures.

use std::time::Duration;

use hnc_e2e::TestEnv;

const BINARY: &str = env!("CARGO_BIN_EXE_hnc-e2e-controller");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_serves_health_and_metrics_and_stops_on_sigterm() -> anyhow::Result<()> {
    let mut env = TestEnv::start(BINARY).await?;
    if env.is_real_cluster() {
        eprintln!("skipped: process lifecycle is only tested on apisim");
        return Ok(());
    }
    let r = env.start_replica("r1", &["--no-webhooks"]).await?;
    env.replica(r).wait_ready(Duration::from_secs(20)).await?;
    assert_eq!(env.replica(r).get_health("/healthz").await?, (200, "ok".to_owned()));
    let metrics = env.replica(r).get_metrics().await?;
    assert!(metrics.contains("hnc_build_info"), "{metrics}");
    assert!(metrics.contains("hnc_ready 1"), "{metrics}");

    let status = env.stop_replica(r)?;
    assert!(status.success(), "exit status {status}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_crds_are_a_clear_error() -> anyhow::Result<()> {
    if std::env::var(hnc_e2e::REAL_CLUSTER_ENV).is_ok() {
        eprintln!("skipped: needs a cluster without HNC's CRDs");
        return Ok(());
    }
    let env = TestEnv::start_with(BINARY, false).await?;
    let kubeconfig = env.kubeconfig().to_owned();
    let output = std::process::Command::new(BINARY)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--metrics-addr=127.0.0.1:0", "--health-probe-bind-address=127.0.0.1:0"])
        .output()?;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CustomResourceDefinitions are not installed"), "{stderr}");
    assert!(stderr.contains("hierarchyconfigurations.hnc.x-k8s.io"), "{stderr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_mode_needs_no_cluster() -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("embedded.kubeconfig");
    let mut child = std::process::Command::new(BINARY)
        .args([
            "--embedded",
            "--embedded-port=0",
            "--metrics-addr=127.0.0.1:0",
            "--health-probe-bind-address=127.0.0.1:0",
        ])
        .arg("--embedded-kubeconfig")
        .arg(&kubeconfig)
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let health = loop {
        let line = lines.next().expect("controller exited early")?;
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "ops server listening" {
            break v["health_addr"].as_str().unwrap_or_default().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    hnc_e2e::eventually(Duration::from_secs(20), "embedded controller ready", || {
        let url = format!("http://{health}/readyz");
        async move { reqwest::get(url).await.ok().filter(|r| r.status() == 200) }
    })
    .await?;

    // The kubeconfig it wrote works for clients, and HNC's API is installed.
    let config = kube::config::Kubeconfig::read_from(&kubeconfig)?;
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default()).await?,
    )?;
    let resources = client.list_api_group_resources("hnc.x-k8s.io/v1alpha2").await?;
    assert_eq!(resources.resources.len(), 4);
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
    assert!(
        namespaces
            .list(&Default::default())
            .await?
            .items
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some("default"))
    );

    assert!(std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?.success());
    let status = child.wait()?;
    assert!(status.success(), "{status}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_mode_moves_off_a_taken_port_and_says_so() -> anyhow::Result<()> {
    use std::io::Read;
    // A local API server (k3s, kind's port forward) often holds 6443; here some listener holds a port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port();
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("embedded.kubeconfig");
    let mut child = std::process::Command::new(BINARY)
        .args([
            "--embedded",
            "--no-webhooks",
            "--metrics-addr=127.0.0.1:0",
            "--health-probe-bind-address=127.0.0.1:0",
        ])
        .arg(format!("--embedded-port={port}"))
        .arg("--embedded-kubeconfig")
        .arg(&kubeconfig)
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    hnc_e2e::eventually(Duration::from_secs(20), "the kubeconfig to be written", || {
        let kubeconfig = kubeconfig.clone();
        async move { kubeconfig.exists().then_some(()) }
    })
    .await?;
    let server = std::fs::read_to_string(&kubeconfig)?;
    assert!(!server.contains(&format!("127.0.0.1:{port}")), "{server}");
    assert!(std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?.success());
    let status = child.wait()?;
    let mut stderr = String::new();
    child.stderr.take().expect("piped").read_to_string(&mut stderr)?;
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port} is taken")), "{stderr}");
    assert!(stderr.contains("kubeconfig:"), "{stderr}");
    drop(taken);
    Ok(())
}

/// The README's quick start, run as written with the machine's kubectl against `--embedded`: a newcomer's
/// first commands (kubectl's protobuf generators, `apply -f` with client-side validation) must work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_quick_start_works_with_plain_kubectl() -> anyhow::Result<()> {
    if hnc_e2e::tools::kubectl().is_none() {
        return Ok(());
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))?;
    let start =
        readme.find("```sh\nexport KUBECONFIG").expect("README has the quick start") + "```sh\n".len();
    let script = &readme[start..start + readme[start..].find("```").expect("closed")];
    let dir = tempfile::tempdir()?;
    let mut child = std::process::Command::new(BINARY)
        .args(["--embedded", "--embedded-port=0", "--metrics-addr=127.0.0.1:0"])
        .arg("--health-probe-bind-address=127.0.0.1:0")
        .current_dir(dir.path())
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let kubeconfig = dir.path().join("hnc-embedded.kubeconfig");
    let result = async {
        hnc_e2e::eventually(Duration::from_secs(30), "the embedded server's kubeconfig", || {
            let kubeconfig = kubeconfig.clone();
            async move { kubeconfig.exists().then_some(()) }
        })
        .await?;
        // The copies appear a moment after the parent is set; on a loaded machine the moment can be long.
        let wait = "for _ in $(seq 120); do kubectl get role/pod-reader rolebinding/readers -n dev >/dev/null 2>&1 \
                    && break; sleep 0.25; done; kubectl get roles";
        let script = script.replace("kubectl get roles", wait);
        let output =
            std::process::Command::new("bash").arg("-c").arg(&script).current_dir(dir.path()).output()?;
        let (stdout, stderr) =
            (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        for created in ["namespace/team-a created", "role.rbac.authorization.k8s.io/pod-reader created"] {
            assert!(stdout.contains(created), "{stdout}\n{stderr}");
        }
        assert!(
            stdout.contains("hierarchyconfiguration.hnc.x-k8s.io/hierarchy created"),
            "{stdout}\n{stderr}"
        );
        let copies = stdout.lines().filter(|l| l.contains("pod-reader") || l.contains("readers"));
        assert_eq!(copies.filter(|l| l.trim_end().ends_with("team-a")).count(), 2, "{stdout}\n{stderr}");
        assert!(stderr.contains("cannot delete object propagated from namespace \"team-a\""), "{stderr}");
        anyhow::Ok(())
    }
    .await;
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    result
}
