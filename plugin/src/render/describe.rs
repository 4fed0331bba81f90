//! `kubectl hns describe NAMESPACE`: a namespace's parent, children (full and sub), cascading-deletion setting,
//! conditions, and the recent Events HNC emitted in it (spec §12.1); then, when any apply, the hierarchical
//! quotas of the namespace and its ancestors with their subtree's usage (not in upstream's plugin).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use hnc_api::keys::names::EVENT_SOURCE;
use hnc_api::{HierarchicalResourceQuota, HierarchyConfiguration};
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;

use super::age::age;
use super::hrq::{Amount, summaries};
use super::tabwriter::TabWriter;
use super::tree::condition_text;

/// A subnamespace anchor in the described namespace: its name and `status.status` (empty when not yet set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorSummary {
    /// The anchor's name, which is the subnamespace's name.
    pub name: String,
    /// `status.status`: `Ok`, `Missing`, `Conflict`, `Forbidden`, or empty.
    pub state: String,
}

/// The first line, printed before anything is read (so it precedes a read error, as upstream's does).
pub fn describe_header(namespace: &str) -> String {
    format!("Hierarchy configuration for namespace {namespace}\n")
}

/// Everything after [`describe_header`]: parent, children, cascading deletion, conditions and HNC's events.
/// `events` are all the Events of the namespace; only those from HNC (`source.component: hnc.x-k8s.io`) are
/// shown, newest first, one per reason and object.
pub fn render_describe(
    namespace: &str,
    hierarchy: &HierarchyConfiguration,
    anchors: &[AnchorSummary],
    events: &[Event],
    now: Timestamp,
) -> String {
    let mut out = String::new();
    match hierarchy.spec.parent_name() {
        Some(parent) => {
            let _ = writeln!(out, "  Parent: {parent}");
        }
        None => out.push_str("  No parent\n"),
    }

    let status = hierarchy.status.clone().unwrap_or_default();
    // A child with an anchor here is a subnamespace; an anchor whose namespace is not (yet) a child shows the
    // anchor's state instead, e.g. "(Missing subnamespace)".
    let mut children: BTreeMap<&str, String> =
        status.children.iter().map(|c| (c.as_str(), String::new())).collect();
    for anchor in anchors {
        let kind = match children.get(anchor.name.as_str()) {
            Some(_) => "subnamespace".to_owned(),
            None => format!("{} subnamespace", anchor.state),
        };
        children.insert(&anchor.name, kind);
    }
    if children.is_empty() {
        out.push_str("  No children\n");
    } else {
        let mut lines: Vec<String> = children
            .into_iter()
            .map(|(name, kind)| if kind.is_empty() { name.to_owned() } else { format!("{name} ({kind})") })
            .collect();
        lines.sort();
        out.push_str("  Children:\n");
        for line in lines {
            let _ = writeln!(out, "  - {line}");
        }
    }

    let allow = hierarchy.spec.allow_cascading_deletion.unwrap_or(false);
    let _ = writeln!(out, "  Allows Cascading Deletion: {allow}");

    if status.conditions.is_empty() {
        out.push_str("  No conditions\n");
    } else {
        out.push_str("  Conditions:\n");
        for cond in &status.conditions {
            let _ = writeln!(out, "  - {}", condition_text(cond));
        }
    }

    out.push_str(&render_events(namespace, events, now));
    out
}

/// When an Event was last seen: `lastTimestamp`, or `eventTime` for Events written through the
/// `events.k8s.io` API, which leaves `lastTimestamp` empty (upstream printed such ages as "292y").
fn last_seen(event: &Event) -> Option<Timestamp> {
    event.last_timestamp.as_ref().map(|t| t.0).or_else(|| event.event_time.as_ref().map(|t| t.0))
}

fn render_events(namespace: &str, events: &[Event], now: Timestamp) -> String {
    let mut hnc: Vec<&Event> = events
        .iter()
        .filter(|e| e.source.as_ref().and_then(|s| s.component.as_deref()) == Some(EVENT_SOURCE))
        .collect();
    if hnc.is_empty() {
        return "\nNo recent HNC events for objects in this namespace\n".to_owned();
    }
    hnc.sort_by_key(|e| std::cmp::Reverse(last_seen(e)));

    let mut table = TabWriter::new(0, 1);
    table.row(["Last Seen", "Reason", "Object", "Message"]);
    let mut seen = HashSet::new();
    for event in hnc {
        let obj = &event.involved_object;
        let object = format!(
            "{}:{}/{}",
            obj.kind.as_deref().unwrap_or_default(),
            obj.namespace.as_deref().unwrap_or_default(),
            obj.name.as_deref().unwrap_or_default()
        );
        let reason = event.reason.clone().unwrap_or_default();
        if !seen.insert(format!("{reason}{object}")) {
            continue;
        }
        let message = event.message.as_deref().unwrap_or_default().trim().to_owned();
        table.row([age(now, last_seen(event)), reason, object, message]);
    }
    format!("\nEvents from the objects in namespace {namespace}\n{}", table.finish())
}

/// The `Hierarchical quotas:` section, appended after [`render_describe`]: one line per HRQ of `quotas` that
/// lives in a namespace of `ancestry` (the described namespace's ancestors, root first, then itself), in that
/// order and by name within a namespace; empty when none does. Each line is `<namespace>/<name>:` and the
/// amounts of `status.hard` and `status.used` as `kubectl hns hrq` computes them, requests first, then limits
/// in parentheses when there are any; ` (over)` follows an amount whose use exceeds its limit. An HRQ whose
/// status is not written yet shows its `spec.hard` with `?` as used; one without limits shows `<none>`.
pub fn render_quotas(ancestry: &[String], quotas: &[HierarchicalResourceQuota]) -> String {
    let mut applying: Vec<(usize, &str, &HierarchicalResourceQuota)> = quotas
        .iter()
        .filter_map(|hrq| {
            let namespace = hrq.metadata.namespace.as_deref()?;
            let depth = ancestry.iter().position(|a| a == namespace)?;
            Some((depth, hrq.metadata.name.as_deref().unwrap_or_default(), hrq))
        })
        .collect();
    if applying.is_empty() {
        return String::new();
    }
    applying.sort_by_key(|(depth, name, _)| (*depth, *name));

    let mut table = TabWriter::new(0, 2);
    for (depth, name, hrq) in applying {
        let status = hrq.status.clone().unwrap_or_default();
        let (requests, limits) = if status.hard.is_empty() && !hrq.spec.hard.is_empty() {
            summaries(&hrq.spec.hard, None)
        } else {
            summaries(&status.hard, Some(&status.used))
        };
        let mut parts = Vec::new();
        if !requests.is_empty() {
            parts.push(marked(&requests));
        }
        if !limits.is_empty() {
            parts.push(format!("({})", marked(&limits)));
        }
        if parts.is_empty() {
            parts.push("<none>".to_owned());
        }
        table.row([format!("  {}/{name}:", ancestry[depth]), parts.join("  ")]);
    }
    format!("\nHierarchical quotas:\n{}", table.finish())
}

/// The `Hierarchical quotas:` section when listing them in `namespace` failed with `error`.
pub fn render_quotas_error(namespace: &str, error: &str) -> String {
    format!("\nHierarchical quotas:\n  Error listing hierarchical quotas in {namespace}: {error}\n")
}

/// The amounts, comma-separated, each exceeded one followed by ` (over)`.
fn marked(amounts: &[Amount]) -> String {
    let texts: Vec<String> =
        amounts.iter().map(|a| if a.over { format!("{} (over)", a.text) } else { a.text.clone() }).collect();
    texts.join(", ")
}

#[cfg(test)]
mod tests {
    use hnc_api::condition::{reasons, types};
    use hnc_api::hrq::Quantity;
    use hnc_api::{
        Condition, HierarchicalResourceQuotaSpec, HierarchicalResourceQuotaStatus,
        HierarchyConfigurationSpec, HierarchyConfigurationStatus,
    };
    use k8s_openapi::api::core::v1::{EventSource, ObjectReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use pretty_assertions::assert_eq;

    use super::*;

    fn hc(parent: Option<&str>, children: &[&str], conditions: Vec<Condition>) -> HierarchyConfiguration {
        let mut hc = HierarchyConfiguration::new(
            "hierarchy",
            HierarchyConfigurationSpec { parent: parent.map(str::to_owned), ..Default::default() },
        );
        hc.status = Some(HierarchyConfigurationStatus {
            children: children.iter().map(|c| (*c).to_owned()).collect(),
            conditions,
        });
        hc
    }

    fn anchor(name: &str, state: &str) -> AnchorSummary {
        AnchorSummary { name: name.to_owned(), state: state.to_owned() }
    }

    fn event(component: &str, reason: &str, name: &str, message: &str, last: &str) -> Event {
        Event {
            source: Some(EventSource { component: Some(component.to_owned()), host: None }),
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            involved_object: ObjectReference {
                kind: Some("Secret".to_owned()),
                namespace: Some("team-a".to_owned()),
                name: Some(name.to_owned()),
                ..Default::default()
            },
            last_timestamp: Some(Time(last.parse().unwrap())),
            ..Default::default()
        }
    }

    fn now() -> Timestamp {
        "2025-01-01T01:00:00Z".parse().unwrap()
    }

    fn quota(
        ns: &str,
        name: &str,
        hard: &[(&str, &str)],
        used: Option<&[(&str, &str)]>,
    ) -> HierarchicalResourceQuota {
        let list = |kv: &[(&str, &str)]| {
            kv.iter().map(|(k, v)| ((*k).to_owned(), Quantity::String((*v).to_owned()))).collect()
        };
        let mut hrq =
            HierarchicalResourceQuota::new(name, HierarchicalResourceQuotaSpec { hard: list(hard) });
        hrq.metadata.namespace = Some(ns.to_owned());
        hrq.status = used.map(|used| HierarchicalResourceQuotaStatus {
            hard: list(hard),
            used: list(used),
            ..Default::default()
        });
        hrq
    }

    #[test]
    fn quotas_of_the_ancestry_root_first_with_limits_apart_and_overuse_marked() {
        let ancestry = ["acme", "team-a", "dev"].map(str::to_owned);
        let quotas = [
            quota("dev", "small", &[("pods", "2")], Some(&[("pods", "3")])),
            quota("other", "unrelated", &[("pods", "1")], Some(&[])),
            quota(
                "team-a",
                "budget",
                &[("pods", "10"), ("requests.cpu", "4"), ("limits.cpu", "8")],
                Some(&[("pods", "3"), ("requests.cpu", "1.5"), ("limits.cpu", "2")]),
            ),
            quota("dev", "empty", &[], None),
            quota("team-a", "alpha", &[("limits.memory", "1Gi")], Some(&[("limits.memory", "2048Mi")])),
            quota("acme", "new", &[("pods", "5")], None),
        ];
        assert_eq!(
            render_quotas(&ancestry, &quotas),
            "\n\
             Hierarchical quotas:\n\
             \x20 acme/new:       pods: ?/5\n\
             \x20 team-a/alpha:   (limits.memory: 2Gi/1Gi (over))\n\
             \x20 team-a/budget:  pods: 3/10, requests.cpu: 1500m/4  (limits.cpu: 2/8)\n\
             \x20 dev/empty:      <none>\n\
             \x20 dev/small:      pods: 3/2 (over)\n"
        );
    }

    #[test]
    fn no_applicable_quota_adds_nothing() {
        let ancestry = ["acme".to_owned()];
        assert_eq!(render_quotas(&ancestry, &[]), "");
        assert_eq!(render_quotas(&ancestry, &[quota("elsewhere", "q", &[("pods", "1")], None)]), "");
    }

    #[test]
    fn root_without_children_conditions_or_events() {
        let out = render_describe("acme", &hc(None, &[], vec![]), &[], &[], now());
        assert_eq!(
            format!("{}{out}", describe_header("acme")),
            "Hierarchy configuration for namespace acme\n\
             \x20 No parent\n\
             \x20 No children\n\
             \x20 Allows Cascading Deletion: false\n\
             \x20 No conditions\n\
             \n\
             No recent HNC events for objects in this namespace\n"
        );
    }

    #[test]
    fn children_are_full_sub_or_pending_and_sorted_as_printed() {
        let mut h = hc(Some("acme"), &["zed", "full", "sub"], vec![]);
        h.spec.allow_cascading_deletion = Some(true);
        let anchors = [anchor("sub", "Ok"), anchor("pending", "Missing"), anchor("clash", "Conflict")];
        let out = render_describe("team-a", &h, &anchors, &[], now());
        assert_eq!(
            out,
            "  Parent: acme\n\
             \x20 Children:\n\
             \x20 - clash (Conflict subnamespace)\n\
             \x20 - full\n\
             \x20 - pending (Missing subnamespace)\n\
             \x20 - sub (subnamespace)\n\
             \x20 - zed\n\
             \x20 Allows Cascading Deletion: true\n\
             \x20 No conditions\n\
             \n\
             No recent HNC events for objects in this namespace\n"
        );
    }

    #[test]
    fn an_anchor_without_status_keeps_upstreams_spacing() {
        let out = render_describe("p", &hc(None, &[], vec![]), &[anchor("new", "")], &[], now());
        assert!(out.contains("  - new ( subnamespace)\n"), "{out}");
    }

    #[test]
    fn conditions_are_listed_with_type_reason_and_message() {
        let conds = vec![
            Condition::new(types::ACTIVITIES_HALTED, reasons::PARENT_MISSING, "parent \"x\" gone", "t"),
            Condition::new(types::BAD_CONFIGURATION, reasons::ILLEGAL_MANAGED_LABEL, "bad", "t"),
        ];
        let out = render_describe("n", &hc(Some("x"), &[], conds), &[], &[], now());
        assert!(
            out.contains(
                "  Conditions:\n\
                 \x20 - ActivitiesHalted (ParentMissing): parent \"x\" gone\n\
                 \x20 - BadConfiguration (IllegalManagedLabel): bad\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn hnc_events_newest_first_one_per_reason_and_object() {
        let events = [
            event("hnc.x-k8s.io", "CannotPropagateObject", "s1", "old one", "2025-01-01T00:00:00Z"),
            event("kubelet", "Pulled", "s1", "not HNC's", "2025-01-01T00:59:00Z"),
            event("hnc.x-k8s.io", "CannotPropagateObject", "s1", " newest \n", "2025-01-01T00:58:00Z"),
            event("hnc.x-k8s.io", "CannotUpdateObject", "longer-name", "x", "2025-01-01T00:30:00Z"),
        ];
        let out = render_describe("team-a", &hc(None, &[], vec![]), &[], &events, now());
        assert!(
            out.ends_with(
                "  No conditions\n\
                 \n\
                 Events from the objects in namespace team-a\n\
                 Last Seen Reason                Object                    Message\n\
                 2m        CannotPropagateObject Secret:team-a/s1          newest\n\
                 30m       CannotUpdateObject    Secret:team-a/longer-name x\n"
            ),
            "{out}"
        );
    }
}
