//! Command-line flags. Upstream HNC's manager flags keep their names and meanings where we keep them (spec §14);
//! flags that only make sense for upstream's architecture are accepted, ignored and reported at startup, so a
//! Deployment switched from upstream keeps starting.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
pub use hnc_shard::tree::AnchoredRegex;
use hnc_shard::tree::NamespacePolicy;

/// A sharded, high-scale Hierarchical Namespace Controller, API-compatible with hnc.x-k8s.io/v1alpha2.
#[derive(Debug, Clone, Parser)]
#[command(name = "hnc-controller", version, about)]
pub struct Flags {
    // --- connection ---------------------------------------------------------------------------------------
    /// Path to a kubeconfig. Defaults to $KUBECONFIG, ~/.kube/config, then the in-cluster service account.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Run against an embedded API server (apisim) on 127.0.0.1 instead of a cluster: no cluster needed. The
    /// HNC CRDs are installed and an admin kubeconfig is written to --embedded-kubeconfig for kubectl.
    /// Needs a binary built with the `embedded` cargo feature (on by default; off in the deployment build).
    #[arg(long, conflicts_with = "kubeconfig")]
    pub embedded: bool,

    /// Where --embedded writes its admin kubeconfig.
    #[arg(long, default_value = "hnc-embedded.kubeconfig")]
    pub embedded_kubeconfig: PathBuf,

    /// HTTPS port of the embedded API server (0 = any free port).
    #[arg(long, default_value_t = 6443)]
    pub embedded_port: u16,

    /// Hard ceiling on writes per second (burst 1.5x). Unset or 0 (the default): no ceiling — the writer finds
    /// the API server's capacity itself (an adaptive concurrency limit that backs off on 429, 5xx and rising
    /// latency and honours Retry-After). Upstream's 50 limits each resource type; here one ceiling covers all.
    #[arg(long, default_value_t = 0.0)]
    pub apiserver_qps_throttle: f64,

    /// The most copy writes one replica has submitted and not yet finished, and separately the most hierarchy
    /// writes (tree labels, HierarchyConfigurations, subnamespaces); planned writes beyond it wait as names to
    /// plan again (a few dozen bytes each instead of a queued write's kilobyte), so a cold start of a replica
    /// owning a million copies holds this many at a time. Lower: less memory at a cold start; higher: more
    /// writes queued ahead of a fast API server.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_writes_in_flight: u32,

    /// Concurrency of hierarchy (HierarchyConfiguration / Namespace) writes.
    #[arg(long, default_value_t = 10)]
    pub max_reconciles: usize,

    // --- endpoints ----------------------------------------------------------------------------------------
    /// Address of /healthz and /readyz (and /metrics when equal to --metrics-addr).
    #[arg(long, default_value = ":8081", value_parser = parse_bind_address)]
    pub health_probe_bind_address: SocketAddr,

    /// Address of the Prometheus /metrics endpoint.
    #[arg(long, default_value = ":8080", value_parser = parse_bind_address)]
    pub metrics_addr: SocketAddr,

    /// Port of the admission webhook server (HTTPS).
    #[arg(long, default_value_t = 443)]
    pub webhook_server_port: u16,

    /// Do not serve admission webhooks.
    #[arg(long, conflicts_with = "webhooks_only")]
    pub no_webhooks: bool,

    /// Serve admission webhooks only: this replica never writes to the API server (SubjectAccessReviews aside).
    #[arg(long)]
    pub webhooks_only: bool,

    /// Create and rotate the webhook CA and serving certificate, and keep the webhook configurations' caBundle
    /// current.
    #[arg(long)]
    pub enable_internal_cert_management: bool,

    /// Base URL (e.g. https://127.0.0.1:9443) under which this process's webhooks are registered as URL-based
    /// webhook configurations, for running outside the cluster (development, apisim, a remote API server).
    #[arg(long)]
    pub webhook_url_base: Option<String>,

    // --- which namespaces are managed --------------------------------------------------------------------
    /// Namespace HNC must not touch (repeatable).
    #[arg(long = "excluded-namespace", value_name = "NAMESPACE")]
    pub excluded_namespaces: Vec<String>,

    /// Only namespaces whose whole name matches this regex are managed. Anchored as `^(?:REGEX)$`, so a
    /// top-level alternation such as `a|b` means "a or b" (upstream anchors without the group).
    #[arg(long, default_value = ".*", value_parser = parse_anchored_regex)]
    pub included_namespace_regex: AnchoredRegex,

    /// HNC's own namespace: the service-account group that bypasses HNC's webhooks, and where the webhook
    /// certificate and the coordination Leases live.
    #[arg(long, default_value = hnc_api::keys::names::DEFAULT_NAMESPACE, env = "POD_NAMESPACE")]
    pub namespace: String,

    // --- propagation --------------------------------------------------------------------------------------
    /// Label key stripped from propagated copies (repeatable).
    #[arg(long = "unpropagated-label", value_name = "KEY")]
    pub unpropagated_labels: Vec<String>,

    /// Annotation key stripped from propagated copies (repeatable).
    #[arg(long = "unpropagated-annotation", value_name = "KEY")]
    pub unpropagated_annotations: Vec<String>,

    /// Objects carrying this exact label `key=value` are never propagated (repeatable).
    #[arg(long = "nopropagation-label", value_name = "KEY=VALUE", value_parser = parse_label_pair)]
    pub nopropagation_labels: Vec<(String, String)>,

    /// Regex of namespace label keys that HierarchyConfigurations and anchors may set (repeatable).
    #[arg(long = "managed-namespace-label", value_name = "REGEX", value_parser = parse_managed_regex)]
    pub managed_namespace_labels: Vec<AnchoredRegex>,

    /// Regex of namespace annotation keys that HierarchyConfigurations and anchors may set (repeatable).
    #[arg(long = "managed-namespace-annotation", value_name = "REGEX", value_parser = parse_managed_regex)]
    pub managed_namespace_annotations: Vec<AnchoredRegex>,

    // --- hierarchical resource quota ----------------------------------------------------------------------
    /// Enables hierarchical resource quotas: the HRQ and ResourceQuota-status webhooks, the singleton
    /// ResourceQuotas and HRQ status (requires the HierarchicalResourceQuota CRD, as upstream does).
    #[arg(long)]
    pub enable_hrq: bool,

    /// Period of the full HRQ recount (every owned HRQ's status and singleton checked against the watched
    /// usage); 0 disables it.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub hrq_sync_interval: Duration,

    // --- replicas and shards ------------------------------------------------------------------------------
    /// This replica's identity in Leases and metrics. Defaults to $POD_NAME, then the host name.
    #[arg(long, env = "POD_NAME")]
    pub replica_id: Option<String>,

    /// Number of shards root trees are hashed into. Must be the same on every replica. Each shard is a Lease its
    /// holder renews every --retry-period, so this is also the steady coordination cost (32 shards at 2 s: 16
    /// Lease updates per second for the whole cluster); a few shards per replica are enough to balance.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub shards: u32,

    /// Name of the leader Lease (upstream: the leader-election lock name).
    #[arg(long, default_value = "hnc-controller-leader")]
    pub leader_election_id: String,

    /// How long a Lease is valid without renewal.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,

    /// A holder that cannot renew within this time stops acting on the Lease (must be < lease duration).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub renew_deadline: Duration,

    /// Interval between Lease acquisition or renewal attempts.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub retry_period: Duration,

    // --- logging ------------------------------------------------------------------------------------------
    /// Log at debug level.
    #[arg(long)]
    pub debug_logs: bool,

    // --- accepted for compatibility with upstream manifests; no effect ------------------------------------
    /// No effect: this controller always coordinates replicas through Leases.
    #[arg(long, hide = true)]
    pub enable_leader_election: bool,
    /// No effect: metrics are exported in Prometheus format only.
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub enable_stackdriver: Option<bool>,
    /// No effect: progress is reported through metrics.
    #[arg(long, hide = true)]
    pub enable_test_log: bool,
    /// No effect: certificates are reloaded without restarting.
    #[arg(long, hide = true)]
    pub cert_restart_on_secret_refresh: bool,
    /// No effect: object metrics never carry a per-kind tag with unbounded values.
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub suppress_object_tags: Option<bool>,
}

/// The lowest ceiling `--apiserver-qps-throttle` accepts (upstream's flag is a whole number of writes/s).
const MIN_QPS: f64 = 1.0;
/// The highest ceiling `--apiserver-qps-throttle` accepts: far above what any API server sustains.
const MAX_QPS: f64 = 1_000_000.0;

impl Flags {
    /// Cross-flag checks clap cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if self.embedded && !crate::embedded::AVAILABLE {
            return Err(crate::embedded::NOT_BUILT.to_owned());
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "--renew-deadline ({:?}) must be shorter than --lease-duration ({:?})",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period >= self.renew_deadline {
            return Err(format!(
                "--retry-period ({:?}) must be shorter than --renew-deadline ({:?})",
                self.retry_period, self.renew_deadline
            ));
        }
        if self.lease_duration < Duration::from_secs(1) {
            return Err(format!(
                "--lease-duration ({:?}) must be at least 1s: Leases count whole seconds",
                self.lease_duration
            ));
        }
        if self.retry_period.is_zero() {
            return Err("--retry-period must be longer than 0".into());
        }
        let qps = self.apiserver_qps_throttle;
        // Also refuses NaN and infinities. Below one write per second the writer's wait for a token grows
        // without bound (1e-300 overflows a Duration) and its floor of 1/s would exceed the ceiling.
        if !(qps == 0.0 || (MIN_QPS..=MAX_QPS).contains(&qps)) {
            return Err(format!(
                "--apiserver-qps-throttle must be 0 (adaptive, no ceiling) or between {MIN_QPS} and {MAX_QPS}, \
                 got {qps}"
            ));
        }
        if self.max_reconciles == 0 {
            return Err("--max-reconciles must be at least 1".into());
        }
        Ok(())
    }

    /// Upstream flags given on the command line that have no effect here, for a startup notice.
    pub fn ignored_upstream_flags(&self) -> Vec<&'static str> {
        let mut ignored = Vec::new();
        if self.enable_leader_election {
            ignored.push("--enable-leader-election");
        }
        if self.enable_stackdriver.is_some() {
            ignored.push("--enable-stackdriver");
        }
        if self.enable_test_log {
            ignored.push("--enable-test-log");
        }
        if self.cert_restart_on_secret_refresh {
            ignored.push("--cert-restart-on-secret-refresh");
        }
        if self.suppress_object_tags.is_some() {
            ignored.push("--suppress-object-tags");
        }
        ignored
    }

    /// The namespaces HNC never touches: the ones given, plus HNC's own namespace.
    pub fn excluded(&self) -> Vec<String> {
        let mut excluded = self.excluded_namespaces.clone();
        if !excluded.contains(&self.namespace) {
            excluded.push(self.namespace.clone());
        }
        excluded
    }

    /// The managed-namespace policy these flags describe.
    pub fn namespace_policy(&self) -> NamespacePolicy {
        NamespacePolicy::new(
            self.excluded(),
            self.included_namespace_regex.clone(),
            self.managed_namespace_labels.clone(),
            self.managed_namespace_annotations.clone(),
        )
    }

    /// This replica's identity.
    pub fn replica_identity(&self) -> String {
        if let Some(id) = self.replica_id.as_deref().filter(|id| !id.is_empty()) {
            return id.to_owned();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| format!("hnc-{}", std::process::id()))
    }
}

fn parse_anchored_regex(s: &str) -> Result<AnchoredRegex, String> {
    AnchoredRegex::new(s).map_err(|e| format!("invalid regex {s:?}: {e}"))
}

fn parse_managed_regex(s: &str) -> Result<AnchoredRegex, String> {
    let re = parse_anchored_regex(s)?;
    if re.is_match(hnc_api::GROUP) {
        return Err(format!("regex {s:?} matches {:?}, which HNC reserves for itself", hnc_api::GROUP));
    }
    Ok(re)
}

fn parse_label_pair(s: &str) -> Result<(String, String), String> {
    match s.split('=').collect::<Vec<_>>()[..] {
        [key, value] if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{s:?} must have the form KEY=VALUE with exactly one '=' and a non-empty key")),
    }
}

/// Accepts Go-style listen addresses (`:8080` = all interfaces) as well as `host:port`.
fn parse_bind_address(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') { format!("0.0.0.0{s}") } else { s.to_owned() };
    full.parse().map_err(|e| format!("invalid listen address {s:?}: {e}"))
}

/// The longest duration a flag accepts (8760h, 365 days). Every duration flag is a period or a timeout of a
/// few seconds to minutes: a longer value is a typo or a wrong unit, and past a point it would overflow the
/// deadlines computed from it (`Instant + Duration`).
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Accepts Go-style durations: `90s`, `1m`, `1m30s`, `500ms`, `2h`, `0`, up to [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let too_long = || format!("duration {s:?} is longer than 8760h (365 days), the longest a flag accepts");
    match hnc_api::duration::parse_go_checked(s) {
        Ok(d) if d <= MAX_DURATION => Ok(d),
        Ok(_) | Err(hnc_api::duration::DurationError::TooLong) => Err(too_long()),
        Err(hnc_api::duration::DurationError::Malformed) => {
            Err(format!("invalid duration {s:?} (examples: 500ms, 15s, 1m30s)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Flags, clap::Error> {
        Flags::try_parse_from(std::iter::once("hnc-controller").chain(args.iter().copied()))
    }

    #[test]
    fn embedded_is_refused_only_without_the_feature() {
        let flags = parse(&["--embedded"]).unwrap();
        if cfg!(feature = "embedded") {
            assert_eq!(flags.validate(), Ok(()));
        } else {
            let error = flags.validate().unwrap_err();
            assert!(error.contains("built without the `embedded` feature"), "{error}");
        }
    }

    #[test]
    fn upstream_manifest_arguments_are_accepted() {
        // The argument list upstream's default manifest passes to its manager.
        let flags = parse(&[
            "--webhook-server-port=9443",
            "--enable-internal-cert-management",
            "--cert-restart-on-secret-refresh",
            "--excluded-namespace=kube-system",
            "--excluded-namespace=kube-public",
            "--excluded-namespace=hnc-system",
            "--excluded-namespace=kube-node-lease",
            "--max-reconciles=10",
            "--apiserver-qps-throttle=50",
            "--enable-hrq",
            "--nopropagation-label=cattle.io/creator=norman",
            "--enable-stackdriver=false",
        ])
        .unwrap();
        flags.validate().unwrap();
        assert_eq!(flags.webhook_server_port, 9443);
        assert_eq!(flags.nopropagation_labels, vec![("cattle.io/creator".into(), "norman".into())]);
        assert_eq!(
            flags.ignored_upstream_flags(),
            vec!["--enable-stackdriver", "--cert-restart-on-secret-refresh"]
        );
        assert_eq!(flags.excluded().iter().filter(|n| *n == "hnc-system").count(), 1);
    }

    #[test]
    fn writes_in_flight_are_bounded_by_default_and_at_least_one() {
        assert_eq!(parse(&[]).unwrap().max_writes_in_flight, 2_000);
        assert_eq!(parse(&["--max-writes-in-flight=50"]).unwrap().max_writes_in_flight, 50);
        assert!(parse(&["--max-writes-in-flight=0"]).is_err());
        assert!(parse(&["--max-writes-in-flight=-1"]).is_err());
    }

    #[test]
    fn the_qps_throttle_is_adaptive_by_default_and_a_ceiling_when_set() {
        let flags = parse(&[]).unwrap();
        flags.validate().unwrap();
        assert!(crate::writer::WriterConfig::from_flag(flags.apiserver_qps_throttle).rate.is_none());
        let flags = parse(&["--apiserver-qps-throttle=500"]).unwrap();
        let config = crate::writer::WriterConfig::from_flag(flags.apiserver_qps_throttle);
        assert_eq!(config.rate.map(|r| r.max_rate), Some(500.0));
        assert!(parse(&["--apiserver-qps-throttle=-1"]).unwrap().validate().is_err());
    }

    #[test]
    fn own_namespace_is_always_excluded() {
        let flags = parse(&["--namespace=hnc", "--excluded-namespace=kube-system"]).unwrap();
        assert_eq!(flags.excluded(), vec!["kube-system".to_owned(), "hnc".to_owned()]);
    }

    #[test]
    fn nopropagation_label_needs_exactly_one_equals_and_a_key() {
        for bad in ["novalue", "=v", "a=b=c"] {
            assert!(parse(&[&format!("--nopropagation-label={bad}")]).is_err(), "{bad}");
        }
        let flags = parse(&["--nopropagation-label=k="]).unwrap();
        assert_eq!(flags.nopropagation_labels, vec![("k".into(), String::new())]);
    }

    #[test]
    fn managed_regexes_must_compile_and_not_match_the_hnc_group() {
        assert!(parse(&["--managed-namespace-label=(("]).is_err());
        assert!(parse(&["--managed-namespace-label=.*"]).is_err());
        assert!(parse(&["--managed-namespace-annotation=hnc\\.x-k8s\\.io"]).is_err());
        let flags = parse(&["--managed-namespace-label=.*\\.example\\.com/.*"]).unwrap();
        assert!(flags.managed_namespace_labels[0].is_match("team.example.com/env"));
        assert!(!flags.managed_namespace_labels[0].is_match("env"));
    }

    #[test]
    fn included_regex_alternation_is_anchored_as_a_group() {
        let flags = parse(&["--included-namespace-regex=team-a|team-b"]).unwrap();
        let re = &flags.included_namespace_regex;
        assert!(re.is_match("team-a") && re.is_match("team-b"));
        assert!(!re.is_match("team-a-x"), "upstream's ^team-a|team-b$ would match this");
        assert!(!re.is_match("x-team-b"));
        assert_eq!(re.anchored(), "^(?:team-a|team-b)$");
    }

    #[test]
    fn go_style_durations_and_addresses() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5x").is_err());
        let flags = parse(&["--metrics-addr=127.0.0.1:0", "--health-probe-bind-address=:9000"]).unwrap();
        assert_eq!(flags.metrics_addr.to_string(), "127.0.0.1:0");
        assert_eq!(flags.health_probe_bind_address.to_string(), "0.0.0.0:9000");
    }

    #[test]
    fn huge_durations_are_refused_with_the_flag_and_the_value() {
        // Each used to panic in Duration::from_secs_f64 or in `+=` on Duration.
        let four_hundred_digits = format!("{}s", "9".repeat(400));
        for huge in ["99999999999999h", "18446744073709551616s", &four_hundred_digits, "5124095576030431h1h"]
        {
            let error = parse(&["--lease-duration", huge]).unwrap_err().to_string();
            assert!(error.contains("--lease-duration") && error.contains("longer than 8760h"), "{error}");
        }
        let error = parse(&["--lease-duration=99999999999999h"]).unwrap_err().to_string();
        assert!(error.contains("--lease-duration") && error.contains("99999999999999h"), "{error}");
        assert!(error.contains("longer than 8760h"), "{error}");
        assert_eq!(parse_duration("8760h"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("8759h60m"), Ok(MAX_DURATION));
        assert!(parse_duration("8760h1ms").unwrap_err().contains("longer than 8760h"));
        assert!(parse_duration("4383h4383h").unwrap_err().contains("longer than 8760h"));
    }

    #[test]
    fn qps_ceilings_outside_the_sane_range_are_refused() {
        // 1e-300 used to pass and panic the writer on its first wait (1/1e-300 s overflows a Duration).
        for bad in ["NaN", "inf", "-inf", "-1", "1e-300", "0.5", "1e7", "-0.0001"] {
            let error = parse(&[&format!("--apiserver-qps-throttle={bad}")]).unwrap().validate().unwrap_err();
            assert!(error.contains("--apiserver-qps-throttle"), "{bad}: {error}");
        }
        for good in ["0", "1", "50", "1000000"] {
            parse(&[&format!("--apiserver-qps-throttle={good}")]).unwrap().validate().unwrap();
        }
    }

    #[test]
    fn lease_timings_must_be_usable() {
        let flags =
            parse(&["--lease-duration=900ms", "--renew-deadline=600ms", "--retry-period=200ms"]).unwrap();
        assert!(flags.validate().unwrap_err().contains("--lease-duration"));
        let flags = parse(&["--retry-period=0"]).unwrap();
        assert!(flags.validate().unwrap_err().contains("--retry-period"));
    }

    #[test]
    fn lease_timings_must_nest() {
        let flags = parse(&["--lease-duration=10s", "--renew-deadline=10s"]).unwrap();
        assert!(flags.validate().unwrap_err().contains("--renew-deadline"));
        let flags = parse(&["--renew-deadline=5s", "--retry-period=5s"]).unwrap();
        assert!(flags.validate().unwrap_err().contains("--retry-period"));
    }

    #[test]
    fn webhook_modes_conflict() {
        assert!(parse(&["--no-webhooks", "--webhooks-only"]).is_err());
    }

    /// Values for every flag that parses a number or a duration: a few sane ones, junk, and extremes.
    fn flag_value() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            "[0-9]{1,3}(ms|s|m|h)",
            "[0-9]{1,25}(\\.[0-9]{0,3})?(ms|s|m|h|)",
            Just("9".repeat(400) + "h"),
            Just("NaN".to_owned()),
            Just("inf".to_owned()),
            Just("-1".to_owned()),
            Just("1e-300".to_owned()),
            Just("1e308".to_owned()),
            Just("0".to_owned()),
            Just("4294967295".to_owned()),
            Just("18446744073709551616".to_owned()),
            ".{0,8}",
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: if std::env::var_os("PROPTEST_CASES").is_some() {
                proptest::prelude::ProptestConfig::default().cases
            } else {
                1000
            },
            ..proptest::prelude::ProptestConfig::default()
        })]

        #[test]
        fn numeric_and_duration_flags_parse_or_name_the_bad_value(
            flag in proptest::sample::select(&[
                "--lease-duration", "--renew-deadline", "--retry-period", "--hrq-sync-interval",
                "--apiserver-qps-throttle", "--max-reconciles", "--shards", "--embedded-port",
                "--webhook-server-port",
            ][..]),
            value in flag_value(),
        ) {
            match parse(&[&format!("{flag}={value}")]) {
                Err(error) => {
                    let text = error.to_string();
                    proptest::prop_assert!(text.contains(flag), "{}", text);
                }
                Ok(flags) => {
                    if flags.validate().is_ok() {
                        for d in [flags.lease_duration, flags.renew_deadline, flags.retry_period, flags.hrq_sync_interval] {
                            proptest::prop_assert!(d <= MAX_DURATION);
                            // Deadlines computed from a flag never overflow.
                            let _ = std::time::Instant::now() + d;
                        }
                        let qps = flags.apiserver_qps_throttle;
                        proptest::prop_assert!(qps == 0.0 || (MIN_QPS..=MAX_QPS).contains(&qps));
                    }
                }
            }
        }

        #[test]
        fn any_duration_text_parses_within_the_bound_or_is_refused(text in proptest::prelude::any::<String>()) {
            if let Ok(duration) = parse_duration(&text) {
                proptest::prop_assert!(duration <= MAX_DURATION);
            }
        }
    }
}
