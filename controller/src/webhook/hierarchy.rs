//! The HierarchyConfiguration validator, `hierarchyconfigurations.hnc.x-k8s.io` (spec §8.5).
//!
//! ```text
//!  HNC SA? ─▶ namespace and parent ─▶ managed labels ─▶ index checks ──────────▶ server checks
//!             managed?                 and annotations   (synced, halts, external,  (SAR on the namespaces
//!                                                         subnamespace, missing,    whose subtree changes)
//!                                                         cycle, object conflicts)
//! ```
//!
//! Like upstream, decisions come from the index, not from the object's previous state — with one exception
//! that closes upstream's "unchanged parent" gap (spec §18 item 6): upstream skips every permission check
//! when the requested parent equals the parent in its forest, so while the forest lags behind (an admin has
//! just made the namespace a root, or deleted its HierarchyConfiguration) anyone allowed to edit the
//! namespace's HierarchyConfiguration could put the old parent back without being an admin of it. Here the
//! parent only counts as unchanged when the API server's copy (`oldObject`; none on CREATE) names it too;
//! otherwise the permission checks run as if moving from the stored parent. Subnamespaces and external
//! namespaces are exempt: their parent comes from their annotations, not from this object.
//!
//! Upstream's orphan gap (§18 item 5) is closed too: re-parenting a namespace whose parent was deleted still
//! checks only that the old parent is really gone, but then also requires admin rights on the new parent.

use std::collections::{BTreeMap, HashMap};

use hnc_api::HierarchyConfiguration;
use hnc_api::keys::{labels as label_keys, names};
use hnc_shard::TreeSnapshot;
use hnc_shard::propagation::{PropagationPolicy, TypeKey};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse};

use super::fields::managed_metadata_errors;
use super::review::{Handler, allow, deny};
use super::server_checks::NamespaceState;
use super::{Context, decode};

const RESOURCE: &str = "hierarchyconfigurations.hnc.x-k8s.io";

/// `hierarchyconfigurations.hnc.x-k8s.io`.
pub struct HierarchyValidator {
    ctx: Context,
}

impl HierarchyValidator {
    /// The validator.
    pub fn new(ctx: Context) -> Self {
        HierarchyValidator { ctx }
    }
}

/// A check the API server must answer once the index has approved the change.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ServerCheck {
    /// The user must be an admin of `namespace`, which plays the role `reason` in this change.
    Admin { namespace: String, reason: String },
    /// `namespace` (the current parent, missing from the index) must really be gone.
    Missing { namespace: String },
}

enum Verdict {
    Allow(&'static str),
    Forbidden(String),
    Conflict(String),
    Unavailable(String),
    Check(Vec<ServerCheck>),
}

impl Handler for HierarchyValidator {
    fn name(&self) -> &'static str {
        "hierarchyconfigurations.hnc.x-k8s.io"
    }

    async fn review(&self, request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        if self.ctx.is_hnc_service_account(request) {
            return allow(request, "HNC SA");
        }
        let resp = || AdmissionResponse::from(request);
        let hc: HierarchyConfiguration = match decode(request.object.as_ref()) {
            Ok(hc) => hc,
            Err(error) => return deny::bad_request(resp(), &error),
        };
        // The API server's current copy; only its parent matters (see the module documentation).
        let stored_parent = request
            .old_object
            .as_ref()
            .and_then(|old| decode::<HierarchyConfiguration>(Some(old)).ok())
            .and_then(|old| old.spec.parent_name().map(str::to_owned));
        let namespace =
            hc.metadata.namespace.clone().or_else(|| request.namespace.clone()).unwrap_or_default();
        let tree = self.ctx.tree.load();
        let policy = tree.policy();
        if let Some(why) = policy.why_unmanaged(&namespace) {
            return deny::forbidden(
                resp(),
                RESOURCE,
                names::HIERARCHY,
                &format!(
                    "namespace {namespace:?} is not managed by HNC ({why}) and cannot be set as a child of \
                     another namespace"
                ),
            );
        }
        let new_parent = hc.spec.parent_name();
        if let Some(parent) = new_parent
            && let Some(why) = policy.why_unmanaged(parent)
        {
            return deny::forbidden(
                resp(),
                RESOURCE,
                names::HIERARCHY,
                &format!(
                    "namespace {parent:?} is not managed by HNC ({why}) and cannot be set as the parent of \
                     another namespace"
                ),
            );
        }
        let errors = managed_metadata_errors(policy, &hc.spec.labels, &hc.spec.annotations);
        if !errors.is_empty() {
            let name = hc.metadata.name.as_deref().unwrap_or(names::HIERARCHY);
            return deny::invalid(resp(), "HierarchyConfiguration", hnc_api::GROUP, name, &errors);
        }

        let checks = match self.check_index(&tree, &namespace, new_parent, stored_parent.as_deref()) {
            Verdict::Allow(message) => return allow(request, message),
            Verdict::Forbidden(detail) => {
                return deny::forbidden(resp(), RESOURCE, names::HIERARCHY, &detail);
            }
            Verdict::Conflict(detail) => return deny::conflict(resp(), RESOURCE, names::HIERARCHY, &detail),
            Verdict::Unavailable(detail) => return deny::unavailable(resp(), &detail),
            Verdict::Check(checks) => checks,
        };
        drop(tree);
        for check in checks {
            match check {
                ServerCheck::Missing { namespace } => match self.ctx.server.namespace_state(&namespace).await
                {
                    Ok(NamespaceState::Absent) => {}
                    Ok(_) => return deny::unavailable(resp(), &not_reconciled(&namespace)),
                    Err(error) => {
                        let detail = format!(
                            "while checking existence for {namespace:?}, the current missing parent: {error}"
                        );
                        return deny::internal(resp(), &detail);
                    }
                },
                ServerCheck::Admin { namespace, reason } => {
                    match self.ctx.server.is_admin(&request.user_info, &namespace).await {
                        Ok(true) => {}
                        Ok(false) => {
                            let user = request.user_info.username.as_deref().unwrap_or_default();
                            let detail = format!(
                                "User {user} is not authorized to modify the subtree of {namespace}, which \
                                 is the {reason}"
                            );
                            return deny::unauthorized(resp(), &detail);
                        }
                        Err(error) => {
                            let detail =
                                format!("while checking authz for {namespace:?}, the {reason}: {error}");
                            return deny::internal(resp(), &detail);
                        }
                    }
                }
            }
        }
        allow(request, "")
    }
}

fn not_reconciled(namespace: &str) -> String {
    format!("HNC has not reconciled namespace {namespace:?} yet - please try again in a few moments.")
}

impl HierarchyValidator {
    /// Everything decided from the index: the verdict, or the server checks still to make.
    fn check_index(
        &self,
        tree: &TreeSnapshot,
        ns: &str,
        new_parent: Option<&str>,
        stored_parent: Option<&str>,
    ) -> Verdict {
        // Until the first complete listing, no namespace counts as reconciled.
        if !tree.is_synced() || !tree.exists(ns) {
            return Verdict::Unavailable(not_reconciled(ns));
        }
        // A halted ancestor blocks changes; a namespace halted itself may be trying to fix that.
        if let Some(halted) = tree.halted_root(ns)
            && *halted != *ns
        {
            return Verdict::Forbidden(format!(
                "ancestor {halted:?} of namespace {ns:?} has a critical condition, which must be resolved \
                 before any changes can be made to the hierarchy configuration"
            ));
        }
        let external = tree.external_manager(ns);
        if let (Some(manager), Some(_)) = (external, new_parent) {
            return Verdict::Forbidden(format!(
                "namespace {ns:?} is managed by {manager:?}, not HNC, so it cannot have a parent in HNC"
            ));
        }
        let forest_parent = tree.parent(ns).map(|p| &**p);
        let subnamespace_of = tree.subnamespace_parent(ns);
        let pinned_by_annotations = subnamespace_of.is_some() || external.is_some();
        let stored = if pinned_by_annotations { forest_parent } else { stored_parent };
        if forest_parent == new_parent && stored == new_parent {
            return Verdict::Allow("parent unchanged");
        }
        // The parent this change moves the namespace away from: the index's, or the stored one when only the
        // index already shows the requested parent.
        let current = if forest_parent == new_parent { stored } else { forest_parent };
        if let Some(of) = subnamespace_of {
            return Verdict::Conflict(format!(
                "illegal parent: Cannot set the parent of {ns:?} to {:?} because it's a subnamespace of \
                 {of:?}",
                new_parent.unwrap_or_default()
            ));
        }
        if let Some(parent) = new_parent {
            if !tree.exists(parent) {
                return Verdict::Forbidden(format!("requested parent {parent:?} does not exist"));
            }
            if let Some(reason) = tree.cycle_if_parent(ns, parent) {
                return Verdict::Conflict(format!("illegal parent: {reason}"));
            }
            let conflicts = self.object_conflicts(tree, ns, parent);
            if !conflicts.is_empty() {
                return Verdict::Conflict(format!(
                    "Cannot update hierarchy because it would overwrite the following object(s):\n  * {}\n\
                     To fix this, please rename or remove the conflicting objects first.",
                    conflicts.join("\n  * ")
                ));
            }
        }
        Verdict::Check(server_checks(tree, current, new_parent))
    }

    /// Sources in `parent` and its ancestors that would propagate into `ns` or its descendants after the move
    /// and find a same-named source there. Each source's selectors are evaluated against the labels the
    /// destination will have once it is under `parent` (upstream evaluates them against the source's own
    /// labels, spec §18 item 16).
    fn object_conflicts(&self, tree: &TreeSnapshot, ns: &str, parent: &str) -> Vec<String> {
        let sources = (self.ctx.sources)();
        let new_ancestry = tree.ancestry(parent);
        let mut subtree: Option<Vec<String>> = None;
        let mut post_move_labels: HashMap<String, BTreeMap<String, String>> = HashMap::new();
        let mut conflicts = Vec::new();
        for ty in self.ctx.propagating_types() {
            let key = TypeKey::new(&ty.resource.group, &ty.resource.kind);
            // Names of the sources above the new position, with every policy found for each.
            let mut above: HashMap<String, Vec<PropagationPolicy>> = HashMap::new();
            for ancestor in &new_ancestry {
                sources.sources_in(&key, ancestor, &mut |name, policy| {
                    above.entry(name.to_owned()).or_default().push(policy.clone());
                });
            }
            if above.is_empty() {
                continue;
            }
            let subtree = subtree.get_or_insert_with(|| {
                std::iter::once(ns.to_owned())
                    .chain(tree.descendants(ns).iter().map(|d| d.to_string()))
                    .collect()
            });
            for dest in subtree.iter() {
                sources.sources_in(&key, dest, &mut |name, _| {
                    let Some(policies) = above.get(name) else { return };
                    let labels = post_move_labels
                        .entry(dest.clone())
                        .or_insert_with(|| labels_after_move(tree, dest, ns, parent));
                    if policies.iter().any(|p| p.allows(labels, ty.mode).unwrap_or(false)) {
                        conflicts.push(format!(
                            "Namespace {dest:?}: {name} ({}/{}, Kind={})",
                            ty.resource.group, ty.resource.version, ty.resource.kind
                        ));
                    }
                });
            }
        }
        conflicts.sort();
        conflicts
    }
}

/// The labels `dest` (in `moved`'s subtree) will carry once `moved` is a child of `parent`: its own labels
/// without HNC's tree labels, then the tree labels and managed labels of the chain `dest … moved`,
/// `parent …`, as the hierarchy reconciler computes them (spec §4.4): higher ancestors win, the walk stops
/// after a halted new ancestor and takes an external one's tree labels shifted by its depth.
fn labels_after_move(tree: &TreeSnapshot, dest: &str, moved: &str, parent: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = tree
        .node(dest)
        .and_then(|n| n.namespace())
        .map(|n| n.labels.iter().filter(|(k, _)| label_keys::tree_label_ancestor(k).is_none()))
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let mut chain: Vec<String> = vec![dest.to_owned()];
    let mut current = dest.to_owned();
    while current != moved {
        match tree.parent(&current) {
            Some(p) if !chain.iter().any(|c| **c == **p) => {
                current = p.to_string();
                chain.push(current.clone());
            }
            _ => break,
        }
    }
    let below = chain.len();
    for ancestor in tree.ancestry(parent).iter().rev() {
        if chain.iter().any(|c| **c == **ancestor) {
            break;
        }
        chain.push(ancestor.to_string());
    }
    for (depth, member) in chain.iter().enumerate() {
        out.insert(label_keys::tree_label(member), depth.to_string());
        out.extend(tree.own_managed_labels(member));
        if depth >= below {
            if tree.external_manager(member).is_some() {
                if let Some(observed) = tree.node(member).and_then(|n| n.namespace()) {
                    for (key, value) in &observed.labels {
                        // As the planner shifts them: a value that is not a depth, or a shifted depth past
                        // the bound, is left out.
                        if label_keys::tree_label_ancestor(key).is_some()
                            && let Some(shifted) = u32::try_from(depth)
                                .ok()
                                .and_then(|d| label_keys::shifted_tree_depth(value, d))
                        {
                            out.insert(key.to_owned(), shifted.to_string());
                        }
                    }
                }
                break;
            }
            if tree.is_halted(member) {
                break;
            }
        }
    }
    out
}

/// Whose subtree the change touches, upstream's rules (spec §8.5 step 6) plus an admin check on the new
/// parent of an orphan (§18 item 5).
fn server_checks(tree: &TreeSnapshot, current: Option<&str>, new: Option<&str>) -> Vec<ServerCheck> {
    let admin =
        |namespace: &str, reason: String| ServerCheck::Admin { namespace: namespace.to_owned(), reason };
    let proposed = |out: &mut Vec<ServerCheck>| {
        if let Some(new) = new {
            out.push(admin(new, "proposed parent".to_owned()));
        }
    };
    let mut out = Vec::new();
    if current == new {
        return out;
    }
    let Some(current) = current.filter(|c| tree.policy().is_managed(c)) else {
        proposed(&mut out);
        return out;
    };
    if !tree.exists(current) {
        out.push(ServerCheck::Missing { namespace: current.to_owned() });
        proposed(&mut out);
        return out;
    }
    let current_chain = tree.ancestry(current);
    let Some(new) = new else {
        out.push(admin(&current_chain[0], "current root ancestor".to_owned()));
        return out;
    };
    let new_chain = tree.ancestry(new);
    if current_chain[0] != new_chain[0] {
        out.push(admin(&current_chain[0], "current root ancestor".to_owned()));
        out.push(admin(new, "proposed parent".to_owned()));
        return out;
    }
    let mut mrca = &current_chain[0];
    for (c, n) in current_chain.iter().zip(&new_chain).skip(1) {
        if c != n {
            break;
        }
        mrca = c;
    }
    out.push(admin(
        mrca,
        format!("most recent common ancestor of current parent {current:?} and proposed parent {new:?}"),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::testing::*;
    use serde_json::json;

    fn hc(ns: &str, parent: Option<&str>) -> serde_json::Value {
        json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchyConfiguration",
            "metadata": {"name": "hierarchy", "namespace": ns}, "spec": {"parent": parent}})
    }

    fn set_parent(
        ns: &str,
        parent: Option<&str>,
        stored: Option<&str>,
        user: &User,
    ) -> AdmissionRequest<DynamicObject> {
        update(hc(ns, parent), hc(ns, stored), user)
    }

    fn checks(forest: &Forest, ns: &str, new: Option<&str>) -> Vec<ServerCheck> {
        let ctx = forest.context();
        let tree = ctx.tree.load();
        match HierarchyValidator::new(ctx.clone()).check_index(&tree, ns, new, tree.parent(ns).map(|p| &**p))
        {
            Verdict::Check(checks) => checks,
            _ => panic!("expected server checks"),
        }
    }

    fn admin(ns: &str, reason: &str) -> ServerCheck {
        ServerCheck::Admin { namespace: ns.into(), reason: reason.into() }
    }

    #[tokio::test]
    async fn unmanaged_namespaces_and_parents_are_refused() {
        let forest = Forest::new().excluded("kube-system").ns("a");
        let v = HierarchyValidator::new(forest.context());
        let resp = v.review(&create(hc("kube-system", None), USER)).await;
        assert_denied(
            resp,
            403,
            "namespace \"kube-system\" is not managed by HNC (excluded by the HNC administrator)",
        );
        let resp = v.review(&create(hc("a", Some("kube-system")), USER)).await;
        assert_denied(resp, 403, "cannot be set as the parent of another namespace");
        assert_allowed(v.review(&create(hc("kube-system", None), HNC_SA)).await);
    }

    #[tokio::test]
    async fn managed_labels_are_validated_as_field_errors() {
        let forest = Forest::new().managed_label(r".*\.example\.com/.*").ns("a");
        let v = HierarchyValidator::new(forest.context());
        let mut object = hc("a", None);
        object["spec"]["labels"] = json!([{"key": "env", "value": "prod"}]);
        let resp = v.review(&update(object.clone(), object, USER)).await;
        assert_eq!(
            resp.result.message,
            "HierarchyConfiguration.hnc.x-k8s.io \"hierarchy\" is invalid: spec.labels: Invalid value: \"env\": not a managed label and cannot be configured"
        );
        let details = resp.result.details.clone().unwrap();
        assert_eq!(details.causes[0].field, "spec.labels");
        assert_denied(resp, 422, "not a managed label");
    }

    #[tokio::test]
    async fn index_checks_in_upstreams_order() {
        let forest = Forest::new()
            .ns("a")
            .child("b", "a")
            .child("c", "b")
            .ns("p")
            .sub("s", "p")
            .external("ext", "argo", &[])
            .orphan("o", "gone")
            .child("under-o", "o");
        let v = HierarchyValidator::new(forest.context());
        // A namespace the index has not seen yet.
        assert_denied(
            v.review(&create(hc("late", None), USER)).await,
            503,
            "HNC has not reconciled namespace \"late\"",
        );
        assert_denied(
            v.review(&set_parent("a", Some("c"), None, USER)).await,
            409,
            "illegal parent: cycle when making \"c\" the parent of \"a\": current ancestry is c -> b -> a",
        );
        assert_denied(v.review(&set_parent("a", Some("a"), None, USER)).await, 409, "illegal parent:");
        assert_denied(
            v.review(&set_parent("a", Some("nowhere"), None, USER)).await,
            403,
            "requested parent \"nowhere\" does not exist",
        );
        assert_denied(
            v.review(&set_parent("s", Some("a"), Some("p"), USER)).await,
            409,
            "illegal parent: Cannot set the parent of \"s\" to \"a\" because it's a subnamespace of \"p\"",
        );
        assert_denied(
            v.review(&set_parent("ext", Some("a"), None, USER)).await,
            403,
            "is managed by \"argo\", not HNC",
        );
        assert_denied(
            v.review(&set_parent("under-o", Some("a"), Some("o"), USER)).await,
            403,
            "ancestor \"o\" of namespace \"under-o\" has a critical condition",
        );
        assert_allowed(v.review(&set_parent("c", Some("b"), Some("b"), USER)).await);
        assert_allowed(v.review(&set_parent("s", Some("p"), None, USER)).await);
    }

    #[test]
    fn permission_checks_follow_upstreams_rules() {
        let forest = Forest::new()
            .ns("r")
            .child("a", "r")
            .child("a1", "a")
            .child("b", "r")
            .child("x", "a1")
            .ns("other")
            .child("o1", "other")
            .excluded("kube-system")
            .orphan("orphan", "gone");
        assert_eq!(
            checks(&forest, "x", Some("b")),
            [admin("r", "most recent common ancestor of current parent \"a1\" and proposed parent \"b\"")]
        );
        assert_eq!(
            checks(&forest, "x", Some("a")),
            [admin("a", "most recent common ancestor of current parent \"a1\" and proposed parent \"a\"")]
        );
        assert_eq!(checks(&forest, "x", None), [admin("r", "current root ancestor")]);
        assert_eq!(
            checks(&forest, "x", Some("o1")),
            [admin("r", "current root ancestor"), admin("o1", "proposed parent")]
        );
        assert_eq!(checks(&forest, "other", Some("a")), [admin("a", "proposed parent")]);
        // The orphan gap: the missing parent must really be gone, and the new parent's admin must agree.
        assert_eq!(
            checks(&forest, "orphan", Some("a")),
            [ServerCheck::Missing { namespace: "gone".into() }, admin("a", "proposed parent")]
        );
        assert_eq!(checks(&forest, "orphan", None), [ServerCheck::Missing { namespace: "gone".into() }]);
    }

    #[tokio::test]
    async fn sar_verdicts_become_401_or_500() {
        let forest = Forest::new().ns("a").ns("b");
        let v = HierarchyValidator::new(forest.context());
        let resp = v.review(&set_parent("b", Some("a"), None, USER)).await;
        assert_denied(
            resp,
            401,
            "User alice is not authorized to modify the subtree of a, which is the proposed parent",
        );
        assert_eq!(forest.server.reviews(), ["alice@a"]);
        forest.server.grant("alice", "a");
        assert_allowed(v.review(&set_parent("b", Some("a"), None, USER)).await);
        forest.server.fail_with("connection refused");
        let resp = v.review(&set_parent("b", Some("a"), None, USER)).await;
        assert_denied(resp, 500, "while checking authz for \"a\", the proposed parent: connection refused");
    }

    #[tokio::test]
    async fn orphans_need_a_gone_parent_and_rights_on_the_new_one() {
        let forest = Forest::new().ns("a").orphan("o", "gone");
        let v = HierarchyValidator::new(forest.context());
        assert_denied(
            v.review(&set_parent("o", Some("a"), Some("gone"), USER)).await,
            401,
            "which is the proposed parent",
        );
        forest.server.grant("alice", "a");
        assert_allowed(v.review(&set_parent("o", Some("a"), Some("gone"), USER)).await);
        forest.server.set_namespace("gone", NamespaceState::Active);
        assert_denied(
            v.review(&set_parent("o", Some("a"), Some("gone"), USER)).await,
            503,
            "HNC has not reconciled namespace \"gone\"",
        );
    }

    #[tokio::test]
    async fn a_parent_only_the_index_shows_still_needs_permission() {
        // The index still shows b under a; the API server's copy (what an admin just wrote) says root.
        let forest = Forest::new().ns("a").child("b", "a");
        let v = HierarchyValidator::new(forest.context());
        assert_allowed(v.review(&set_parent("b", Some("a"), Some("a"), USER)).await);
        let resp = v.review(&set_parent("b", Some("a"), None, USER)).await;
        assert_denied(resp, 401, "not authorized to modify the subtree of a, which is the proposed parent");
        let resp = v.review(&create(hc("b", Some("a")), USER)).await;
        assert_denied(resp, 401, "which is the proposed parent");
        // Changing other fields with the parent unchanged everywhere needs no review.
        let mut cascading = hc("b", Some("a"));
        cascading["spec"]["allowCascadingDeletion"] = json!(true);
        assert_allowed(v.review(&update(cascading, hc("b", Some("a")), USER)).await);
        assert!(forest.server.reviews().len() == 2);
    }

    #[tokio::test]
    async fn reparenting_must_not_overwrite_sources_below_using_destination_labels() {
        let role = TypeKey::new("rbac.authorization.k8s.io", "Role");
        let forest = Forest::new()
            .ns("p")
            .ns("c")
            .child("gc", "c")
            .ns("quiet")
            .source(&role, "p", "shared", json!({}))
            .source(&role, "gc", "shared", json!({}))
            .source(&role, "p", "scoped", json!({"propagate.hnc.x-k8s.io/treeSelect": "!gc"}))
            .source(&role, "gc", "scoped", json!({}))
            .source(&role, "quiet", "shared", json!({"propagate.hnc.x-k8s.io/none": "true"}));
        forest.server.grant("alice", "p");
        forest.server.grant("alice", "quiet");
        let v = HierarchyValidator::new(forest.context());
        let resp = v.review(&set_parent("c", Some("p"), None, USER)).await;
        assert_eq!(resp.result.code, 409, "{}", resp.result.message);
        assert_eq!(
            resp.result.message,
            "Operation cannot be fulfilled on hierarchyconfigurations.hnc.x-k8s.io \"hierarchy\": Cannot update \
             hierarchy because it would overwrite the following object(s):\n  * Namespace \"gc\": shared \
             (rbac.authorization.k8s.io/v1, Kind=Role)\nTo fix this, please rename or remove the conflicting objects \
             first."
        );
        assert_allowed(v.review(&set_parent("c", Some("quiet"), None, USER)).await);
    }

    #[test]
    fn labels_after_a_move_are_the_new_chains() {
        let forest = Forest::new().ns("r").child("p", "r").ns("c").child("gc", "c").label("gc", "team", "x");
        let tree = forest.context().tree.load();
        let labels = labels_after_move(&tree, "gc", "c", "p");
        let expected: BTreeMap<String, String> = [
            ("gc.tree.hnc.x-k8s.io/depth", "0"),
            ("c.tree.hnc.x-k8s.io/depth", "1"),
            ("p.tree.hnc.x-k8s.io/depth", "2"),
            ("r.tree.hnc.x-k8s.io/depth", "3"),
            ("hnc.x-k8s.io/included-namespace", "true"),
            ("team", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(labels, expected);
    }

    #[test]
    fn external_depths_past_the_bound_are_left_out_of_the_labels_after_a_move() {
        // `18446744073709551615` parsed as a usize and shifted by one used to overflow (a panic in debug
        // builds, a wrap to 0 in release).
        let forest = Forest::new()
            .external(
                "ext",
                "argo",
                &[
                    ("outer.tree.hnc.x-k8s.io/depth", "18446744073709551615"),
                    ("top.tree.hnc.x-k8s.io/depth", "1000000"),
                    ("near.tree.hnc.x-k8s.io/depth", "2"),
                    ("word.tree.hnc.x-k8s.io/depth", "two"),
                ],
            )
            .ns("c");
        let tree = forest.context().tree.load();
        let labels = labels_after_move(&tree, "c", "c", "ext");
        let depth =
            |ancestor: &str| labels.get(&format!("{ancestor}.tree.hnc.x-k8s.io/depth")).map(String::as_str);
        assert_eq!(depth("c"), Some("0"));
        assert_eq!(depth("ext"), Some("1"));
        assert_eq!(depth("near"), Some("3"));
        assert_eq!(depth("outer"), None);
        assert_eq!(depth("top"), None);
        assert_eq!(depth("word"), None);
    }
}
