//! `kubectl hns describe NAMESPACE`: reads the namespace's HierarchyConfiguration, its anchors and its Events,
//! and prints them through [`crate::render::render_describe`]; then the HierarchicalResourceQuotas of the
//! namespace and its ancestors through [`crate::render::render_quotas`].
//!
//! The ancestors are those of the namespace's tree labels (`<ancestor>.tree.hnc.x-k8s.io/depth`, which only HNC
//! writes), so they come with the Namespace already read; the quotas are listed once per namespace of that
//! ancestry. Where HRQs cannot be listed (CRD not installed, or the user may not list them) nothing is said
//! about quotas; any other error listing them is printed in their section and describe still succeeds.

use hnc_api::keys::labels::{parse_tree_depth, tree_label_ancestor};
use hnc_api::{HierarchicalResourceQuota, SubnamespaceAnchor};
use k8s_openapi::api::core::v1::{Event, Namespace};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::ListParams;

use super::hierarchy::{read_hierarchy, read_namespace};
use super::{Failure, Out};
use crate::client::{ApiError, Ctx, decode};
use crate::render::{AnchorSummary, describe_header, render_describe, render_quotas, render_quotas_error};

/// Describes `namespace`.
pub async fn run(ctx: &Ctx, out: &mut Out<'_>, namespace: &str) -> Result<(), Failure> {
    out.print(&describe_header(namespace));
    let ns = read_namespace(ctx, namespace).await.map_err(Failure)?;
    let hierarchy = read_hierarchy(ctx, namespace).await.map_err(Failure)?;

    let anchors_api = ctx.hnc_api::<SubnamespaceAnchor>(Some(namespace));
    let listed = ctx
        .call(anchors_api.list(&ListParams::default()))
        .await
        .and_then(|list| list.items.into_iter().map(decode).collect::<Result<Vec<SubnamespaceAnchor>, _>>());
    let anchors = match listed {
        Ok(anchors) => anchors,
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(Failure(format!("Error listing subnamespace anchors for {namespace}: {e}"))),
    };
    let anchors: Vec<AnchorSummary> = anchors
        .into_iter()
        .map(|a| AnchorSummary {
            name: a.metadata.name.unwrap_or_default(),
            state: a.status.and_then(|s| s.state).unwrap_or_default(),
        })
        .collect();

    // Like upstream, a namespace whose Events cannot be listed is described as having none.
    let events_api: Api<Event> = Api::namespaced(ctx.client.clone(), namespace);
    let events = ctx.call(events_api.list(&ListParams::default())).await.map(|l| l.items).unwrap_or_default();

    let ancestry = ancestry(namespace, &ns);
    let quotas = match list_quotas(ctx, &ancestry).await {
        Ok(quotas) => render_quotas(&ancestry, &quotas),
        Err((_, e)) if e.is_not_found() || e.is_forbidden() => String::new(),
        Err((at, e)) => render_quotas_error(&at, &e.to_string()),
    };

    out.print(&render_describe(namespace, &hierarchy, &anchors, &events, Timestamp::now()));
    out.print(&quotas);
    Ok(())
}

/// The namespace's ancestors from its tree labels, root first (deepest label first, by name at equal depth),
/// then the namespace itself. Labels whose value is not a depth are ignored.
fn ancestry(namespace: &str, ns: &Namespace) -> Vec<String> {
    let mut ancestors: Vec<(u32, &str)> = ns
        .metadata
        .labels
        .iter()
        .flatten()
        .filter_map(|(key, value)| Some((parse_tree_depth(value)?, tree_label_ancestor(key)?)))
        .filter(|(depth, ancestor)| *depth > 0 && *ancestor != namespace)
        .collect();
    ancestors.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    ancestors.into_iter().map(|(_, a)| a.to_owned()).chain([namespace.to_owned()]).collect()
}

/// The HRQs of every namespace of `ancestry`, one list per namespace; the first failure stops, with the namespace
/// it happened in.
async fn list_quotas(
    ctx: &Ctx,
    ancestry: &[String],
) -> Result<Vec<HierarchicalResourceQuota>, (String, ApiError)> {
    let mut quotas = Vec::new();
    for namespace in ancestry {
        let api = ctx.hnc_api::<HierarchicalResourceQuota>(Some(namespace));
        let listed = ctx
            .call(api.list(&ListParams::default()))
            .await
            .and_then(|list| list.items.into_iter().map(decode).collect::<Result<Vec<_>, _>>())
            .map_err(|e| (namespace.clone(), e))?;
        quotas.extend(listed);
    }
    Ok(quotas)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn ancestry_is_root_first_from_the_tree_labels() {
        let mut ns = Namespace::default();
        ns.metadata.labels = Some(BTreeMap::from(
            [
                ("dev.tree.hnc.x-k8s.io/depth", "0"),
                ("team-a.tree.hnc.x-k8s.io/depth", "1"),
                ("acme.tree.hnc.x-k8s.io/depth", "2"),
                ("bogus.tree.hnc.x-k8s.io/depth", "x"),
                ("team", "a"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        ));
        assert_eq!(ancestry("dev", &ns), ["acme", "team-a", "dev"]);
        assert_eq!(ancestry("plain", &Namespace::default()), ["plain"]);
    }
}
