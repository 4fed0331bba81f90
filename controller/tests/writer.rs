//! The writer against a scripted API server over real HTTP, through the kube client: what is retried, what is
//! reported for re-planning, what the fence stops, and how writes to one object coalesce.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use hnc_controller::writer::{Fence, ObjectRef, Outcome, WriteOp, WriteRequest, Writer, WriterConfig};
use kube::core::ApiResource;
use serde_json::json;
use tokio::sync::mpsc;

/// Requests seen, and scripted answers (status, body) consumed in order; 200 with the body echoed when empty.
#[derive(Clone, Default)]
struct Script {
    seen: Arc<Mutex<Vec<(Method, String)>>>,
    answers: Arc<Mutex<VecDeque<(u16, serde_json::Value)>>>,
    delay: Arc<Mutex<Duration>>,
}

async fn handle(State(script): State<Script>, method: Method, uri: Uri, body: Bytes) -> impl IntoResponse {
    script.seen.lock().unwrap().push((method.clone(), uri.path().to_owned()));
    let delay = *script.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let answer = script.answers.lock().unwrap().pop_front();
    match answer {
        Some((code, body)) => (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response(),
        None => {
            let mut obj: serde_json::Value = serde_json::from_slice(&body).unwrap_or(json!({}));
            if obj.get("metadata").is_none() {
                obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "a"}});
            }
            obj["metadata"]["resourceVersion"] = json!("2");
            (StatusCode::OK, axum::Json(obj)).into_response()
        }
    }
}

fn status(code: u16, reason: &str, retry_after: Option<u32>) -> serde_json::Value {
    let mut s = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": reason, "reason": reason, "code": code});
    if let Some(secs) = retry_after {
        s["details"] = json!({"retryAfterSeconds": secs});
    }
    s
}

async fn server(script: Script) -> kube::Client {
    let router = Router::new().fallback(handle).with_state(script);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url: http::Uri = format!("http://{}", listener.local_addr().unwrap()).parse().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    hnc_controller::writer::writer_client(&kube::Config::new(url)).unwrap()
}

fn configmaps() -> Arc<ApiResource> {
    Arc::new(ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        plural: "configmaps".into(),
    })
}

fn cm(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "a", "resourceVersion": "1"}})
}

fn request(name: &str, op: WriteOp) -> WriteRequest {
    WriteRequest::new(ObjectRef::new(configmaps(), Some("a"), name), op, name)
}

fn fast_config() -> WriterConfig {
    let mut config = WriterConfig::with_qps(1000.0);
    config.base_backoff = Duration::from_millis(10);
    config
}

fn allow_all() -> Fence {
    Arc::new(|_: &str| true)
}

async fn outcomes(
    rx: &mut mpsc::UnboundedReceiver<hnc_controller::writer::Completed>,
    n: usize,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap().outcome);
    }
    out
}

#[tokio::test]
async fn throttling_is_retried_after_the_servers_delay_and_conflicts_are_reported() {
    let script = Script::default();
    script
        .answers
        .lock()
        .unwrap()
        .extend([(429, status(429, "TooManyRequests", Some(1))), (500, status(500, "InternalError", None))]);
    let client = server(script.clone()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (writer, _task) = Writer::start(client, fast_config(), allow_all(), Some(tx));

    let started = std::time::Instant::now();
    writer.submit(request("x", WriteOp::update(cm("x"))));
    assert_eq!(outcomes(&mut rx, 1).await, vec![Outcome::Written]);
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After honoured");
    assert_eq!(script.seen.lock().unwrap().len(), 3, "429, 500, then success");
    assert!(writer.current_rate() < 1000.0, "congestion lowered the rate");

    script.answers.lock().unwrap().push_back((409, status(409, "Conflict", None)));
    writer.submit(request("x", WriteOp::update(cm("x"))));
    assert_eq!(outcomes(&mut rx, 1).await, vec![Outcome::Conflict]);
    assert_eq!(script.seen.lock().unwrap().len(), 4, "a conflict is never retried blindly");
}

#[tokio::test]
async fn deleting_what_is_gone_succeeds_and_permanent_errors_are_not_retried() {
    let script = Script::default();
    script.answers.lock().unwrap().extend([
        (404, status(404, "NotFound", None)),
        (403, status(403, "Forbidden", None)),
        (404, status(404, "NotFound", None)),
    ]);
    let client = server(script.clone()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (writer, _task) = Writer::start(client, fast_config(), allow_all(), Some(tx));

    writer.submit(request("x", WriteOp::Delete { resource_version: Some("1".into()) }));
    assert_eq!(outcomes(&mut rx, 1).await, vec![Outcome::Written]);
    writer.submit(request("y", WriteOp::create(cm("y"))));
    assert!(matches!(outcomes(&mut rx, 1).await[0], Outcome::Failed { code: Some(403), .. }));
    writer.submit(request("z", WriteOp::MergePatch(json!({"data": {"k": "v"}}))));
    assert_eq!(outcomes(&mut rx, 1).await, vec![Outcome::Gone]);
    assert_eq!(script.seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn the_fence_stops_writes_before_they_are_sent() {
    let script = Script::default();
    let client = server(script.clone()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let fence: Fence = Arc::new(|scope: &str| scope != "not-mine");
    let (writer, _task) = Writer::start(client, fast_config(), fence, Some(tx));
    writer.submit_batch(vec![
        request("not-mine", WriteOp::create(cm("not-mine"))),
        request("mine", WriteOp::create(cm("mine"))),
    ]);
    let mut got = outcomes(&mut rx, 2).await;
    got.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(got, vec![Outcome::Fenced, Outcome::Written]);
    assert_eq!(
        script.seen.lock().unwrap().as_slice(),
        &[(Method::POST, "/api/v1/namespaces/a/configmaps".to_owned())]
    );
}

#[tokio::test]
async fn writes_to_one_object_coalesce_behind_the_one_in_flight() {
    let script = Script::default();
    *script.delay.lock().unwrap() = Duration::from_millis(300);
    let client = server(script.clone()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (writer, _task) = Writer::start(client, fast_config(), allow_all(), Some(tx));

    writer.submit(request("x", WriteOp::update(cm("x"))));
    tokio::time::sleep(Duration::from_millis(100)).await; // the first is in flight now
    writer.submit(request("x", WriteOp::update(cm("x"))));
    writer.submit(request("x", WriteOp::update(cm("x"))));
    writer.idle().await;
    let got = outcomes(&mut rx, 3).await;
    assert_eq!(got.iter().filter(|o| **o == Outcome::Superseded).count(), 1, "{got:?}");
    assert_eq!(got.iter().filter(|o| **o == Outcome::Written).count(), 2, "{got:?}");
    assert_eq!(script.seen.lock().unwrap().len(), 2, "the superseded plan was never sent");
}
