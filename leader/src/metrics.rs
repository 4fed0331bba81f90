//! Metric names (all `hnc_`-prefixed) and their descriptions. Recorded with the `metrics` macros into
//! whatever recorder the controller installed; call [`describe_metrics`] once after installing it.

/// Gauge, 1 while this replica is the leader.
pub const IS_LEADER: &str = "hnc_is_leader";
/// Gauge, shards this replica holds the lease of.
pub const SHARDS_HELD: &str = "hnc_shards_held";
/// Gauge per `shard` (leader only): the weight the leader balances by.
pub const SHARD_WEIGHT: &str = "hnc_shard_weight";
/// Gauge (leader only): heaviest replica's weight / mean.
pub const SHARD_IMBALANCE: &str = "hnc_shard_imbalance";
/// Counter (leader only): shards moved from one replica to another by a published assignment, by `reason`
/// (`membership`, `rebalance`, `shutdown`).
pub const HANDOVERS: &str = "hnc_shard_handovers_total";
/// Counter: shard leases this replica gained or lost, by `direction` (`gained`, `lost`).
pub const SHARD_LEASE_CHANGES: &str = "hnc_shard_lease_changes_total";
/// Histogram (leader only): seconds a shard spent with no live lease holder, recorded when it gets one.
pub const UNOWNED_SECONDS: &str = "hnc_shard_unowned_seconds";
/// Gauge (leader only): shards without a live lease holder right now.
pub const SHARDS_UNOWNED: &str = "hnc_shards_unowned";
/// Gauge (leader only): seconds the shard that has been without a live lease holder longest has been so; 0 while
/// every shard has one.
pub const UNOWNED_LONGEST_SECONDS: &str = "hnc_shard_unowned_longest_seconds";
/// Gauge: this replica's `--lease-duration` in seconds, what a shard's holder may be silent for before another
/// replica may take the shard (alerts compare [`UNOWNED_LONGEST_SECONDS`] with it).
pub const LEASE_DURATION_SECONDS: &str = "hnc_lease_duration_seconds";
/// Gauge: epoch of the newest assignment this replica has seen.
pub const ASSIGNMENT_EPOCH: &str = "hnc_shard_assignment_epoch";
/// Counter: failed lease acquisitions/renewals, by `kind` (`leader`, `replica`, `shard`).
pub const LEASE_ERRORS: &str = "hnc_lease_errors_total";

/// Registers help texts for every metric above.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(IS_LEADER, "1 while this replica holds the leader lease.");
    describe_gauge!(SHARDS_HELD, "Shards whose lease this replica holds.");
    describe_gauge!(SHARD_WEIGHT, "Weight of each shard (namespaces + objects + 1), as the leader sees it.");
    describe_gauge!(SHARD_IMBALANCE, "Heaviest replica's shard weight divided by the mean (leader only).");
    describe_counter!(HANDOVERS, "Shards moved between replicas by a published assignment (leader only).");
    describe_counter!(SHARD_LEASE_CHANGES, "Shard leases this replica gained or lost.");
    describe_histogram!(
        UNOWNED_SECONDS,
        metrics::Unit::Seconds,
        "Time a shard spent without a live lease holder (leader's view)."
    );
    describe_gauge!(SHARDS_UNOWNED, "Shards without a live lease holder right now (leader only).");
    describe_gauge!(
        UNOWNED_LONGEST_SECONDS,
        metrics::Unit::Seconds,
        "How long the shard without a live lease holder for the longest time has been so; 0 when every shard is \
         held (leader only)."
    );
    describe_gauge!(
        LEASE_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "The lease duration (--lease-duration) this replica runs with."
    );
    describe_gauge!(ASSIGNMENT_EPOCH, "Epoch of the newest shard assignment this replica has seen.");
    describe_counter!(LEASE_ERRORS, "Failed lease acquisitions and renewals, by lease kind.");
}
