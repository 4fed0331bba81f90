//! Calling registered admission webhooks the way kube-apiserver does: mutating configurations first (in name
//! order, each patch applied before the next call), then validating ones; rules matched on operation, group,
//! version, resource/subresource and scope; `namespaceSelector` (the namespace's labels, or a Namespace's own)
//! and `objectSelector`; HTTPS to `clientConfig.url` verified against `caBundle`; `timeoutSeconds` (default 10);
//! `failurePolicy` Fail (default) or Ignore. Webhook configurations themselves are never subject to webhooks.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::resources::ResourceType;
use crate::selector::LabelSelector;
use crate::server::{Shared, User};
use crate::store::labels_of;

/// One request to admit.
pub struct Request<'a> {
    /// CREATE, UPDATE or DELETE.
    pub operation: &'static str,
    /// The resource type.
    pub t: &'a ResourceType,
    /// Version in the request path.
    pub version: &'a str,
    /// Subresource, if any.
    pub subresource: Option<&'a str>,
    /// Namespace ("" for cluster-scoped).
    pub namespace: &'a str,
    /// Object name.
    pub name: &'a str,
    /// New object (CREATE, UPDATE).
    pub object: Option<Value>,
    /// Old object (UPDATE, DELETE).
    pub old_object: Option<Value>,
    /// Requester.
    pub user: &'a User,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// Runs the webhooks; returns the (possibly mutated) object, or the error to answer with.
pub async fn admit(shared: &Shared, mut req: Request<'_>) -> Result<Option<Value>, ApiError> {
    if req.t.group == "admissionregistration.k8s.io" {
        return Ok(req.object);
    }
    let (mutating, validating, namespace_labels) = {
        let store = shared.store.lock();
        let ns_labels = if req.namespace.is_empty() {
            None
        } else {
            store.object("", "namespaces", "", req.namespace).map(|n| labels_of(&n))
        };
        (
            store.all_objects("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
            store.all_objects("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
            ns_labels,
        )
    };
    if mutating.is_empty() && validating.is_empty() {
        return Ok(req.object);
    }
    for (configs, mutate) in [(mutating, true), (validating, false)] {
        let mut configs = configs;
        configs.sort_by_key(|c| {
            c.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned()
        });
        for config in configs {
            for hook in config["webhooks"].as_array().into_iter().flatten() {
                if !matches(hook, &req, namespace_labels.as_ref()) {
                    continue;
                }
                let name = hook["name"].as_str().unwrap_or_default();
                let ignore = hook["failurePolicy"] == json!("Ignore");
                match call(shared, hook, &req).await {
                    Ok(response) => {
                        if response["allowed"] != json!(true) {
                            return Err(denied(name, &response));
                        }
                        if mutate && !response["patch"].is_null() {
                            apply_patch(&mut req, &response["patch"]).map_err(|e| failed(name, &e))?;
                        }
                    }
                    Err(_) if ignore => continue,
                    Err(e) => return Err(failed(name, &e)),
                }
            }
        }
    }
    Ok(req.object)
}

fn matches(
    hook: &Value,
    req: &Request<'_>,
    namespace_labels: Option<&std::collections::BTreeMap<String, String>>,
) -> bool {
    let resource = match req.subresource {
        Some(sub) => format!("{}/{sub}", req.t.plural),
        None => req.t.plural.clone(),
    };
    let rule_ok = hook["rules"].as_array().into_iter().flatten().any(|rule| {
        let has = |field: &str, want: &str| {
            rule[field]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .any(|v| v == "*" || v == want)
        };
        let resource_ok =
            rule["resources"].as_array().into_iter().flatten().filter_map(Value::as_str).any(|r| {
                r == "*/*"
                    || r == resource
                    || (r == "*" && req.subresource.is_none())
                    || r.strip_suffix("/*").is_some_and(|p| req.subresource.is_some() && p == req.t.plural)
                    || r.strip_prefix("*/").is_some_and(|s| req.subresource == Some(s))
            });
        let scope_ok = match rule["scope"].as_str().unwrap_or("*") {
            "Cluster" => !req.t.namespaced,
            "Namespaced" => req.t.namespaced,
            _ => true,
        };
        has("operations", req.operation)
            && has("apiGroups", &req.t.group)
            && has("apiVersions", req.version)
            && resource_ok
            && scope_ok
    });
    if !rule_ok {
        return false;
    }
    let object_labels = req.object.as_ref().or(req.old_object.as_ref()).map(labels_of).unwrap_or_default();
    if let Some(selector) = hook.get("namespaceSelector").filter(|s| s.is_object()) {
        let labels = if req.t.group.is_empty() && req.t.plural == "namespaces" {
            Some(object_labels.clone())
        } else if req.t.namespaced {
            namespace_labels.cloned()
        } else {
            None // cluster-scoped objects are not filtered by namespace
        };
        if let Some(labels) = labels
            && !selector_matches(selector, &labels)
        {
            return false;
        }
    }
    if let Some(selector) = hook.get("objectSelector").filter(|s| s.is_object())
        && !selector_matches(selector, &object_labels)
    {
        return false;
    }
    true
}

/// Evaluates a `metav1.LabelSelector` object (matchLabels and matchExpressions).
pub(crate) fn selector_matches(
    selector: &Value,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    let mut parts: Vec<String> = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for expr in selector["matchExpressions"].as_array().into_iter().flatten() {
        let key = expr["key"].as_str().unwrap_or_default();
        let values: Vec<&str> =
            expr["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        parts.push(match expr["operator"].as_str() {
            Some("In") => format!("{key} in ({})", values.join(",")),
            Some("NotIn") => format!("{key} notin ({})", values.join(",")),
            Some("Exists") => key.to_owned(),
            Some("DoesNotExist") => format!("!{key}"),
            _ => return false,
        });
    }
    LabelSelector::parse(&parts.join(",")).is_ok_and(|s| s.matches(labels))
}

async fn call(shared: &Shared, hook: &Value, req: &Request<'_>) -> Result<Value, String> {
    let Some(url) = hook.pointer("/clientConfig/url").and_then(Value::as_str) else {
        return Err("service references cannot be reached from apisim; register the webhook by URL".into());
    };
    let timeout = Duration::from_secs(hook["timeoutSeconds"].as_u64().unwrap_or(10));
    let ca = hook.pointer("/clientConfig/caBundle").and_then(Value::as_str).unwrap_or_default();
    let client = webhook_client(shared, ca)?;
    // An injected latency stands for a slow webhook server: it counts against the call's timeout.
    let latency = shared.faults.webhook_latency();
    if latency >= timeout {
        tokio::time::sleep(timeout).await;
        return Err(format!("failed to call webhook: Post \"{url}\": context deadline exceeded"));
    }
    tokio::time::sleep(latency).await;
    let timeout = timeout - latency;
    let uid = format!("{:032x}", rand::random::<u128>());
    let (group, version) = (&req.t.group, req.version);
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": req.t.kind},
            "resource": {"group": group, "version": version, "resource": req.t.plural},
            "subResource": req.subresource,
            "requestKind": {"group": group, "version": version, "kind": req.t.kind},
            "requestResource": {"group": group, "version": version, "resource": req.t.plural},
            "name": req.name,
            "namespace": if req.namespace.is_empty() { Value::Null } else { json!(req.namespace) },
            "operation": req.operation,
            "userInfo": {"username": req.user.name, "groups": req.user.groups},
            "object": req.object,
            "oldObject": req.old_object,
            "dryRun": req.dry_run,
        }
    });
    let response = client
        .post(url)
        .timeout(timeout)
        .json(&review)
        .send()
        .await
        .map_err(|e| format!("failed to call webhook: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("received invalid webhook response: status {}", response.status()));
    }
    let body: Value = response.json().await.map_err(|e| format!("received invalid webhook response: {e}"))?;
    let answer = body.get("response").cloned().ok_or("received invalid webhook response: no response")?;
    if answer["uid"] != json!(uid) {
        return Err(format!("expected response.uid={uid:?}, got {}", answer["uid"]));
    }
    Ok(answer)
}

/// The client for webhooks trusting `ca` (base64 PEM; empty: the system's roots), built once.
fn webhook_client(shared: &Shared, ca: &str) -> Result<reqwest::Client, String> {
    if let Some(client) = shared.webhook_clients.lock().get(ca) {
        return Ok(client.clone());
    }
    let mut builder = reqwest::Client::builder().use_rustls_tls();
    if !ca.is_empty() {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(ca)
            .map_err(|e| format!("caBundle is not base64: {e}"))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| format!("caBundle is not a PEM certificate: {e}"))?;
        builder = builder.tls_built_in_root_certs(false).add_root_certificate(cert);
    }
    let client = builder.build().map_err(|e| e.to_string())?;
    let mut clients = shared.webhook_clients.lock();
    if clients.len() >= 16 {
        // CA bundles rotated away; their clients go.
        clients.clear();
    }
    clients.insert(ca.to_owned(), client.clone());
    Ok(client)
}

/// Applies a mutating webhook's patch. Like kube-apiserver (Go's `[]byte`), it accepts the bytes as a base64
/// string or as a JSON array of numbers.
fn apply_patch(req: &mut Request<'_>, patch: &Value) -> Result<(), String> {
    let bytes = match patch {
        Value::String(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("patch is not base64: {e}"))?,
        Value::Array(items) => items
            .iter()
            .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or("patch is an array but not of bytes")?,
        other => return Err(format!("patch must be base64 bytes, not {other}")),
    };
    let patch: json_patch::Patch =
        serde_json::from_slice(&bytes).map_err(|e| format!("patch is not a JSON patch: {e}"))?;
    if let Some(obj) = req.object.as_mut() {
        json_patch::patch(obj, &patch).map_err(|e| format!("patch cannot be applied: {e}"))?;
    }
    Ok(())
}

fn denied(name: &str, response: &Value) -> ApiError {
    let status = &response["status"];
    let code = status["code"].as_u64().filter(|c| *c >= 400).unwrap_or(403) as u16;
    let message = status["message"].as_str().unwrap_or_default();
    let reason =
        status["reason"].as_str().filter(|r| !r.is_empty()).map(|r| known_reason(r)).unwrap_or("Forbidden");
    let mut e = ApiError::forbidden_raw(
        format!("admission webhook \"{name}\" denied the request: {message}"),
        &Default::default(),
    );
    e.code = code;
    e.reason = reason;
    e.details = status.get("details").cloned().or(e.details);
    e
}

/// Maps a webhook-supplied reason onto the fixed set of reasons Status errors use.
fn known_reason(reason: &str) -> &'static str {
    match reason {
        "Forbidden" => "Forbidden",
        "Conflict" => "Conflict",
        "Invalid" => "Invalid",
        "BadRequest" => "BadRequest",
        "Unauthorized" => "Unauthorized",
        "ServiceUnavailable" => "ServiceUnavailable",
        "InternalError" => "InternalError",
        "NotFound" => "NotFound",
        "AlreadyExists" => "AlreadyExists",
        _ => "Forbidden",
    }
}

fn failed(name: &str, error: &str) -> ApiError {
    let mut e = ApiError::forbidden_raw(
        format!("Internal error occurred: failed calling webhook \"{name}\": {error}"),
        &Default::default(),
    );
    e.code = 500;
    e.reason = "InternalError";
    e
}
