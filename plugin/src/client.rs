//! Connecting to the cluster the way kubectl does, and calling it the way upstream's plugin does: every request
//! bounded by one timeout (`--request-timeout`, 5s by default, as upstream's fixed per-call deadline), errors
//! printed as the API server's message.
//!
//! Kubeconfig lookup: `--kubeconfig`, else `KUBECONFIG` (a path list, merged), else `~/.kube/config`, else the
//! in-cluster service account. `--context`, `--cluster` and `--user` select within it; `--as`, `--as-group`
//! and `--as-uid` impersonate.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use kube::Resource;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cli::GlobalFlags;

/// A connection to the cluster and the settings every command shares.
pub struct Ctx {
    /// The API client.
    pub client: kube::Client,
    /// The namespace of the kubeconfig context (or of the in-cluster service account); `default` if none.
    pub context_namespace: String,
    timeout: RequestTimeout,
}

/// `--request-timeout`: a Go/kubectl duration (`5s`, `1m30s`, `500ms`, or bare seconds); zero means none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTimeout {
    /// The timeout; `None` waits forever.
    pub duration: Option<Duration>,
    text: String,
}

impl RequestTimeout {
    /// Parses kubectl's syntax: a bare integer is seconds, otherwise a sequence of `<number><unit>` with units
    /// `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`.
    pub fn parse(text: &str) -> Result<RequestTimeout, String> {
        let invalid = || {
            format!(
                "invalid timeout value {text:?}: use a duration with a unit such as 5s, 2m or 1h (0 for none)"
            )
        };
        let parsed = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            text.parse::<u64>().ok().map(Duration::from_secs)
        } else {
            hnc_api::duration::parse_go(text)
        };
        // As in Go: less than a nanosecond is zero, and zero means no timeout; beyond the longest Go duration
        // (about 2562047h) there is none.
        let duration = parsed.filter(|d| *d <= hnc_api::duration::MAX_GO).ok_or_else(invalid)?;
        let duration = (!duration.is_zero()).then_some(duration);
        Ok(RequestTimeout { duration, text: text.to_owned() })
    }
}

/// A failed API call, printed as upstream prints the Go error: the API server's message for API errors.
#[derive(Debug)]
pub enum ApiError {
    /// The client or the server failed.
    Kube(kube::Error),
    /// No answer within `--request-timeout`.
    Timeout(String),
    /// The object read does not have the shape of its kind.
    Decode(String),
}

impl ApiError {
    /// The server answered 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::Kube(kube::Error::Api(status)) if status.code == 404)
    }

    /// The server answered 403.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, ApiError::Kube(kube::Error::Api(status)) if status.code == 403)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Decode(error) => write!(f, "cannot read the object: {error}"),
            ApiError::Timeout(limit) => {
                write!(f, "no answer from the API server within {limit} (--request-timeout)")
            }
            ApiError::Kube(kube::Error::Api(status)) if !status.message.is_empty() => {
                f.write_str(&status.message)
            }
            ApiError::Kube(kube::Error::Api(status)) => {
                write!(f, "the server responded with {} {}", status.code, status.reason)
            }
            ApiError::Kube(error) => {
                // kube's errors repeat their source in their own text; print each cause once.
                let mut text = error.to_string();
                let mut source = std::error::Error::source(error);
                while let Some(cause) = source {
                    let cause_text = cause.to_string();
                    if !text.contains(&cause_text) {
                        text.push_str(": ");
                        text.push_str(&cause_text);
                    }
                    source = cause.source();
                }
                f.write_str(&text)
            }
        }
    }
}

impl Ctx {
    /// Runs one API call under the request timeout.
    pub async fn call<T>(
        &self,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ApiError> {
        match self.timeout.duration {
            Some(limit) => match tokio::time::timeout(limit, request).await {
                Ok(result) => result.map_err(ApiError::Kube),
                Err(_) => Err(ApiError::Timeout(self.timeout.text.clone())),
            },
            None => request.await.map_err(ApiError::Kube),
        }
    }

    /// The API of HNC's custom resource `K`, in `namespace` (or cluster-wide), exchanging untyped objects: read
    /// them with [`decode`], so that objects without `spec` are accepted.
    pub fn hnc_api<K: Resource<DynamicType = ()>>(&self, namespace: Option<&str>) -> Api<DynamicObject> {
        let resource = ApiResource::erase::<K>(&());
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        }
    }

    /// `-n` if given (even empty), else the context's namespace — what `create`, `delete` and `hrq` act in.
    pub fn namespace(&self, flag: Option<&str>) -> String {
        flag.map_or_else(|| self.context_namespace.clone(), str::to_owned)
    }
}

/// Reads an HNC object as its typed kind. HNC's CRDs do not default `spec`, so an object created with metadata
/// alone (a SubnamespaceAnchor typically) has none; like upstream's Go decoding, it reads as an empty spec.
pub fn decode<K: DeserializeOwned>(object: DynamicObject) -> Result<K, ApiError> {
    let mut value = serde_json::to_value(object).map_err(|e| ApiError::Decode(e.to_string()))?;
    if let Some(fields) = value.as_object_mut()
        && fields.get("spec").is_none_or(serde_json::Value::is_null)
    {
        fields.insert("spec".to_owned(), serde_json::json!({}));
    }
    serde_json::from_value(value).map_err(|e| ApiError::Decode(e.to_string()))
}

/// A typed HNC object as the untyped object [`Ctx::hnc_api`] sends.
pub fn encode<K: Serialize>(object: &K) -> Result<DynamicObject, ApiError> {
    serde_json::to_value(object).and_then(serde_json::from_value).map_err(|e| ApiError::Decode(e.to_string()))
}

/// Builds the client from the kubeconfig and flags; the error says what to fix.
pub async fn connect(flags: &GlobalFlags) -> Result<Ctx, String> {
    let options = KubeConfigOptions {
        context: flags.context.clone(),
        cluster: flags.cluster.clone(),
        user: flags.user.clone(),
    };
    let kubeconfig = match &flags.kubeconfig {
        Some(path) => Some(Kubeconfig::read_from(path).map_err(|e| e.to_string())?),
        None => match Kubeconfig::from_env().map_err(|e| e.to_string())? {
            Some(merged) => Some(merged),
            None => match default_kubeconfig_path().filter(|p| p.exists()) {
                Some(path) => Some(Kubeconfig::read_from(path).map_err(|e| e.to_string())?),
                None => None,
            },
        },
    };
    let mut config = match kubeconfig {
        Some(kubeconfig) => {
            kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(|e| e.to_string())?
        }
        None => kube::Config::incluster().map_err(|e| {
            format!(
                "no kubeconfig found (use --kubeconfig, set KUBECONFIG or create ~/.kube/config) and not \
                 running in a cluster: {e}"
            )
        })?,
    };

    if flags.as_user.is_none() && (!flags.as_group.is_empty() || flags.as_uid.is_some()) {
        // kubectl's rule: groups and uid only make sense for an impersonated user.
        return Err("requesting uid or groups without impersonating a user (add --as)".to_owned());
    }
    if let Some(user) = &flags.as_user {
        config.auth_info.impersonate = Some(user.clone());
        config.auth_info.impersonate_uid.clone_from(&flags.as_uid);
        if !flags.as_group.is_empty() {
            config.auth_info.impersonate_groups = Some(flags.as_group.clone());
        }
    }

    let context_namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config).map_err(|e| ApiError::Kube(e).to_string())?;
    Ok(Ctx { client, context_namespace, timeout: flags.request_timeout.clone() })
}

fn default_kubeconfig_path() -> Option<PathBuf> {
    std::env::home_dir().map(|home| home.join(".kube").join("config"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_without_spec_decode_with_an_empty_one() {
        let anchor: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "SubnamespaceAnchor",
            "metadata": {"name": "a", "namespace": "p"}, "status": {"status": "Ok"}}))
        .unwrap();
        let anchor: hnc_api::SubnamespaceAnchor = decode(anchor).unwrap();
        assert_eq!(anchor.spec, Default::default());
        assert_eq!(anchor.status.and_then(|s| s.state).as_deref(), Some("Ok"));

        let round_trip: hnc_api::SubnamespaceAnchor = decode(encode(&anchor_with_labels()).unwrap()).unwrap();
        assert_eq!(round_trip.spec, anchor_with_labels().spec);
    }

    fn anchor_with_labels() -> hnc_api::SubnamespaceAnchor {
        let mut anchor = hnc_api::SubnamespaceAnchor::new("a", Default::default());
        anchor.spec.labels = vec![hnc_api::MetaKvp { key: "k".into(), value: "v".into() }];
        anchor
    }

    #[test]
    fn request_timeouts_in_kubectl_syntax() {
        let secs = |t: &str| RequestTimeout::parse(t).unwrap().duration.map(|d| d.as_secs_f64());
        assert_eq!(secs("5s"), Some(5.0));
        assert_eq!(secs("1m30s"), Some(90.0));
        assert_eq!(secs("250ms"), Some(0.25));
        assert_eq!(secs("1.5h"), Some(5400.0));
        assert_eq!(secs("7"), Some(7.0));
        assert_eq!(secs("0"), None);
        assert_eq!(secs("0s"), None);
        for bad in ["", "5x", "s", "1.2.3s", "-1s", "99999999999999999999999h", "99999999999999999999999"] {
            assert!(RequestTimeout::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn request_timeouts_longer_than_go_durations_are_refused() {
        // Each used to panic in Duration::from_secs_f64 (overflow, or an infinite sum).
        let four_hundred_digits = "9".repeat(400);
        let infinite = format!("{four_hundred_digits}h");
        for huge in
            ["99999999999999999999", "9999999999999999999999h", "2562048h", &four_hundred_digits, &infinite]
        {
            let error = RequestTimeout::parse(huge).unwrap_err();
            assert!(error.contains("invalid timeout value"), "{huge}: {error}");
        }
        let longest = RequestTimeout::parse("2562047h").unwrap().duration.unwrap();
        assert_eq!(longest.as_secs(), 2_562_047 * 3600);
    }

    #[test]
    fn a_timeout_shorter_than_a_nanosecond_is_no_timeout() {
        // `.1ns` used to become a zero timeout, which fails every request at once; Go truncates it to 0, none.
        assert_eq!(RequestTimeout::parse(".1ns").unwrap().duration, None);
        assert_eq!(RequestTimeout::parse("0.4ns").unwrap().duration, None);
        assert_eq!(RequestTimeout::parse("1ns").unwrap().duration, Some(Duration::from_nanos(1)));
    }
}
