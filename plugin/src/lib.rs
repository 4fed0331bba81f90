//! `kubectl-hns`, the kubectl plugin for HNC (`kubectl hns ...`), with upstream's commands, flags, output, error
//! messages and exit codes (spec §12), so a user switching from upstream HNC sees the same plugin.
//!
//! * [`render`] — pure rendering of `describe`, `tree`, `config describe` and `hrq` from API objects;
//! * [`cmd`] — one module per command: what it reads and writes, and what it prints;
//! * [`client`] — kubeconfig loading as kubectl does, the per-request timeout, error texts;
//! * [`cli`] — the command line and the dispatch (the binary's `main` is one call into it).
//!
//! Commands: `create`, `delete`, `set`, `describe`, `tree`, `config describe|set-resource|delete-type`, `hrq`,
//! `version`. Not provided: `get`, which reads through HNC's aggregated `resources.hnc.x-k8s.io` API that this
//! HNC does not serve (the `--help` text says so).
//!
//! # Where it deliberately differs from upstream's plugin
//!
//! * **`-n` defaults to the kubeconfig context's namespace** for `create`, `delete` and `hrq` (`default` when
//!   the context names none) — what kubectl does, and what upstream's own `--help` claims. Upstream's three
//!   commands share one variable for `-n`, which `hrq` registers last with the default `default`, so
//!   `kubectl hns create child` created the anchor in `default` even with a context namespace set (spec §18
//!   item 10). With no context namespace both behave the same; `-n ""` still fails with upstream's
//!   `Error: parent must be set via --namespace or -n`.
//! * **`tree -A` shows orphans**: a namespace whose parent does not list it as a child (typically because the
//!   parent was deleted) is drawn as a root. Upstream drew it nowhere while still listing its condition under
//!   `Conditions:` (spec §18 item 17). `tree -A` with namespace arguments draws the forest once (upstream drew
//!   every namespace as a root); footnote numbering is upstream's in every case.
//! * **`tree -A` reads the cluster with two paged lists** (Namespaces, HierarchyConfigurations) instead of two
//!   GETs per namespace; the output is the same.
//! * **`hrq NAME -A`** shows the quotas of that name across namespaces (upstream ignored the names with `-A`).
//! * **`describe` shows hierarchical quotas**: after upstream's output, when any HierarchicalResourceQuota lives
//!   in the namespace or an ancestor (from its tree labels), a `Hierarchical quotas:` section with one line per
//!   HRQ, root-most first: `  <namespace>/<name>:  <requests>  (<limits>)`, each amount `<resource>:
//!   <used>/<hard>` from the HRQ's status (the subtree's usage), ` (over)` after one whose use exceeds its
//!   limit, `?` as used while the status is not written. Without any, or where HRQs cannot be listed (CRD not
//!   installed, not allowed), the output is upstream's, byte for byte. Upstream printed nothing of quotas.
//! * **`describe` ages** of Events written through `events.k8s.io` (no `lastTimestamp`) come from `eventTime`
//!   (upstream printed them as `292y`).
//! * **`version`** needs no cluster (upstream failed without a usable kubeconfig); it prints the crate version,
//!   or `HNC_VERSION` set at build time.
//! * **`--request-timeout`** (default `5s`) is the limit on each request; upstream fixed it at 5s whatever the
//!   flag said (the flag could only shorten it). A timeout prints `no answer from the API server within 5s
//!   (--request-timeout)` where upstream printed Go's `context deadline exceeded`; other transport errors are
//!   kube-rs's texts, API errors the API server's message as upstream.
//! * **Command-line errors** are clap's, on stderr, exit status 1 as upstream (cobra printed its own texts).
//!   Bool flags take no `=value` (`--root`, not `--root=true`); `--root=false` is refused rather than meaning
//!   "root" as it did upstream.
//!
//! Kept on purpose, although they look odd: the `Succesfully updated ...` typo of `set`; the core group shown
//! as `(/v1)` by `config describe`; `config set-resource` printing nothing on success and refusing only the
//! Ignore → Propagate switch (a brand-new type may be added as `Propagate` directly); every message and error
//! printed on stdout; an anchor without status described as `name ( subnamespace)`.

pub mod cli;
pub mod client;
pub mod cmd;
pub mod render;
