//! The monitoring files of `manifests/deploy/` that exist twice — once for the Prometheus Operator and Grafana's
//! sidecar, once for everything else — say the same thing.

use std::path::PathBuf;

fn deploy(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/deploy").join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(deploy(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn yaml(file: &str) -> serde_json::Value {
    serde_saphyr::from_str(&read(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn the_dashboard_configmap_holds_dashboards_hnc_json_verbatim() {
    let configmap = yaml("50-grafana-dashboard.yaml");
    let embedded = configmap["data"]["hnc.json"].as_str().expect("data.hnc.json");
    assert!(
        embedded == read("dashboards/hnc.json"),
        "50-grafana-dashboard.yaml's hnc.json differs from dashboards/hnc.json: regenerate it (each line of the JSON \
         indented by four spaces)"
    );
    serde_json::from_str::<serde_json::Value>(embedded).expect("the dashboard is JSON");
}

#[test]
fn the_prometheusrule_holds_the_groups_of_alerts_hnc_rules_yaml() {
    let rule = yaml("60-prometheusrule.yaml");
    assert_eq!(rule["kind"], "PrometheusRule");
    let plain = yaml("alerts/hnc.rules.yaml");
    assert!(plain["groups"].as_array().is_some_and(|g| !g.is_empty()), "no groups: {plain}");
    assert_same_groups(&rule["spec"], &plain);
}

/// `assert_eq!` that names the first differing group instead of printing both documents whole.
fn assert_same_groups(spec: &serde_json::Value, plain: &serde_json::Value) {
    let (a, b) = (spec["groups"].as_array(), plain["groups"].as_array());
    let (a, b) = (a.expect("spec.groups"), b.expect("groups"));
    for (x, y) in a.iter().zip(b) {
        assert_eq!(
            x, y,
            "group {} differs between 60-prometheusrule.yaml and alerts/hnc.rules.yaml",
            y["name"]
        );
    }
    assert_eq!(a.len(), b.len(), "the two files hold a different number of groups");
    assert_eq!(spec, plain, "60-prometheusrule.yaml's spec holds more than the groups");
}

#[test]
fn every_alert_has_a_severity_a_summary_a_description_and_a_runbook_in_the_deploy_readme() {
    let readme = read("README.md");
    let plain = yaml("alerts/hnc.rules.yaml");
    let mut alerts = 0;
    for rule in plain["groups"].as_array().unwrap().iter().flat_map(|g| g["rules"].as_array().unwrap()) {
        let Some(name) = rule["alert"].as_str() else { continue };
        alerts += 1;
        assert!(
            ["critical", "warning", "info"]
                .contains(&rule["labels"]["severity"].as_str().unwrap_or_default()),
            "{name}: severity"
        );
        for annotation in ["summary", "description"] {
            assert!(
                rule["annotations"][annotation].as_str().is_some_and(|t| !t.is_empty()),
                "{name}: {annotation}"
            );
        }
        let url = rule["annotations"]["runbook_url"].as_str().unwrap_or_default();
        let anchor = name.to_lowercase();
        assert!(url.ends_with(&format!("manifests/deploy/README.md#{anchor}")), "{name}: runbook_url {url}");
        let line =
            readme.lines().find(|l| l.contains(&format!("<a id=\"{anchor}\"></a>"))).unwrap_or_else(|| {
                panic!("{name}: no runbook line with <a id=\"{anchor}\"></a> in the deploy README")
            });
        assert!(line.contains(&format!("**{name}**")), "{name}: the runbook line does not name it: {line}");
    }
    assert!(alerts >= 10, "{alerts} alerts");
}
