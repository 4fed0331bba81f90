//! hnc-loadtest: the load harness for the hierarchical namespace controller.
//!
//! It loads a synthetic topology into an API server (embedded apisim by default, or any cluster), starts
//! controller replicas as child processes (or reads replicas already running), and measures what the design
//! promises: time to converge, zero-write warm restarts, writes made against writes necessary, propagation
//! latency under churn and bursts, the churn rate a replica count sustains within the latency SLO, what faults
//! cost, and the CPU and memory each replica spends doing it. `hnc-loadtest quota` measures hierarchical resource
//! quotas: pods created and deleted under an HRQ per tree, admission latency through HNC's quota webhook, budgets
//! never exceeded, and how fast HRQ status follows the pods.
//!
//! * [`topology`] — wide / full / skewer / forest generators;
//! * [`objects`] — the propagated types, source builders, content fingerprints;
//! * [`model`] — the expected state and the writes each change makes necessary;
//! * [`tracker`] and [`watch`] — expected against observed, and change latency;
//! * [`target`], [`replicas`], [`procstat`], [`prom`] — the API server, the controllers, and reading them;
//! * [`session`] — one measured environment and its phases (the quota churn among them); [`webhooks`] — the
//!   forwarder in front of the replicas' admission webhooks; [`app`] — commands to sessions;
//! * [`report`], [`plot`] — `result.json`, `summary.md`, SVG plots.

pub mod app;
pub mod cli;
pub mod model;
pub mod objects;
pub mod plot;
pub mod procstat;
pub mod prom;
pub mod replicas;
pub mod report;
pub mod session;
pub mod target;
pub mod topology;
pub mod tracker;
pub mod watch;
pub mod webhooks;
