//! `kubectl hns hrq`: HierarchicalResourceQuotas as kubectl's table printer shows them — `NAME AGE REQUEST
//! LIMIT`, with `NAMESPACE` first for `-A` and `LABELS` last for `--show-labels` (spec §12).
//!
//! REQUEST and LIMIT are computed from `status.hard` and `status.used` (not the stored summaries): for every
//! resource of `status.hard`, in name order, `<resource>: <used>/<hard>` with canonical quantities; resources
//! whose dotted name starts with `limits` go to LIMIT, all others to REQUEST.

use hnc_api::HierarchicalResourceQuota;
use hnc_api::hrq::Quantity;
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
        let (request, limit) = summaries(hrq);
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

/// The REQUEST and LIMIT cells.
fn summaries(hrq: &HierarchicalResourceQuota) -> (String, String) {
    let status = hrq.status.clone().unwrap_or_default();
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    let zero = Quantity::Int(0);
    for (resource, hard) in &status.hard {
        let used = status.used.get(resource).unwrap_or(&zero);
        let cell = format!("{resource}: {}/{}", canonical_quantity(used), canonical_quantity(hard));
        match resource.split_once('.') {
            Some(("limits", _)) => limits.push(cell),
            _ => requests.push(cell),
        }
    }
    (requests.join(", "), limits.join(", "))
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
}
