//! From "what HNC wants" to the smallest write that gets there — or none.
//!
//! Pure functions: observed objects (as last seen through watches) and targets (computed from the tree index
//! snapshot, see [`desired`](super::desired)) in, an optional [`HierarchyOp`] out. An unchanged cluster yields
//! no writes at all, which is what makes a warm restart write-free. Every patch is conditional on the observed
//! `resourceVersion`; a 409 sends the namespace back to be re-planned from fresh state.

use std::collections::BTreeMap;

use hnc_api::condition::carry_transition_times;
use hnc_api::keys::{annotations, finalizers, names};
use hnc_api::{HierarchyConfigurationSpec, HierarchyConfigurationStatus};
use serde_json::{Map, Value, json};

use super::desired::{AnchorTarget, HierarchyTarget, NamespaceTarget, SpecRewrite};
use super::observed::{ObservedAnchor, ObservedHierarchy, ObservedNamespace};
use super::strings::StringMap;

/// A write to one hierarchy object (a Namespace, a HierarchyConfiguration or a SubnamespaceAnchor).
#[derive(Clone, Debug, PartialEq)]
pub enum HierarchyOp {
    /// Create the object (complete JSON, with apiVersion, kind and metadata).
    Create(Value),
    /// JSON merge patch, conditional on the `metadata.resourceVersion` it carries.
    MergePatch(Value),
    /// Delete the object whatever its version, but only if it is still the object with this `metadata.uid`
    /// (a uid precondition; empty when the uid was not observed, which only hand-made test states do).
    Delete {
        /// The uid the delete is conditional on.
        uid: String,
    },
}

impl HierarchyOp {
    /// The API verb, as used in metrics.
    pub fn verb(&self) -> &'static str {
        match self {
            HierarchyOp::Create(_) => "create",
            HierarchyOp::MergePatch(_) => "patch",
            HierarchyOp::Delete { .. } => "delete",
        }
    }
}

/// The merge patch bringing an anchor's state and finalizer to `target`, if anything differs.
pub fn anchor_write(observed: &ObservedAnchor, target: &AnchorTarget) -> Option<HierarchyOp> {
    let has = observed.has_finalizer();
    let state_differs = target.state.is_some_and(|s| observed.state.as_deref() != Some(s.as_str()));
    if has == target.finalizer && !state_differs {
        return None;
    }
    let mut metadata = Map::new();
    metadata.insert("resourceVersion".into(), observed.resource_version.clone().into());
    if has != target.finalizer {
        let mut list: Vec<String> =
            observed.finalizers.iter().filter(|f| *f != finalizers::ANCHOR).cloned().collect();
        if target.finalizer {
            list.push(finalizers::ANCHOR.to_owned());
        }
        metadata.insert("finalizers".into(), json!(list));
    }
    let mut patch = Map::new();
    patch.insert("metadata".into(), Value::Object(metadata));
    if let (true, Some(state)) = (state_differs, target.state) {
        patch.insert("status".into(), json!({ "status": state.as_str() }));
    }
    Some(HierarchyOp::MergePatch(Value::Object(patch)))
}

/// The Namespace an anchor `parent/child` asks for: only the `subnamespace-of` annotation (labels follow from
/// the mutating webhook and the hierarchy reconciler, as upstream).
pub fn subnamespace(parent: &str, child: &str) -> HierarchyOp {
    HierarchyOp::Create(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": child, "annotations": { annotations::SUBNAMESPACE_OF: parent } },
    }))
}

/// The merge patch bringing a Namespace's labels/annotations to `target`, if anything differs.
pub fn namespace_patch(observed: &ObservedNamespace, target: &NamespaceTarget) -> Option<HierarchyOp> {
    let labels = map_delta(&observed.labels, &target.set_labels, &target.remove_labels);
    let annotations = map_delta(&observed.annotations, &target.set_annotations, &target.remove_annotations);
    if labels.is_empty() && annotations.is_empty() {
        return None;
    }
    let mut metadata = Map::new();
    metadata.insert("resourceVersion".into(), observed.resource_version.clone().into());
    if !labels.is_empty() {
        metadata.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        metadata.insert("annotations".into(), Value::Object(annotations));
    }
    Some(HierarchyOp::MergePatch(json!({ "metadata": metadata })))
}

fn map_delta(observed: &StringMap, set: &BTreeMap<String, String>, remove: &[String]) -> Map<String, Value> {
    let mut delta = Map::new();
    for (k, v) in set {
        if observed.get(k) != Some(v.as_str()) {
            delta.insert(k.clone(), v.clone().into());
        }
    }
    for k in remove {
        if observed.contains_key(k) && !set.contains_key(k) {
            delta.insert(k.clone(), Value::Null);
        }
    }
    delta
}

/// The write bringing `namespace`'s HierarchyConfiguration to `target`, if anything differs. `now` stamps
/// conditions that changed (RFC 3339).
pub fn hierarchy_write(
    namespace: &str,
    observed: Option<&ObservedHierarchy>,
    target: &HierarchyTarget,
    namespace_deleting: bool,
    now: &str,
) -> Option<HierarchyOp> {
    let mut conditions = target.conditions.clone();
    for c in conditions.iter_mut().filter(|c| c.last_transition_time.is_empty()) {
        c.last_transition_time = now.to_owned();
    }
    let Some(observed) = observed else {
        // Never create an HC in a namespace that is going away, nor one with nothing to say (spec §4.3 step 8).
        if !target.should_exist || namespace_deleting {
            return None;
        }
        let mut spec = HierarchyConfigurationSpec::default();
        if let Some(rewrite) = &target.spec_rewrite {
            apply_rewrite(&mut spec, rewrite);
        }
        let mut object = json!({
            "apiVersion": hnc_api::API_VERSION,
            "kind": "HierarchyConfiguration",
            "metadata": { "name": names::HIERARCHY, "namespace": namespace },
            "spec": spec,
            "status": HierarchyConfigurationStatus { children: target.children.clone(), conditions },
        });
        if target.has_subnamespace_finalizer {
            object["metadata"]["finalizers"] = json!([finalizers::HAS_SUBNAMESPACE]);
        }
        return Some(HierarchyOp::Create(object));
    };

    carry_transition_times(&mut conditions, &observed.status.conditions);
    let mut patch = Map::new();
    let mut metadata = Map::new();
    metadata.insert("resourceVersion".into(), observed.resource_version.clone().into());

    let has_finalizer = observed.finalizers.iter().any(|f| f == finalizers::HAS_SUBNAMESPACE);
    if has_finalizer != target.has_subnamespace_finalizer {
        let mut list: Vec<String> =
            observed.finalizers.iter().filter(|f| *f != finalizers::HAS_SUBNAMESPACE).cloned().collect();
        if target.has_subnamespace_finalizer {
            list.push(finalizers::HAS_SUBNAMESPACE.to_owned());
        }
        metadata.insert("finalizers".into(), json!(list));
    }

    if let Some(rewrite) = &target.spec_rewrite {
        let mut spec = observed.spec.clone();
        apply_rewrite(&mut spec, rewrite);
        if spec != observed.spec {
            let mut fields = Map::new();
            fields.insert("parent".into(), json!(spec.parent));
            fields.insert("labels".into(), list_or_null(json!(spec.labels)));
            fields.insert("annotations".into(), list_or_null(json!(spec.annotations)));
            patch.insert("spec".into(), Value::Object(fields));
        }
    }

    let status = HierarchyConfigurationStatus { children: target.children.clone(), conditions };
    if status != observed.status {
        patch.insert(
            "status".into(),
            json!({
                "children": list_or_null(json!(status.children)),
                "conditions": list_or_null(json!(status.conditions)),
            }),
        );
    }

    if patch.is_empty() && metadata.len() == 1 {
        return None;
    }
    patch.insert("metadata".into(), Value::Object(metadata));
    Some(HierarchyOp::MergePatch(Value::Object(patch)))
}

fn apply_rewrite(spec: &mut HierarchyConfigurationSpec, rewrite: &SpecRewrite) {
    spec.parent = Some(rewrite.parent.clone());
    spec.labels = rewrite.labels.clone();
    spec.annotations = rewrite.annotations.clone();
}

/// Empty lists are omitted upstream (`omitempty`); in a merge patch that means deleting the field.
fn list_or_null(list: Value) -> Value {
    if list.as_array().is_some_and(Vec::is_empty) { Value::Null } else { list }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hnc_api::Condition;
    use hnc_api::anchor::AnchorState;
    use hnc_api::condition::{reasons, types};

    const NOW: &str = "2026-01-01T00:00:00Z";

    fn ns(labels: &[(&str, &str)]) -> ObservedNamespace {
        ObservedNamespace {
            resource_version: "7".into(),
            labels: labels.iter().copied().collect(),
            ..Default::default()
        }
    }

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn namespace_already_right_needs_no_write() {
        let observed = ns(&[("a.tree.hnc.x-k8s.io/depth", "0"), ("team", "x")]);
        let target = NamespaceTarget {
            set_labels: set(&[("a.tree.hnc.x-k8s.io/depth", "0")]),
            remove_labels: vec!["gone.tree.hnc.x-k8s.io/depth".into()],
            ..Default::default()
        };
        assert!(namespace_patch(&observed, &target).is_none());
    }

    #[test]
    fn namespace_patch_touches_only_what_differs() {
        let observed =
            ns(&[("a.tree.hnc.x-k8s.io/depth", "5"), ("old.tree.hnc.x-k8s.io/depth", "1"), ("team", "x")]);
        let target = NamespaceTarget {
            set_labels: set(&[
                ("a.tree.hnc.x-k8s.io/depth", "0"),
                ("hnc.x-k8s.io/included-namespace", "true"),
            ]),
            remove_labels: vec!["old.tree.hnc.x-k8s.io/depth".into()],
            ..Default::default()
        };
        let Some(HierarchyOp::MergePatch(patch)) = namespace_patch(&observed, &target) else { panic!() };
        assert_eq!(
            patch,
            json!({"metadata": {"resourceVersion": "7", "labels": {
                "a.tree.hnc.x-k8s.io/depth": "0",
                "hnc.x-k8s.io/included-namespace": "true",
                "old.tree.hnc.x-k8s.io/depth": null
            }}})
        );
    }

    fn halted(now: &str) -> Condition {
        Condition::new(types::ACTIVITIES_HALTED, reasons::PARENT_MISSING, "missing", now)
    }

    #[test]
    fn anchor_state_and_finalizer() {
        let observed = ObservedAnchor { resource_version: "4".into(), ..Default::default() };
        let ok = AnchorTarget { state: Some(AnchorState::Ok), finalizer: true };
        let Some(HierarchyOp::MergePatch(patch)) = anchor_write(&observed, &ok) else { panic!() };
        assert_eq!(
            patch,
            json!({"metadata": {"resourceVersion": "4", "finalizers": ["hnc.x-k8s.io"]}, "status": {"status": "Ok"}})
        );
        let settled = ObservedAnchor {
            resource_version: "5".into(),
            finalizers: vec!["hnc.x-k8s.io".into()],
            state: Some("Ok".into()),
            ..Default::default()
        };
        assert!(anchor_write(&settled, &ok).is_none());
        let release = AnchorTarget { state: Some(AnchorState::Ok), finalizer: false };
        let Some(HierarchyOp::MergePatch(patch)) = anchor_write(&settled, &release) else { panic!() };
        assert_eq!(patch, json!({"metadata": {"resourceVersion": "5", "finalizers": []}}));
    }

    #[test]
    fn subnamespace_carries_only_its_parent() {
        let HierarchyOp::Create(obj) = subnamespace("p", "c") else { panic!() };
        assert_eq!(
            obj["metadata"],
            json!({"name": "c", "annotations": {"hnc.x-k8s.io/subnamespace-of": "p"}})
        );
    }

    #[test]
    fn plain_root_gets_no_hierarchy_configuration() {
        assert!(hierarchy_write("root", None, &HierarchyTarget::default(), false, NOW).is_none());
    }

    #[test]
    fn hierarchy_configuration_is_created_with_what_it_has_to_say() {
        let target = HierarchyTarget {
            should_exist: true,
            children: vec!["c".into()],
            has_subnamespace_finalizer: true,
            ..Default::default()
        };
        let Some(HierarchyOp::Create(obj)) = hierarchy_write("p", None, &target, false, NOW) else {
            panic!()
        };
        assert_eq!(
            obj["metadata"],
            json!({"name": "hierarchy", "namespace": "p", "finalizers": ["hnc.x-k8s.io/hasSubnamespace"]})
        );
        assert_eq!(obj["status"], json!({"children": ["c"]}));
        assert!(hierarchy_write("p", None, &target, true, NOW).is_none(), "not in a terminating namespace");
    }

    /// A stored HierarchyConfiguration with one condition set in 2020 and no children.
    fn halted_since_2020() -> ObservedHierarchy {
        ObservedHierarchy {
            resource_version: "3".into(),
            status: HierarchyConfigurationStatus {
                children: vec![],
                conditions: vec![halted("2020-01-01T00:00:00Z")],
            },
            ..Default::default()
        }
    }

    #[test]
    fn unchanged_conditions_keep_their_time_and_cause_no_write() {
        let observed = halted_since_2020();
        let mut cond = halted("");
        cond.last_transition_time.clear();
        let target = HierarchyTarget { should_exist: true, conditions: vec![cond], ..Default::default() };
        assert!(hierarchy_write("n", Some(&observed), &target, false, NOW).is_none());
    }

    #[test]
    fn cleared_condition_and_new_child_are_written_once() {
        let observed = halted_since_2020();
        let target =
            HierarchyTarget { should_exist: true, children: vec!["kid".into()], ..Default::default() };
        let Some(HierarchyOp::MergePatch(patch)) = hierarchy_write("n", Some(&observed), &target, false, NOW)
        else {
            panic!()
        };
        assert_eq!(
            patch,
            json!({"metadata": {"resourceVersion": "3"}, "status": {"children": ["kid"], "conditions": null}})
        );
    }

    #[test]
    fn subnamespace_spec_is_enforced_and_finalizers_kept() {
        let observed = ObservedHierarchy {
            resource_version: "9".into(),
            finalizers: vec!["example.com/keep".into()],
            spec: HierarchyConfigurationSpec { parent: Some("elsewhere".into()), ..Default::default() },
            ..Default::default()
        };
        let target = HierarchyTarget {
            should_exist: true,
            spec_rewrite: Some(SpecRewrite { parent: "p".into(), ..Default::default() }),
            has_subnamespace_finalizer: true,
            ..Default::default()
        };
        let Some(HierarchyOp::MergePatch(patch)) = hierarchy_write("c", Some(&observed), &target, false, NOW)
        else {
            panic!()
        };
        assert_eq!(patch["spec"], json!({"parent": "p", "labels": null, "annotations": null}));
        assert_eq!(
            patch["metadata"]["finalizers"],
            json!(["example.com/keep", "hnc.x-k8s.io/hasSubnamespace"])
        );
        assert!(patch.get("status").is_none());
    }
}
