//! The HTTP API: path routing, bearer-token authentication, discovery, CRUD, patch, list and watch, metrics.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use parking_lot::{Mutex, RwLock};
use serde_json::{Value, json};

use crate::admission;
use crate::error::ApiError;
use crate::faults::Faults;
use crate::managed::Writer;
use crate::resources::{ResourceType, api_version};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Deleted, Store, Written, labels_of};

/// An authenticated user.
#[derive(Debug, Clone)]
pub struct User {
    /// User name.
    pub name: String,
    /// Groups.
    pub groups: Vec<String>,
}

/// One write, as recorded for tests ("which replica wrote what").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteRecord {
    /// Who wrote.
    pub user: String,
    /// `POST`, `PUT`, `PATCH` or `DELETE`.
    pub verb: String,
    /// Resource plural.
    pub resource: String,
    /// Namespace ("" for cluster-scoped).
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// HTTP status returned.
    pub code: u16,
    /// When it was served.
    pub at: Instant,
}

/// The namespaces quota admission is charging, and the workers it has.
pub(crate) struct QuotaCharges {
    pub(crate) workers: tokio::sync::Semaphore,
    pub(crate) namespaces: Mutex<HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
}

/// kube-apiserver's quota evaluator workers (`NewResourceQuota(configuration, 5)` in its admission plugin
/// registration).
pub(crate) const QUOTA_WORKERS: usize = 5;

impl Default for QuotaCharges {
    fn default() -> Self {
        QuotaCharges { workers: tokio::sync::Semaphore::new(QUOTA_WORKERS), namespaces: Default::default() }
    }
}

/// State shared by every request.
pub struct Shared {
    pub(crate) store: Mutex<Store>,
    pub(crate) tokens: RwLock<HashMap<String, User>>,
    pub(crate) faults: Faults,
    pub(crate) requests: Mutex<BTreeMap<(String, String, String), u64>>,
    pub(crate) writes: Mutex<Vec<WriteRecord>>,
    pub(crate) bookmark_interval: Duration,
    /// Set while [`crate::ApiSim::restart`] has the server down: a request that was in flight when its
    /// connection closed is not applied.
    pub(crate) down: std::sync::atomic::AtomicBool,
    /// Clients for calling admission webhooks, by `caBundle`: kept and reused, connections included, as
    /// kube-apiserver's webhook client manager keeps them (a TLS handshake per admitted write would make
    /// webhooks cost what they do not cost on a real server).
    pub(crate) webhook_clients: Mutex<HashMap<String, reqwest::Client>>,
    /// Quota admission's evaluation, as kube-apiserver's quota evaluator runs it
    /// (plugin/pkg/admission/resourcequota: a work queue keyed by namespace drained by a fixed number of
    /// workers, and a namespace in progress is never taken by a second worker): charges in one namespace are
    /// serialized, charges in different namespaces run side by side, at most [`QUOTA_WORKERS`] at once.
    pub(crate) quota_charges: QuotaCharges,
}

/// Parsed request target.
struct Target {
    t: Arc<ResourceType>,
    version: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_end_matches('/').to_owned();
    let query = parse_query(uri.query().unwrap_or(""));
    match path.as_str() {
        "/version" => return json_response(200, version()),
        "/healthz" | "/readyz" | "/livez" => return (StatusCode::OK, "ok").into_response(),
        "/metrics" => return (StatusCode::OK, render_metrics(&shared)).into_response(),
        _ => {}
    }
    let Some(user) = authenticate(&shared, &headers) else {
        return error_response(&ApiError::unauthorized());
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // Discovery.
    match segments.as_slice() {
        ["api"] => {
            return json_response(
                200,
                json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
            );
        }
        ["api", "v1"] => return json_response(200, resource_list(&shared, "", "v1")),
        ["apis"] => return json_response(200, group_list(&shared)),
        ["apis", group] => {
            return match group_list(&shared)["groups"]
                .as_array()
                .and_then(|g| g.iter().find(|g| g["name"] == *group).cloned())
            {
                Some(mut g) => {
                    g["kind"] = json!("APIGroup");
                    g["apiVersion"] = json!("v1");
                    json_response(200, g)
                }
                None => error_response(&ApiError::not_found("", "groups", group)),
            };
        }
        ["apis", group, version] => return json_response(200, resource_list(&shared, group, version)),
        ["openapi", rest @ ..] => return crate::openapi::serve(&shared, rest, &headers),
        _ => {}
    }
    let target = match resolve_target(&shared, &segments) {
        Ok(t) => t,
        Err(e) => return error_response(&e),
    };
    let verb =
        match (&method, target.name.is_some(), query.get("watch").is_some_and(|w| w == "true" || w == "1")) {
            (&Method::GET, _, true) => "WATCH",
            (&Method::GET, true, _) => "GET",
            (&Method::GET, false, _) => "LIST",
            (&Method::POST, _, _) => "POST",
            (&Method::PUT, _, _) => "PUT",
            (&Method::PATCH, _, _) => "PATCH",
            (&Method::DELETE, _, _) => "DELETE",
            _ => return error_response(&ApiError::method_not_allowed(format!("{method} is not supported"))),
        };
    let attrs = crate::rbac::Attributes {
        verb: rbac_verb(verb).to_owned(),
        group: target.t.group.clone(),
        resource: target.t.plural.clone(),
        subresource: target.subresource.clone().unwrap_or_default(),
        namespace: target.namespace.clone().unwrap_or_default(),
        name: target.name.clone().unwrap_or_default(),
    };
    let (allowed, _) = crate::rbac::authorize(&shared.store.lock(), &user, &attrs);
    if !allowed {
        let e = ApiError::forbidden_by_rbac(crate::rbac::forbidden_message(&user, &attrs), &attrs);
        count(&shared, verb, &target.t.plural, e.code);
        return error_response(&e);
    }
    let writer = WriteContext {
        manager: crate::managed::manager_name(
            query.get("fieldManager").map(String::as_str),
            headers.get("user-agent").and_then(|v| v.to_str().ok()),
        ),
        api_version: api_version(&target.t.group, &target.version),
        time: crate::store::now(),
    };
    if target.t.group == "authorization.k8s.io" {
        let response = if verb == "POST" {
            review(&shared, &target.t, &headers, &body, &user, &writer)
        } else {
            error_response(&ApiError::method_not_allowed(format!("{} only supports create", target.t.plural)))
        };
        count(&shared, verb, &target.t.plural, response.status().as_u16());
        return response;
    }
    // kube-apiserver's request deadline (`WithRequestDeadline`): `?timeout=` (a Go duration) for anything but a
    // watch, capped by `--request-timeout` (60 s); a request still unserved at its deadline is answered 504 and
    // not applied.
    let deadline = match request_deadline(verb, &query) {
        Ok(deadline) => deadline,
        Err(e) => {
            count(&shared, verb, &target.t.plural, e.code);
            return error_response(&e);
        }
    };
    if verb != "WATCH"
        && let Some(retry_after) = shared.faults.throttle(&user.name)
    {
        let mut r = error_response(&ApiError::throttled(retry_after));
        r.headers_mut().insert("Retry-After", retry_after.to_string().parse().expect("digits"));
        count(&shared, verb, &target.t.plural, 429);
        return r;
    }
    let (latency, fault) = shared.faults.decide(verb, &target.t.plural, &user.name);
    if !latency.is_zero() {
        // A slow request is still cut at its deadline, as the server's request context is.
        let until = Instant::now() + latency;
        tokio::time::sleep_until(deadline.map_or(until, |d| until.min(d)).into()).await;
    }
    // The load profile (faults.rs): a write's seat and commit; the seat is held until this function returns.
    let _seat = match shared.faults.seat(verb, deadline).await {
        Ok(seat) => seat,
        Err(throttled) => {
            count(&shared, verb, &target.t.plural, 429);
            return throttled;
        }
    };
    // Protobuf and YAML bodies become JSON here; other media types (CBOR) are refused with 415.
    let (body, refused) = crate::protobuf::json_request_body(&target.t, verb, &headers, body);
    let response = if let Some(e) = refused {
        error_response(&e)
    } else if shared.down.load(std::sync::atomic::Ordering::SeqCst) {
        // Nobody hears this answer: the connection it came on is gone.
        return error_response(&ApiError::injected(503, None));
    } else if deadline.is_some_and(|d| Instant::now() >= d) {
        error_response(&ApiError::timeout())
    } else if let Some((code, retry_after)) = fault {
        let mut r = error_response(&ApiError::injected(code, retry_after));
        if let Some(secs) = retry_after {
            r.headers_mut().insert("Retry-After", secs.to_string().parse().expect("digits"));
        }
        r
    } else if verb == "WATCH" {
        watch(&shared, &target, &query)
    } else {
        serve(&shared, &target, verb, &query, &headers, &body, &user, &writer).await
    };
    let code = response.status().as_u16();
    count(&shared, verb, &target.t.plural, code);
    if matches!(verb, "POST" | "PUT" | "PATCH" | "DELETE") {
        let name = target.name.clone().unwrap_or_else(|| {
            serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default()
        });
        shared.writes.lock().push(WriteRecord {
            user: user.name.clone(),
            verb: verb.to_owned(),
            resource: target.t.plural.clone(),
            namespace: target.namespace.clone().unwrap_or_default(),
            name,
            code,
            at: Instant::now(),
        });
    }
    response
}

/// kube-apiserver's default `--request-timeout`, the most any request may ask for.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// When a request must be served by: `timeout` capped by [`REQUEST_TIMEOUT`], from now. Watches have none
/// (they are long-running and end by `timeoutSeconds`). An unparseable `timeout` is a 400, as on the real server.
fn request_deadline(verb: &str, query: &HashMap<String, String>) -> Result<Option<Instant>, ApiError> {
    if verb == "WATCH" {
        return Ok(None);
    }
    let timeout = match query.get("timeout").filter(|t| !t.is_empty()) {
        None => REQUEST_TIMEOUT,
        Some(text) => match hnc_api::duration::parse_go(text) {
            Some(timeout) => timeout.min(REQUEST_TIMEOUT),
            None => {
                return Err(ApiError::bad_request(format!(
                    "invalid timeout specified in the request URL: {text:?}"
                )));
            }
        },
    };
    Ok(Some(Instant::now() + timeout))
}

fn count(shared: &Shared, verb: &str, resource: &str, code: u16) {
    *shared.requests.lock().entry((verb.to_owned(), resource.to_owned(), code.to_string())).or_default() += 1;
}

/// The RBAC verb of a request.
fn rbac_verb(verb: &str) -> &'static str {
    match verb {
        "GET" => "get",
        "LIST" => "list",
        "WATCH" => "watch",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        _ => "delete",
    }
}

/// Answers a SubjectAccessReview (for the user in its spec) or SelfSubjectAccessReview (for the requester).
fn review(
    shared: &Shared,
    t: &ResourceType,
    headers: &HeaderMap,
    body: &[u8],
    requester: &User,
    writer: &WriteContext,
) -> Response {
    let plural = t.plural.as_str();
    let protobuf =
        headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.contains("protobuf"));
    let parsed = if protobuf {
        crate::protobuf::decode_access_review(body)
            .map_err(|e| ApiError::bad_request(format!("cannot decode protobuf body: {e}")))
    } else {
        parse_body(body)
    };
    let mut obj = match parsed {
        Ok(v) => v,
        Err(e) => return error_response(&e),
    };
    obj["kind"] = json!(if plural == "selfsubjectaccessreviews" {
        "SelfSubjectAccessReview"
    } else {
        "SubjectAccessReview"
    });
    let spec = &obj["spec"];
    let user = if plural == "selfsubjectaccessreviews" {
        requester.clone()
    } else {
        User {
            name: spec["user"].as_str().unwrap_or_default().to_owned(),
            groups: spec["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect(),
        }
    };
    let Some(ra) = spec.get("resourceAttributes").filter(|r| r.is_object()) else {
        return error_response(&ApiError::bad_request(
            "only resourceAttributes are supported in access reviews",
        ));
    };
    let field = |k: &str| ra[k].as_str().unwrap_or_default().to_owned();
    let attrs = crate::rbac::Attributes {
        verb: field("verb"),
        group: field("group"),
        resource: field("resource"),
        subresource: field("subresource"),
        namespace: field("namespace"),
        name: field("name"),
    };
    let (allowed, reason) = crate::rbac::authorize(&shared.store.lock(), &user, &attrs);
    // A review is created and answered, never stored: it has managedFields but no creationTimestamp.
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    crate::managed::record(&crate::kinds::KindSchema(t), &t.zero(), &mut obj, &writer.writer());
    obj["metadata"]["creationTimestamp"] = Value::Null;
    obj["status"] = json!({"allowed": allowed});
    if !reason.is_empty() {
        obj["status"]["reason"] = json!(reason);
    }
    obj["apiVersion"] = json!("authorization.k8s.io/v1");
    json_response(201, obj)
}

fn authenticate(shared: &Shared, headers: &HeaderMap) -> Option<User> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    shared.tokens.read().get(token).cloned()
}

fn resolve_target(shared: &Shared, segments: &[&str]) -> Result<Target, ApiError> {
    let (group, version, rest) = match segments {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(ApiError::not_found("", "", &segments.join("/"))),
    };
    let store = shared.store.lock();
    let lookup = |resource: &str| {
        store
            .resolve(group, resource)
            .filter(|t| t.versions.iter().any(|v| v == version))
            .ok_or_else(|| ApiError::not_found(group, resource, ""))
    };
    // namespaces/{ns}/{resource}[/{name}[/{sub}]] addresses namespaced objects; namespaces[/{name}[/{sub}]] the
    // Namespace objects themselves.
    if let ["namespaces", ns, resource, tail @ ..] = rest
        && !(group.is_empty() && matches!(*resource, "status" | "finalize") && tail.is_empty())
    {
        let t = lookup(resource)?;
        if !t.namespaced {
            return Err(ApiError::not_found(group, resource, ""));
        }
        return Ok(Target {
            t,
            version: version.to_owned(),
            namespace: Some((*ns).to_owned()),
            name: tail.first().map(|s| (*s).to_owned()),
            subresource: tail.get(1).map(|s| (*s).to_owned()),
        });
    }
    match rest {
        [resource, tail @ ..] => {
            let t = lookup(resource)?;
            if t.namespaced && !tail.is_empty() {
                return Err(ApiError::not_found(group, resource, tail[0]));
            }
            Ok(Target {
                t,
                version: version.to_owned(),
                namespace: None,
                name: tail.first().map(|s| (*s).to_owned()),
                subresource: tail.get(1).map(|s| (*s).to_owned()),
            })
        }
        [] => Err(ApiError::not_found(group, "", "")),
    }
}

/// Who makes a write, for managedFields.
pub(crate) struct WriteContext {
    manager: String,
    api_version: String,
    time: String,
}

impl WriteContext {
    fn writer(&self) -> Writer<'_> {
        Writer { manager: &self.manager, api_version: &self.api_version, subresource: None, time: &self.time }
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    shared: &Shared,
    target: &Target,
    verb: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
    user: &User,
    writer: &WriteContext,
) -> Response {
    let t = &target.t;
    let ns = target.namespace.as_deref().unwrap_or("");
    let name = target.name.as_deref().unwrap_or("");
    let dry_run = query.get("dryRun").is_some_and(|d| d == "All");
    if t.namespaced && target.namespace.is_none() && verb != "LIST" {
        return error_response(&ApiError::method_not_allowed(
            "namespaced resources must be addressed within a namespace",
        ));
    }
    let status_only = match target.subresource.as_deref() {
        None => false,
        Some("status") if t.status_subresource || t.crd.is_none() => true,
        Some(sub) => {
            return error_response(&ApiError::not_found(&t.group, &format!("{}/{sub}", t.plural), name));
        }
    };
    let result = match verb {
        "GET" => shared.store.lock().get(t, ns, name).map(|o| (200, o)),
        "LIST" => return list(shared, target, query),
        "POST" => {
            async {
                let mut obj = parse_body(body)?;
                t.decode_defaults(&mut obj);
                let obj_name =
                    obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
                let req = admission_request(target, &obj_name, "CREATE", Some(obj), None, user, dry_run);
                let obj = admission::admit(shared, req).await?.unwrap_or_default();
                crate::quota::charge(shared, t, ns, &obj_name, &obj, dry_run).await?;
                let created = shared.store.lock().create(t, ns, obj, &writer.writer(), dry_run)?;
                if !dry_run && t.group.is_empty() && t.plural == "resourcequotas" {
                    crate::quota::recalculate(&mut shared.store.lock(), ns, Some(&obj_name));
                }
                Ok((201, created))
            }
            .await
        }
        "PUT" => {
            async {
                let mut obj = parse_body(body)?;
                t.decode_defaults(&mut obj);
                let old = match shared.store.lock().get(t, ns, name) {
                    Ok(old) => Some(old),
                    Err(e) if e.code == 404 && t.creates_on_update() && !status_only => None,
                    Err(e) => return Err(e),
                };
                let operation = if old.is_some() { "UPDATE" } else { "CREATE" };
                let req = admission_request(target, name, operation, Some(obj), old, user, dry_run);
                let obj = admission::admit(shared, req).await?.unwrap_or_default();
                let (obj, written) =
                    shared.store.lock().update(t, ns, name, obj, status_only, &writer.writer(), dry_run)?;
                if !dry_run && !status_only && t.group.is_empty() && t.plural == "resourcequotas" {
                    crate::quota::recalculate(&mut shared.store.lock(), ns, Some(name));
                }
                Ok((if written == Written::Created { 201 } else { 200 }, obj))
            }
            .await
        }
        "PATCH" => {
            patch(shared, target, headers, body, status_only, dry_run, user, writer).await.map(|o| (200, o))
        }
        "DELETE" => {
            async {
                let old = shared.store.lock().get(t, ns, name)?;
                admission::admit(
                    shared,
                    admission_request(target, name, "DELETE", None, Some(old), user, dry_run),
                )
                .await?;
                let deleted = delete(shared, target, body, dry_run)?;
                if !dry_run {
                    // The quota controller's replenishment.
                    crate::quota::recalculate(&mut shared.store.lock(), ns, None);
                }
                Ok(deleted)
            }
            .await
        }
        _ => unreachable!("verb decided above"),
    };
    match result {
        Ok((code, mut obj)) => {
            if obj.get("kind").and_then(Value::as_str) == Some(t.kind.as_str()) {
                obj["apiVersion"] = json!(api_version(&t.group, &target.version));
            }
            json_response(code, obj)
        }
        Err(e) => error_response(&e),
    }
}

fn admission_request<'a>(
    target: &'a Target,
    name: &'a str,
    operation: &'static str,
    object: Option<Value>,
    old_object: Option<Value>,
    user: &'a User,
    dry_run: bool,
) -> admission::Request<'a> {
    admission::Request {
        operation,
        t: &target.t,
        version: &target.version,
        subresource: target.subresource.as_deref(),
        namespace: target.namespace.as_deref().unwrap_or(""),
        name,
        object,
        old_object,
        user,
        dry_run,
    }
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

/// The media type of a request body, without parameters.
fn media_type(headers: &HeaderMap) -> String {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Applies a patch as the real server does: to the current object, through admission, retried when the object
/// changed underneath (unless the patch itself pins a resourceVersion, which then conflicts).
#[allow(clippy::too_many_arguments)]
async fn patch(
    shared: &Shared,
    target: &Target,
    headers: &HeaderMap,
    body: &[u8],
    status_only: bool,
    dry_run: bool,
    user: &User,
    writer: &WriteContext,
) -> Result<Value, ApiError> {
    let t = &target.t;
    let ns = target.namespace.as_deref().unwrap_or("");
    let name = target.name.as_deref().unwrap_or("");
    let content_type = media_type(headers);
    // Custom resources have no strategic merge patch: their fields carry no patch strategies.
    let mut accepted = vec!["application/json-patch+json", "application/merge-patch+json"];
    if !t.is_custom() {
        accepted.push("application/strategic-merge-patch+json");
    }
    accepted.push("application/apply-patch+yaml");
    if content_type == "application/apply-patch+yaml" {
        return Err(ApiError::unsupported_media_type(&accepted[..accepted.len() - 1]));
    }
    if !accepted.contains(&content_type.as_str()) {
        return Err(ApiError::unsupported_media_type(&accepted));
    }
    let mut attempts = 0;
    loop {
        attempts += 1;
        let current = shared.store.lock().get(t, ns, name)?;
        let mut obj = current.clone();
        match content_type.as_str() {
            // Strategic merge patches are applied as JSON merge patches: lists are replaced, not merged by key.
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                let p = parse_body(body)?;
                if !p.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                json_patch::merge(&mut obj, &p);
            }
            _ => {
                let p: json_patch::Patch = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                json_patch::patch(&mut obj, &p).map_err(|_| ApiError::patch_rejected())?;
            }
        }
        t.decode_defaults(&mut obj);
        let pinned = obj["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"];
        let req = admission_request(target, name, "UPDATE", Some(obj), Some(current), user, dry_run);
        let obj = admission::admit(shared, req).await?.unwrap_or_default();
        match shared.store.lock().update(t, ns, name, obj, status_only, &writer.writer(), dry_run) {
            Err(e) if e.code == 409 && !pinned && attempts < 5 => continue,
            other => return other.map(|(o, _)| o),
        }
    }
}

fn delete(shared: &Shared, target: &Target, body: &[u8], dry_run: bool) -> Result<(u16, Value), ApiError> {
    let t = &target.t;
    let Some(name) = target.name.as_deref() else {
        return Err(ApiError::method_not_allowed("deletecollection is not supported"));
    };
    let options: Value = if body.is_empty() { json!({}) } else { parse_body(body)? };
    let rv = options.pointer("/preconditions/resourceVersion").and_then(Value::as_str);
    let uid = options.pointer("/preconditions/uid").and_then(Value::as_str);
    let dry_run = dry_run
        || options.get("dryRun").and_then(Value::as_array).is_some_and(|d| d.iter().any(|x| x == "All"));
    match shared.store.lock().delete(t, target.namespace.as_deref().unwrap_or(""), name, rv, uid, dry_run)? {
        // Removed at once: kube-apiserver answers with a Status, not the object.
        Deleted::Gone(obj) => {
            let uid = obj.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default();
            Ok((200, ApiError::deleted(&t.group, &t.plural, name, uid)))
        }
        // Still there (finalizers, a terminating namespace): the object as it now is.
        Deleted::Pending(obj) => Ok((200, obj)),
    }
}

fn list(shared: &Shared, target: &Target, query: &HashMap<String, String>) -> Response {
    let t = &target.t;
    let label_query = query.get("labelSelector").map(String::as_str).unwrap_or("");
    let field_query = query.get("fieldSelector").map(String::as_str).unwrap_or("");
    let labels = match LabelSelector::parse(label_query) {
        Ok(l) => l,
        Err(e) => return error_response(&ApiError::bad_request(format!("unable to parse requirement: {e}"))),
    };
    let fields = match FieldSelector::parse(field_query) {
        Ok(f) => f,
        Err(e) => return error_response(&ApiError::bad_request(e)),
    };
    let limit = query.get("limit").and_then(|l| l.parse::<usize>().ok()).filter(|l| *l > 0);
    let continued = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => match decode_continue(token) {
            Some(token) => Some(token),
            None => return error_response(&ApiError::bad_request("invalid continue token")),
        },
        None => None,
    };
    // resourceVersionMatch=Exact asks for the state at that version; otherwise the newest state serves
    // (it is never older than what any client saw).
    let exact = match query.get("resourceVersionMatch").map(String::as_str) {
        Some("Exact") => match query.get("resourceVersion").and_then(|r| r.parse::<u64>().ok()) {
            Some(rv) => Some(rv),
            None => {
                return error_response(&ApiError::bad_request(
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
        },
        _ => None,
    };
    let store = shared.store.lock();
    // Every page of a paged list is served as of the first page's resourceVersion, which the token carries.
    let rv = continued.as_ref().map(|(rv, _)| *rv).or(exact).unwrap_or_else(|| store.resource_version());
    let listed = store.list(
        t,
        target.namespace.as_deref(),
        &labels,
        &fields,
        Some(rv),
        continued.as_ref().map(|(_, after)| after),
        limit,
    );
    drop(store);
    let page = match listed {
        Ok(page) => page,
        Err(e) if e.code == 410 && exact.is_some() && continued.is_none() => {
            return error_response(&ApiError::expired(
                "The resourceVersion for the provided list is too old.",
            ));
        }
        Err(e) => return error_response(&e),
    };
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(last) = &page.last {
        metadata["continue"] = json!(encode_continue(rv, last));
        // Counted only without selectors, as kube-apiserver can only count what it does not filter.
        if label_query.is_empty() && field_query.is_empty() {
            metadata["remainingItemCount"] = json!(page.remaining);
        }
    } else if t.list_items_have_type_meta() {
        // An unstructured list always carries the (empty) continue token.
        metadata["continue"] = json!("");
    }
    let api_version = api_version(&t.group, &target.version);
    let body = ListBody {
        api_version: &api_version,
        items: ListItems {
            items: &page.items,
            api_version: &api_version,
            typed: t.list_items_have_type_meta(),
        },
        kind: format!("{}List", t.kind),
        metadata,
    };
    // JSON values always encode (their keys are strings).
    let body = serde_json::to_string(&body).unwrap_or_default();
    ([("content-type", "application/json")], body).into_response()
}

/// A list response, serialized straight from the stored objects: at tens of thousands of objects per list,
/// copying each one to adjust its TypeMeta cost more than the encoding. Fields in the order a `Value` map
/// (sorted keys) would give.
#[derive(serde::Serialize)]
struct ListBody<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    items: ListItems<'a>,
    kind: String,
    metadata: Value,
}

/// The items of a list: custom resources' (unstructured) items carry the list's apiVersion and their kind,
/// built-in (typed) items carry neither.
struct ListItems<'a> {
    items: &'a [Arc<Value>],
    api_version: &'a str,
    typed: bool,
}

impl serde::Serialize for ListItems<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.items.len()))?;
        for item in self.items {
            seq.serialize_element(&ListItem {
                object: item,
                api_version: self.api_version,
                typed: self.typed,
            })?;
        }
        seq.end()
    }
}

struct ListItem<'a> {
    object: &'a Value,
    api_version: &'a str,
    typed: bool,
}

impl serde::Serialize for ListItem<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Some(fields) = self.object.as_object() else { return self.object.serialize(serializer) };
        let mut map = serializer.serialize_map(None)?;
        // The keys are sorted: apiVersion goes where inserting it into the map would put it.
        let mut api_version_written = !self.typed;
        for (key, value) in fields {
            if !api_version_written && key.as_str() >= "apiVersion" {
                map.serialize_entry("apiVersion", self.api_version)?;
                api_version_written = true;
                if key == "apiVersion" {
                    continue;
                }
            }
            if !self.typed && (key == "apiVersion" || key == "kind") {
                continue;
            }
            map.serialize_entry(key, value)?;
        }
        if !api_version_written {
            map.serialize_entry("apiVersion", self.api_version)?;
        }
        map.end()
    }
}

/// A continue token: the list's resourceVersion and the last key returned.
fn encode_continue(rv: u64, last: &(String, String)) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&json!([rv, last.0, last.1])).expect("json"))
}

fn decode_continue(token: &str) -> Option<(u64, (String, String))> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
    let (rv, ns, name): (u64, String, String) = serde_json::from_slice(&bytes).ok()?;
    Some((rv, (ns, name)))
}

/// A change replayed at the start of a watch: event type, object, resourceVersion (0 for synthetic ADDED).
type Backlogged = (&'static str, Arc<Value>, u64);

fn watch(shared: &Arc<Shared>, target: &Target, query: &HashMap<String, String>) -> Response {
    let labels = match LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or("")) {
        Ok(l) => l,
        Err(e) => return error_response(&ApiError::bad_request(e.to_string())),
    };
    let fields = match FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or("")) {
        Ok(f) => f,
        Err(e) => return error_response(&ApiError::bad_request(e)),
    };
    let bookmarks = query.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let t = target.t.clone();
    let key = t.key();
    let namespace = target.namespace.clone();
    let api_version = api_version(&t.group, &target.version);
    let since = query.get("resourceVersion").and_then(|r| r.parse::<u64>().ok()).filter(|r| *r > 0);

    // Backlog and subscription under one lock, so no change falls between them.
    let (backlog, mut live, mut current_rv) = {
        let store = shared.store.lock();
        let backlog: Result<Vec<Backlogged>, ApiError> = match since {
            Some(rv) => store
                .changes_since(&key, namespace.as_deref(), rv)
                .map(|cs| cs.iter().map(|c| (c.kind, c.object.clone(), c.rv)).collect()),
            None => store
                .list(&t, namespace.as_deref(), &labels, &fields, None, None, None)
                .map(|page| page.items.into_iter().map(|o| ("ADDED", o, 0)).collect()),
        };
        (backlog, store.subscribe(), store.resource_version())
    };
    let mut drops = shared.faults.watch_drops();
    let bookmark_interval = shared.bookmark_interval;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1024);
    tokio::spawn(async move {
        let line = |kind: &str, obj: &Value| {
            let mut obj = obj.clone();
            if kind != "ERROR" && kind != "BOOKMARK" {
                obj["apiVersion"] = json!(api_version);
            }
            let mut bytes = serde_json::to_vec(&json!({"type": kind, "object": obj})).expect("json");
            bytes.push(b'\n');
            Bytes::from(bytes)
        };
        let matches = |ns: &str, obj: &Value| {
            let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            fields.matches(ns, name) && (labels.is_empty() || labels.matches(&labels_of(obj)))
        };
        let backlog = match backlog {
            Ok(b) => b,
            Err(e) => {
                let _ = tx.send(line("ERROR", &e.status())).await;
                return;
            }
        };
        let mut last_sent = since.unwrap_or(0);
        for (kind, obj, rv) in backlog {
            let ns =
                obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default().to_owned();
            if !matches(&ns, &obj) {
                continue;
            }
            if tx.send(line(kind, &obj)).await.is_err() {
                return;
            }
            last_sent = last_sent.max(rv);
        }
        last_sent = last_sent.max(current_rv);
        let start = tokio::time::Instant::now();
        let deadline = start + timeout;
        // As kube-apiserver's watch cache: a bookmark every interval (a minute by default), and one 2 s before
        // the watch's deadline so that the client can resume from the newest version.
        let before_deadline = deadline.checked_sub(Duration::from_secs(2)).filter(|t| *t > start);
        let mut next_bookmark =
            before_deadline.map_or(start + bookmark_interval, |d| d.min(start + bookmark_interval));
        loop {
            tokio::select! {
                change = live.recv() => match change {
                    Ok(c) => {
                        current_rv = current_rv.max(c.rv);
                        if c.rv <= last_sent || c.key != key || namespace.as_deref().is_some_and(|ns| ns != c.namespace) || !matches(&c.namespace, &c.object) {
                            continue;
                        }
                        last_sent = c.rv;
                        if tx.send(line(c.kind, &c.object)).await.is_err() {
                            return;
                        }
                    }
                    // A watcher that fell too far behind is closed; its client relists, as with the real server.
                    Err(_) => return,
                },
                _ = tokio::time::sleep_until(next_bookmark), if bookmarks => {
                    let now = tokio::time::Instant::now();
                    next_bookmark = match before_deadline {
                        Some(d) if d > now => d.min(now + bookmark_interval),
                        _ => now + bookmark_interval,
                    };
                    // The kind's zero value carrying only the resourceVersion, as Go encodes an empty object.
                    let mut bookmark = t.zero();
                    bookmark["kind"] = json!(t.kind);
                    bookmark["apiVersion"] = json!(api_version);
                    bookmark["metadata"]["resourceVersion"] = json!(current_rv.max(last_sent).to_string());
                    if tx.send(line("BOOKMARK", &bookmark)).await.is_err() {
                        return;
                    }
                }
                _ = drops.recv() => return,
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tx.closed() => return,
            }
        }
    });
    let stream =
        futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx)) },
        );
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("transfer-encoding", "chunked")
        .body(Body::from_stream(stream))
        .expect("response")
}

/// A group version's resources as kube-apiserver lists them: sorted by name (built-in kinds are installed in
/// path order), with `storageVersionHash` for stored kinds and no `shortNames` when there are none.
fn resource_list(shared: &Shared, group: &str, version: &str) -> Value {
    let store = shared.store.lock();
    let mut resources: Vec<Value> = store
        .types()
        .filter(|t| t.group == group && t.versions.iter().any(|v| v == version))
        .flat_map(|t| {
            let mut main = json!({
                "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind,
                "verbs": t.verbs,
            });
            if !t.short_names.is_empty() {
                main["shortNames"] = json!(t.short_names);
            }
            if t.group != "authorization.k8s.io" {
                main["storageVersionHash"] = json!(storage_version_hash(&t.group, &t.versions[0], &t.kind));
            }
            let mut out = vec![main];
            if t.status_subresource {
                out.push(json!({"name": format!("{}/status", t.plural), "singularName": "", "namespaced": t.namespaced, "kind": t.kind, "verbs": ["get", "patch", "update"]}));
            }
            out
        })
        .collect();
    resources.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": api_version(group, version), "resources": resources})
}

/// kube-apiserver's `storageVersionHash`: the first 8 bytes of SHA-256 of `group/version/kind` of the
/// storage version, base64.
fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{group}/{version}/{kind}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest.as_ref()[..8])
}

fn group_list(shared: &Shared) -> Value {
    let store = shared.store.lock();
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in store.types().filter(|t| !t.group.is_empty()) {
        let versions = groups.entry(t.group.clone()).or_default();
        for v in &t.versions {
            if !versions.contains(v) {
                versions.push(v.clone());
            }
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(name, versions)| {
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
                .collect();
            json!({"name": name, "versions": vs, "preferredVersion": vs[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn version() -> Value {
    json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-apisim", "gitCommit": "", "gitTreeState": "clean",
           "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"})
}

fn render_metrics(shared: &Shared) -> String {
    let mut out = String::from(
        "# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, resource, and HTTP response code.\n# TYPE apiserver_request_total counter\n",
    );
    for ((verb, resource, code), count) in shared.requests.lock().iter() {
        out.push_str(&format!(
            "apiserver_request_total{{code=\"{code}\",resource=\"{resource}\",verb=\"{verb}\"}} {count}\n"
        ));
    }
    let store = shared.store.lock();
    out.push_str(&format!("# TYPE apisim_objects gauge\napisim_objects {}\n", store.object_count()));
    out
}

fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or(""), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn json_response(code: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub(crate) fn error_response(e: &ApiError) -> Response {
    json_response(e.code, e.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_get_their_timeout_capped_and_watches_none() {
        let query = |t: &str| HashMap::from([("timeout".to_owned(), t.to_owned())]);
        assert!(request_deadline("WATCH", &query("1s")).unwrap().is_none());
        let capped = request_deadline("PUT", &query("1h")).unwrap().unwrap();
        assert!(capped <= Instant::now() + REQUEST_TIMEOUT);
        assert_eq!(request_deadline("PUT", &query("soon")).unwrap_err().code, 400);
    }
}
