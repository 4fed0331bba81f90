//! `kubectl hns describe NAMESPACE`: reads the namespace's HierarchyConfiguration, its anchors and its Events,
//! and prints them through [`crate::render::render_describe`].

use hnc_api::SubnamespaceAnchor;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::ListParams;

use super::hierarchy::get_hierarchy;
use super::{Failure, Out};
use crate::client::{Ctx, decode};
use crate::render::{AnchorSummary, describe_header, render_describe};

/// Describes `namespace`.
pub async fn run(ctx: &Ctx, out: &mut Out<'_>, namespace: &str) -> Result<(), Failure> {
    out.print(&describe_header(namespace));
    let hierarchy = get_hierarchy(ctx, namespace).await?;

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

    out.print(&render_describe(namespace, &hierarchy, &anchors, &events, Timestamp::now()));
    Ok(())
}
