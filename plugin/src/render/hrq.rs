//! `kubectl hns hrq`: HierarchicalResourceQuotas as kubectl's table printer shows them — `NAME AGE REQUEST
//! LIMIT`, with `NAMESPACE` first for `-A` and `LABELS` last for `--show-labels` (spec §12).
//!
//! REQUEST and LIMIT are computed from `status.hard` and `status.used` (not the stored summaries): for every
//! resource of `status.hard`, in name order, `<resource>: <used>/<hard>` with canonical quantities; resources
//! whose dotted name starts with `limits` go to LIMIT, all others to REQUEST.

use std::cmp::Ordering;

use hnc_api::HierarchicalResourceQuota;
use hnc_api::hrq::{Quantity, ResourceList};
use hnc_api::quantity;
use k8s_openapi::jiff::Timestamp;

use super::age::age;
use super::quantity::canonical_quantity;
use super::tabwriter::TabWriter;

/// The table of `quotas`. `with_namespace` adds the NAMESPACE column (`-A`), `show_labels` the LABELS column.
pub fn render_hrq_table(
    quotas: &[HierarchicalResourceQuota],
    with_namespace: bool,
    show_labels: bool,
    now: Timestamp,
) -> String {
    // kubectl's tabwriter settings: minimum width 6, padding 3.
    let mut table = TabWriter::new(6, 3);
    let mut header = Vec::new();
    if with_namespace {
        header.push("NAMESPACE");
    }
    header.extend(["NAME", "AGE", "REQUEST", "LIMIT"]);
    if show_labels {
        header.push("LABELS");
    }
    table.row(header);
    for hrq in quotas {
        let status = hrq.status.clone().unwrap_or_default();
        let (requests, limits) = summaries(&status.hard, Some(&status.used));
        let (request, limit) = (joined(&requests), joined(&limits));
        let mut row = Vec::new();
        if with_namespace {
            row.push(hrq.metadata.namespace.clone().unwrap_or_default());
        }
        row.push(hrq.metadata.name.clone().unwrap_or_default());
        row.push(age(now, hrq.metadata.creation_timestamp.as_ref().map(|t| t.0)));
        row.push(request);
        row.push(limit);
        if show_labels {
            row.push(format_labels(hrq));
        }
        table.row(row);
    }
    table.finish()
}

/// One resource of an HRQ as printed: `<resource>: <used>/<hard>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Amount {
    /// `<resource>: <used>/<hard>`, quantities canonical; used is `?` when not known.
    pub(crate) text: String,
    /// Used is more than hard (compared exactly; false when either is not a quantity).
    pub(crate) over: bool,
}

/// The REQUEST and LIMIT amounts: every resource of `hard`, in name order, with its amount in `used` (0 when
/// absent; `?` for each when `used` is `None`); resources whose dotted name starts with `limits` go to LIMIT.
pub(crate) fn summaries(hard: &ResourceList, used: Option<&ResourceList>) -> (Vec<Amount>, Vec<Amount>) {
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    let zero = Quantity::Int(0);
    for (resource, hard) in hard {
        let (used_text, over) = match used {
            Some(used) => {
                let used = used.get(resource).unwrap_or(&zero);
                (canonical_quantity(used), exceeds(used, hard))
            }
            None => ("?".to_owned(), false),
        };
        let amount = Amount { text: format!("{resource}: {used_text}/{}", canonical_quantity(hard)), over };
        match resource.split_once('.') {
            Some(("limits", _)) => limits.push(amount),
            _ => requests.push(amount),
        }
    }
    (requests, limits)
}

/// `used` > `hard`, exactly.
fn exceeds(used: &Quantity, hard: &Quantity) -> bool {
    let parse = |q: &Quantity| match q {
        Quantity::Int(i) => quantity::parse(&i.to_string()),
        Quantity::String(s) => quantity::parse(s),
    };
    match (parse(used), parse(hard)) {
        (Some(used), Some(hard)) => used.checked_cmp(&hard) == Some(Ordering::Greater),
        _ => false,
    }
}

/// The amounts' texts, comma-separated, as the REQUEST and LIMIT cells show them.
fn joined(amounts: &[Amount]) -> String {
    amounts.iter().map(|a| a.text.as_str()).collect::<Vec<_>>().join(", ")
}

/// apimachinery's `labels.FormatLabels`: `k=v` pairs sorted by key, or `<none>`.
fn format_labels(hrq: &HierarchicalResourceQuota) -> String {
    match &hrq.metadata.labels {
        Some(labels) if !labels.is_empty() => {
            labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
        }
        _ => "<none>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hnc_api::{HierarchicalResourceQuotaSpec, HierarchicalResourceQuotaStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use pretty_assertions::assert_eq;

    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::String(s.to_owned())
    }

    fn hrq(ns: &str, name: &str, hard: &[(&str, &str)], used: &[(&str, &str)]) -> HierarchicalResourceQuota {
        let list = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| ((*k).to_owned(), q(v))).collect();
        let mut hrq = HierarchicalResourceQuota::new(name, HierarchicalResourceQuotaSpec::default());
        hrq.metadata.namespace = Some(ns.to_owned());
        hrq.metadata.creation_timestamp = Some(Time("2025-01-01T00:00:00Z".parse().unwrap()));
        hrq.status = Some(HierarchicalResourceQuotaStatus {
            hard: list(hard),
            used: list(used),
            ..Default::default()
        });
        hrq
    }

    fn now() -> Timestamp {
        "2025-01-01T00:05:00Z".parse().unwrap()
    }

    #[test]
    fn requests_and_limits_are_split_and_canonical() {
        let quotas = [
            hrq(
                "acme",
                "team-quota",
                &[("limits.cpu", "2"), ("requests.cpu", "1.5"), ("pods", "10"), ("limits.memory", "1024Mi")],
                &[("requests.cpu", "500m"), ("limits.memory", "0.5Gi")],
            ),
            hrq("acme", "empty", &[], &[]),
        ];
        assert_eq!(
            render_hrq_table(&quotas, false, false, now()),
            "NAME         AGE   REQUEST                                LIMIT\n\
             team-quota   5m    pods: 0/10, requests.cpu: 500m/1500m   limits.cpu: 0/2, limits.memory: 512Mi/1Gi\n\
             empty        5m                                           \n"
        );
    }

    #[test]
    fn namespace_and_labels_columns() {
        let mut labelled = hrq("b-ns", "q2", &[("pods", "1")], &[("pods", "1")]);
        labelled.metadata.labels = Some(BTreeMap::from([
            ("team".to_owned(), "b".to_owned()),
            ("env".to_owned(), "prod".to_owned()),
        ]));
        let mut unknown_age = hrq("a-ns", "q1", &[("pods", "1")], &[]);
        unknown_age.metadata.creation_timestamp = None;
        assert_eq!(
            render_hrq_table(&[unknown_age, labelled], true, true, now()),
            "NAMESPACE   NAME   AGE         REQUEST     LIMIT   LABELS\n\
             a-ns        q1     <unknown>   pods: 0/1           <none>\n\
             b-ns        q2     5m          pods: 1/1           env=prod,team=b\n"
        );
    }

    #[test]
    fn amounts_compare_exactly_and_unknown_use_is_a_question_mark() {
        let list = |kv: &[(&str, Quantity)]| kv.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        let hard: ResourceList =
            list(&[("cpu", q("1.5")), ("pods", Quantity::Int(2)), ("limits.memory", q("1Gi"))]);
        let used: ResourceList =
            list(&[("cpu", q("1500m")), ("pods", q("3")), ("limits.memory", q("1073741825"))]);
        let amount = |text: &str, over| Amount { text: text.to_owned(), over };
        assert_eq!(
            summaries(&hard, Some(&used)),
            (
                vec![amount("cpu: 1500m/1500m", false), amount("pods: 3/2", true)],
                vec![amount("limits.memory: 1073741825/1Gi", true)]
            )
        );
        assert_eq!(
            summaries(&hard, None),
            (
                vec![amount("cpu: ?/1500m", false), amount("pods: ?/2", false)],
                vec![amount("limits.memory: ?/1Gi", false)]
            )
        );
    }
}
