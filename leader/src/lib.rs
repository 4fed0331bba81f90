//! Lease-based leader election, replica membership, shard assignment and handover.
