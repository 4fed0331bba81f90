//! Deployments, Services and PodDisruptionBudgets: stored, defaulted and validated as kube-apiserver v1.32 does,
//! never run (no ReplicaSets, Pods, endpoints or disruption accounting). apisim serves them so that HNC's own
//! installation manifests can be created against it (`kubectl create --dry-run=server`), which checks them the
//! way a cluster would before anyone deploys them.
//!
//! The recorded transcript in `../shared/conformance/` has no exchange with these kinds, so what is modelled
//! here follows kube-apiserver's source, each function naming the Go function it stands for:
//! `pkg/apis/apps/v1/defaults.go`, `pkg/apis/core/v1/defaults.go` (defaults), `pkg/apis/apps/validation`,
//! `pkg/apis/core/validation` and `pkg/apis/policy/validation` (validation; the most common checks, with the
//! server's field paths and wording). Not modelled: ClusterIP allocation beyond one address per Service,
//! NodePort allocation, and the pod-spec checks beyond containers, ports, probes' handlers and restartPolicy.

use std::collections::{BTreeMap, BTreeSet};

use hnc_api::validation;
use serde_json::{Map, Value, json};

use crate::error::Cause;

/// Defaults applied when a Deployment, Service or PodDisruptionBudget body is decoded.
pub(crate) fn decode_defaults(group: &str, kind: &str, obj: &mut Value) {
    match (group, kind) {
        ("apps", "Deployment") => deployment_defaults(obj),
        ("", "Service") => service_defaults(obj),
        _ => {}
    }
}

/// The status a create starts with (registry strategies' `PrepareForCreate` reset status).
pub(crate) fn initial_status(group: &str, kind: &str) -> Option<Value> {
    match (group, kind) {
        ("apps", "Deployment") => Some(json!({})),
        ("", "Service") => Some(json!({"loadBalancer": {}})),
        ("policy", "PodDisruptionBudget") => Some(
            json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}),
        ),
        _ => None,
    }
}

/// Validation of a Deployment, Service or PodDisruptionBudget (after defaults).
pub(crate) fn validate(group: &str, kind: &str, obj: &Value) -> Vec<Cause> {
    match (group, kind) {
        ("apps", "Deployment") => validate_deployment(obj),
        ("", "Service") => validate_service(obj),
        ("policy", "PodDisruptionBudget") => validate_pdb(obj),
        _ => Vec::new(),
    }
}

/// The field of `obj` at `key`, made an object if it is missing or not one.
fn object_at<'a>(obj: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    let v = &mut obj[key];
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut().expect("made an object")
}

fn set_default(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(|v| v.is_null() || v == "") {
        map.insert(key.to_owned(), value);
    }
}

/// `SetDefaults_Deployment` (apps/v1) and the pod template's defaults.
fn deployment_defaults(obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    let spec = object_at(obj, "spec");
    set_default(spec, "replicas", json!(1));
    let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
    if let Some(strategy) = strategy.as_object_mut() {
        set_default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            let rolling = strategy.entry("rollingUpdate").or_insert_with(|| json!({}));
            if let Some(rolling) = rolling.as_object_mut() {
                set_default(rolling, "maxUnavailable", json!("25%"));
                set_default(rolling, "maxSurge", json!("25%"));
            }
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    let template = spec.entry("template").or_insert_with(|| json!({}));
    if template.is_object() {
        // A Go struct without omitempty: the template's metadata always has a creationTimestamp, null.
        let meta = object_at(template, "metadata");
        meta.entry("creationTimestamp").or_insert(Value::Null);
        pod_spec_defaults(template);
    }
}

/// `SetDefaults_PodSpec`, `SetDefaults_Container`, `SetDefaults_ContainerPort`, `SetDefaults_Probe`,
/// `SetDefaults_HTTPGetAction` and `SetDefaults_ObjectFieldSelector` over a pod template.
fn pod_spec_defaults(template: &mut Value) {
    let spec = object_at(template, "spec");
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    if spec.get("securityContext").is_none_or(Value::is_null) {
        spec.insert("securityContext".into(), json!({}));
    }
    for list in ["initContainers", "containers"] {
        for container in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            let Some(c) = container.as_object_mut() else { continue };
            let image = c.get("image").and_then(Value::as_str).unwrap_or_default().to_owned();
            // Always for `:latest` or an untagged image, IfNotPresent for any other tag or a digest.
            let tag = image.rsplit_once('/').map_or(image.as_str(), |(_, last)| last);
            let pull = if !image.contains('@') && tag.rsplit_once(':').is_none_or(|(_, t)| t == "latest") {
                "Always"
            } else {
                "IfNotPresent"
            };
            set_default(c, "imagePullPolicy", json!(pull));
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            for port in c.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(port) = port.as_object_mut() {
                    set_default(port, "protocol", json!("TCP"));
                }
            }
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) else { continue };
                for (field, default) in [
                    ("timeoutSeconds", 1),
                    ("periodSeconds", 10),
                    ("successThreshold", 1),
                    ("failureThreshold", 3),
                ] {
                    if p.get(field).is_none_or(|v| v.is_null() || v == 0) {
                        p.insert(field.into(), json!(default));
                    }
                }
                if let Some(get) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
                    set_default(get, "path", json!("/"));
                    set_default(get, "scheme", json!("HTTP"));
                }
            }
            for env in c.get_mut("env").and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(field_ref) = env.pointer_mut("/valueFrom/fieldRef").and_then(Value::as_object_mut)
                {
                    set_default(field_ref, "apiVersion", json!("v1"));
                }
            }
        }
    }
}

/// `SetDefaults_Service`, plus the ClusterIP and IP family the registry allocates on create.
fn service_defaults(obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    let spec = object_at(obj, "spec");
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    let external_name = spec.get("type").and_then(Value::as_str) == Some("ExternalName");
    for port in spec.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
        let Some(p) = port.as_object_mut() else { continue };
        set_default(p, "protocol", json!("TCP"));
        if p.get("targetPort").is_none_or(|t| t.is_null() || t == 0 || t == "")
            && let Some(number) = p.get("port").cloned()
        {
            p.insert("targetPort".into(), number);
        }
    }
    if !external_name {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
        // The allocator hands out addresses from --service-cluster-ip-range (10.96.0.0/12 by default).
        if spec.get("clusterIP").is_none_or(|ip| ip.is_null() || ip == "") {
            let n: u32 = rand::random::<u32>() % 0x000f_fffe + 1;
            let ip = format!("10.{}.{}.{}", 96 + (n >> 16), (n >> 8) & 0xff, n & 0xff);
            spec.insert("clusterIP".into(), json!(ip));
        }
        if spec.get("clusterIPs").is_none_or(Value::is_null) {
            let ip = spec["clusterIP"].clone();
            spec.insert("clusterIPs".into(), json!([ip]));
        }
        set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
        if spec.get("ipFamilies").is_none_or(Value::is_null) {
            spec.insert("ipFamilies".into(), json!(["IPv4"]));
        }
    }
}

fn required(field: &str) -> Cause {
    Cause { reason: "FieldValueRequired", field: field.to_owned(), message: "Required value".into() }
}

fn duplicate(field: &str, value: &str) -> Cause {
    Cause {
        reason: "FieldValueDuplicate",
        field: field.to_owned(),
        message: format!("Duplicate value: \"{value}\""),
    }
}

fn invalid(field: &str, value: &Value, why: &str) -> Cause {
    Cause::invalid(field, format!("Invalid value: {value}: {why}"))
}

fn unsupported(field: &str, value: &Value, supported: &[&str]) -> Cause {
    let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
    Cause {
        reason: "FieldValueNotSupported",
        field: field.to_owned(),
        message: format!("Unsupported value: {value}: supported values: {}", list.join(", ")),
    }
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
        .unwrap_or_default()
}

/// `ValidateDeploymentSpec` (apps): replicas, selector, the template's labels against it, the pod template and
/// the strategy.
fn validate_deployment(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = &obj["spec"];
    if spec["replicas"].as_i64().is_some_and(|r| r < 0) {
        causes.push(invalid("spec.replicas", &spec["replicas"], "must be greater than or equal to 0"));
    }
    let selector = &spec["selector"];
    let selector_empty = selector["matchLabels"].as_object().is_none_or(Map::is_empty)
        && selector["matchExpressions"].as_array().is_none_or(Vec::is_empty);
    if selector.is_null() {
        causes.push(required("spec.selector"));
    } else if selector_empty {
        causes.push(invalid("spec.selector", selector, "empty selector is invalid for deployment"));
    } else {
        let template_labels = labels(&spec["template"]["metadata"]["labels"]);
        if !crate::admission::selector_matches(selector, &template_labels) {
            causes.push(invalid(
                "spec.template.metadata.labels",
                &spec["template"]["metadata"]["labels"],
                "`selector` does not match template `labels`",
            ));
        }
    }
    causes.extend(validate_pod_spec("spec.template.spec", &spec["template"]["spec"]));
    let restart = &spec["template"]["spec"]["restartPolicy"];
    if restart.as_str().is_some_and(|r| r != "Always") {
        causes.push(unsupported("spec.template.spec.restartPolicy", restart, &["Always"]));
    }
    let strategy = &spec["strategy"];
    match strategy["type"].as_str() {
        Some("Recreate") if !strategy["rollingUpdate"].is_null() => causes.push(Cause::forbidden(
            "spec.strategy.rollingUpdate",
            "Forbidden: may not be specified when strategy `type` is 'Recreate'".into(),
        )),
        Some("Recreate" | "RollingUpdate") => {}
        _ => {
            causes.push(unsupported("spec.strategy.type", &strategy["type"], &["Recreate", "RollingUpdate"]))
        }
    }
    let rolling = &strategy["rollingUpdate"];
    let zero = |v: &Value| v == 0 || v == "0%" || v == "0";
    if !rolling.is_null() && zero(&rolling["maxUnavailable"]) && zero(&rolling["maxSurge"]) {
        causes.push(invalid(
            "spec.strategy.rollingUpdate.maxUnavailable",
            &rolling["maxUnavailable"],
            "may not be 0 when `maxSurge` is 0",
        ));
    }
    for field in ["maxUnavailable", "maxSurge"] {
        causes.extend(int_or_percent(&format!("spec.strategy.rollingUpdate.{field}"), &rolling[field]));
    }
    if let (Some(deadline), min_ready) =
        (spec["progressDeadlineSeconds"].as_i64(), spec["minReadySeconds"].as_i64().unwrap_or(0))
        && deadline <= min_ready
    {
        causes.push(invalid(
            "spec.progressDeadlineSeconds",
            &spec["progressDeadlineSeconds"],
            "must be greater than minReadySeconds",
        ));
    }
    causes
}

/// An IntOrString that must be a non-negative integer or a percentage (`ValidatePositiveIntOrPercent`).
fn int_or_percent(field: &str, v: &Value) -> Vec<Cause> {
    match v {
        Value::Null => Vec::new(),
        Value::Number(n) if n.as_i64().is_some_and(|n| n >= 0) => Vec::new(),
        Value::Number(_) => vec![invalid(field, v, "must be greater than or equal to 0")],
        Value::String(s) => {
            let ok =
                s.strip_suffix('%').is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if ok {
                Vec::new()
            } else {
                vec![invalid(
                    field,
                    v,
                    "a valid percent string must be a numeric string followed by an ending '%'",
                )]
            }
        }
        _ => vec![invalid(field, v, "must be an integer or percentage (e.g '5%')")],
    }
}

/// `ValidatePodSpec`, as far as manifests usually go wrong: containers present, each named once with a DNS
/// label, an image, ports in range and uniquely named, probes with exactly one handler whose port is valid.
fn validate_pod_spec(path: &str, spec: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let containers = spec["containers"].as_array();
    if containers.is_none_or(Vec::is_empty) {
        causes.push(required(&format!("{path}.containers")));
    }
    let mut names = BTreeSet::new();
    for (list, items) in [("initContainers", spec["initContainers"].as_array()), ("containers", containers)] {
        for (i, c) in items.into_iter().flatten().enumerate() {
            let at = format!("{path}.{list}[{i}]");
            match c["name"].as_str() {
                None | Some("") => causes.push(required(&format!("{at}.name"))),
                Some(name) => {
                    for e in validation::dns1123_label_errors(name) {
                        causes.push(invalid(&format!("{at}.name"), &c["name"], &e));
                    }
                    if !names.insert(name.to_owned()) {
                        causes.push(duplicate(&format!("{at}.name"), name));
                    }
                }
            }
            if c["image"].as_str().is_none_or(|i| i.trim().is_empty()) {
                causes.push(required(&format!("{at}.image")));
            }
            let mut port_names = BTreeSet::new();
            for (j, p) in c["ports"].as_array().into_iter().flatten().enumerate() {
                let port_at = format!("{at}.ports[{j}]");
                if !p["containerPort"].as_i64().is_some_and(|n| (1..=65535).contains(&n)) {
                    causes.push(invalid(
                        &format!("{port_at}.containerPort"),
                        &p["containerPort"],
                        "must be between 1 and 65535, inclusive",
                    ));
                }
                if let Some(name) = p["name"].as_str().filter(|n| !n.is_empty()) {
                    if !port_name_ok(name) {
                        causes.push(invalid(
                            &format!("{port_at}.name"),
                            &p["name"],
                            "must be no more than 15 characters and contain only lowercase letters, digits and \
                             '-', with at least one letter",
                        ));
                    }
                    if !port_names.insert(name.to_owned()) {
                        causes.push(duplicate(&format!("{port_at}.name"), name));
                    }
                }
                if let Some(proto) = p.get("protocol").filter(|p| !p.is_null())
                    && !matches!(proto.as_str(), Some("TCP" | "UDP" | "SCTP"))
                {
                    causes.push(unsupported(&format!("{port_at}.protocol"), proto, &["SCTP", "TCP", "UDP"]));
                }
            }
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                let p = &c[probe];
                if p.is_null() {
                    continue;
                }
                let probe_at = format!("{at}.{probe}");
                let handlers: Vec<&str> = ["exec", "httpGet", "tcpSocket", "grpc"]
                    .into_iter()
                    .filter(|h| !p[*h].is_null())
                    .collect();
                match handlers.len() {
                    0 => causes.push(required(&probe_at)),
                    1 => {}
                    _ => causes.push(Cause::forbidden(
                        &format!("{probe_at}.{}", handlers[1]),
                        "Forbidden: may not specify more than 1 handler type".into(),
                    )),
                }
                for handler in ["httpGet", "tcpSocket"] {
                    let port = &p[handler]["port"];
                    if p[handler].is_null() {
                        continue;
                    }
                    let ok = match port {
                        Value::Number(n) => n.as_i64().is_some_and(|n| (1..=65535).contains(&n)),
                        Value::String(s) => port_name_ok(s) && c_has_port_named(c, s),
                        _ => false,
                    };
                    if !ok {
                        causes.push(invalid(
                            &format!("{probe_at}.{handler}.port"),
                            port,
                            "must be a port number between 1 and 65535 or the name of one of the container's ports",
                        ));
                    }
                }
            }
        }
    }
    causes
}

fn c_has_port_named(container: &Value, name: &str) -> bool {
    container["ports"].as_array().into_iter().flatten().any(|p| p["name"] == name)
}

/// `IsValidPortName`: an IANA service name — at most 15 characters of lowercase letters, digits and '-',
/// at least one letter, no leading, trailing or doubled '-'.
fn port_name_ok(name: &str) -> bool {
    name.len() <= 15
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.bytes().any(|b| b.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// `ValidateService`: the type, ports (present unless ExternalName, in range, named when several, unique
/// names), target ports and the session affinity.
fn validate_service(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = &obj["spec"];
    let kind = spec["type"].as_str().unwrap_or_default();
    if !matches!(kind, "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName") {
        causes.push(unsupported(
            "spec.type",
            &spec["type"],
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        ));
    }
    let ports = spec["ports"].as_array().map(Vec::as_slice).unwrap_or_default();
    if ports.is_empty() && kind != "ExternalName" && spec["clusterIP"] != "None" {
        causes.push(required("spec.ports"));
    }
    let mut names = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        let name = p["name"].as_str().unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            causes.push(required(&format!("{at}.name")));
        } else if !name.is_empty() {
            for e in validation::dns1123_label_errors(name) {
                causes.push(invalid(&format!("{at}.name"), &p["name"], &e));
            }
            if !names.insert(name.to_owned()) {
                causes.push(duplicate(&format!("{at}.name"), name));
            }
        }
        if !p["port"].as_i64().is_some_and(|n| (1..=65535).contains(&n)) {
            causes.push(invalid(&format!("{at}.port"), &p["port"], "must be between 1 and 65535, inclusive"));
        }
        let target = &p["targetPort"];
        let target_ok = match target {
            Value::Null => true,
            Value::Number(n) => n.as_i64().is_some_and(|n| (1..=65535).contains(&n)),
            Value::String(s) => port_name_ok(s),
            _ => false,
        };
        if !target_ok {
            causes.push(invalid(
                &format!("{at}.targetPort"),
                target,
                "must be between 1 and 65535, inclusive, or an IANA service name",
            ));
        }
        if let Some(proto) = p.get("protocol").filter(|p| !p.is_null())
            && !matches!(proto.as_str(), Some("TCP" | "UDP" | "SCTP"))
        {
            causes.push(unsupported(&format!("{at}.protocol"), proto, &["SCTP", "TCP", "UDP"]));
        }
    }
    if !matches!(spec["sessionAffinity"].as_str(), Some("None" | "ClientIP")) {
        causes.push(unsupported("spec.sessionAffinity", &spec["sessionAffinity"], &["ClientIP", "None"]));
    }
    causes
}

/// `ValidatePodDisruptionBudgetSpec` (policy/v1): minAvailable and maxUnavailable are exclusive, each a
/// non-negative integer or a percentage.
fn validate_pdb(obj: &Value) -> Vec<Cause> {
    let spec = &obj["spec"];
    let mut causes = Vec::new();
    if !spec["minAvailable"].is_null() && !spec["maxUnavailable"].is_null() {
        causes.push(invalid("spec", spec, "minAvailable and maxUnavailable cannot be both set"));
    }
    for field in ["minAvailable", "maxUnavailable"] {
        causes.extend(int_or_percent(&format!("spec.{field}"), &spec[field]));
        if let Some(p) =
            spec[field].as_str().and_then(|s| s.strip_suffix('%')).and_then(|p| p.parse::<u32>().ok())
            && p > 100
        {
            causes.push(invalid(&format!("spec.{field}"), &spec[field], "must not be greater than 100%"));
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Value {
        json!({
            "metadata": {"name": "d"},
            "spec": {
                "selector": {"matchLabels": {"app": "x"}},
                "template": {
                    "metadata": {"labels": {"app": "x"}},
                    "spec": {"containers": [{
                        "name": "c",
                        "image": "registry.example/c:1.0",
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}},
                    }]},
                },
            },
        })
    }

    #[test]
    fn a_deployment_is_defaulted_as_apps_v1_defaults_it() {
        let mut d = deployment();
        decode_defaults("apps", "Deployment", &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["securityContext"], json!({}));
        let c = &pod["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(c["readinessProbe"]["periodSeconds"], 10);
        assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTP");
        assert!(validate("apps", "Deployment", &d).is_empty(), "{:?}", validate("apps", "Deployment", &d));

        let mut latest = deployment();
        latest["spec"]["template"]["spec"]["containers"][0]["image"] = json!("localhost:5000/c");
        decode_defaults("apps", "Deployment", &mut latest);
        assert_eq!(latest["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "Always");
    }

    #[test]
    fn a_deployment_whose_selector_misses_its_template_or_whose_pods_cannot_run_is_invalid() {
        let fields = |mut d: Value| {
            decode_defaults("apps", "Deployment", &mut d);
            validate("apps", "Deployment", &d).into_iter().map(|c| c.field).collect::<Vec<_>>()
        };
        let mut d = deployment();
        d["spec"]["template"]["metadata"]["labels"] = json!({"app": "y"});
        assert_eq!(fields(d), ["spec.template.metadata.labels"]);

        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("");
        d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] =
            json!("metrics");
        assert_eq!(
            fields(d),
            [
                "spec.template.spec.containers[0].image",
                "spec.template.spec.containers[0].readinessProbe.httpGet.port"
            ]
        );

        let mut d = deployment();
        d["spec"]["selector"] = Value::Null;
        d["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}});
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(
            fields(d),
            ["spec.selector", "spec.template.spec.restartPolicy", "spec.strategy.rollingUpdate"]
        );
    }

    #[test]
    fn a_service_gets_its_defaults_and_needs_named_ports_when_it_has_several() {
        let mut s = json!({"spec": {"selector": {"app": "x"}, "ports": [{"port": 443, "targetPort": 9443}]}});
        decode_defaults("", "Service", &mut s);
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["sessionAffinity"], "None");
        assert_eq!(s["spec"]["ports"][0]["protocol"], "TCP");
        assert!(s["spec"]["clusterIP"].as_str().is_some_and(|ip| ip.starts_with("10.")));
        assert_eq!(s["spec"]["clusterIPs"][0], s["spec"]["clusterIP"]);
        assert!(validate("", "Service", &s).is_empty());

        let mut s = json!({"spec": {"ports": [{"port": 80}, {"port": 70000, "name": "b"}]}});
        decode_defaults("", "Service", &mut s);
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        let fields: Vec<String> = validate("", "Service", &s).into_iter().map(|c| c.field).collect();
        assert_eq!(fields, ["spec.ports[0].name", "spec.ports[1].port", "spec.ports[1].targetPort"]);
    }

    #[test]
    fn a_disruption_budget_takes_one_of_min_available_and_max_unavailable() {
        assert!(
            validate("policy", "PodDisruptionBudget", &json!({"spec": {"maxUnavailable": 1}})).is_empty()
        );
        let both = json!({"spec": {"maxUnavailable": 1, "minAvailable": "150%"}});
        let fields: Vec<String> =
            validate("policy", "PodDisruptionBudget", &both).into_iter().map(|c| c.field).collect();
        assert_eq!(fields, ["spec", "spec.minAvailable"]);
    }
}
