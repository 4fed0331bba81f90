//! The realistic load profile over HTTP: writes hold seats, queue, and beyond the queue get kube-apiserver's 429.

use std::time::Duration;

use hnc_apisim::{ApiSim, Config, LoadProfile};
use serde_json::{Value, json};

#[tokio::test]
async fn writes_beyond_seats_and_queue_get_apfs_429_with_retry_after() {
    let sim = ApiSim::start(Config::default()).await.unwrap();
    // Long enough a commit that all eight requests arrive while the first two hold their seats.
    sim.faults().set_profile(Some(LoadProfile {
        commit_latency: Duration::from_millis(1500),
        seats: 2,
        queue_length: 2,
        ..LoadProfile::realistic()
    }));
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/namespaces/default/configmaps", sim.http_url());
    let sends = (0..8).map(|i| {
        http.post(&url)
            .bearer_auth(sim.admin_token())
            .json(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{i}")}}))
            .send()
    });
    let responses = futures::future::join_all(sends).await;

    // Reads are not limited, even while every seat is taken.
    let read = http.get(&url).bearer_auth(sim.admin_token()).send().await.unwrap();
    assert_eq!(read.status(), 200);

    let mut created = 0;
    let mut throttled = 0;
    for response in responses {
        let response = response.unwrap();
        match response.status().as_u16() {
            201 => created += 1,
            429 => {
                throttled += 1;
                assert_eq!(response.headers()["retry-after"], "1");
                let body: Value = response.json().await.unwrap();
                assert_eq!(
                    body,
                    json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                        "message":"Too many requests, please try again later.","reason":"TooManyRequests",
                        "details":{"retryAfterSeconds":1},"code":429})
                );
            }
            other => panic!("unexpected {other}"),
        }
    }
    let stats = sim.faults().profile_stats();
    assert!(created >= 4 && throttled >= 1, "{created} created, {throttled} throttled");
    assert_eq!((stats.admitted, stats.rejected), (created, throttled));
    assert!((1..=2).contains(&stats.peak_waiting), "{stats:?}");
    assert!(stats.waited >= Duration::from_secs(1), "the queued ones waited for a seat: {stats:?}");

    sim.faults().set_profile(None);
    assert_eq!(sim.faults().profile_stats(), Default::default());
    assert_eq!(sim.faults().profile(), None);
}
