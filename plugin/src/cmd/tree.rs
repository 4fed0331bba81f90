//! `kubectl hns tree NS... | -A`: reads the namespaces the trees need into a [`Forest`], then prints it through
//! [`crate::render::render_tree`].
//!
//! Named roots are read breadth-first from the roots down (`status.children`), a bounded number of namespaces
//! at a time. `-A` reads the cluster in two paged lists — Namespaces and HierarchyConfigurations — instead of
//! upstream's two GETs per namespace, which at 100,000 namespaces would be 200,000 requests; when the user may
//! not list HierarchyConfigurations cluster-wide, each is read in its namespace as upstream does.

use std::collections::{HashMap, HashSet};

use futures::{StreamExt, stream};
use hnc_api::HierarchyConfiguration;
use hnc_api::keys::annotations::SUBNAMESPACE_OF;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::ListParams;
use serde::de::DeserializeOwned;

use super::hierarchy::{blank_hierarchy, read_hierarchy, read_namespace};
use super::{Failure, Out};
use crate::client::{ApiError, Ctx, decode};
use crate::render::{Forest, Roots, TreeNode, render_tree};

/// Reads in flight at once.
const CONCURRENT_READS: usize = 16;
/// Page size of the `-A` lists (kubectl's chunk size).
const PAGE_SIZE: u32 = 500;

/// Prints the trees of `roots`, or of the whole cluster with `all_namespaces` (which ignores `roots`).
pub async fn run(
    ctx: &Ctx,
    out: &mut Out<'_>,
    roots: &[String],
    all_namespaces: bool,
) -> Result<(), Failure> {
    if !all_namespaces && roots.is_empty() {
        return Err(Failure(
            "Error: Must specify the root of the tree(s) to display or else specify --all-namespaces"
                .to_owned(),
        ));
    }
    let (forest, roots) = if all_namespaces {
        (read_cluster(ctx).await?, Roots::All)
    } else {
        (read_subtrees(ctx, roots).await, Roots::Named(roots))
    };
    let output = render_tree(&forest, roots);
    out.print(&output.text);
    match output.error {
        Some(error) => Err(Failure(error)),
        None => Ok(()),
    }
}

fn node(namespace: &Namespace, hc: &HierarchyConfiguration) -> TreeNode {
    let status = hc.status.clone().unwrap_or_default();
    TreeNode {
        parent: hc.spec.parent.clone().unwrap_or_default(),
        children: status.children,
        conditions: status.conditions,
        subnamespace: namespace
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(SUBNAMESPACE_OF)),
    }
}

async fn read_node(ctx: &Ctx, name: &str) -> Result<TreeNode, String> {
    let namespace = read_namespace(ctx, name).await?;
    let hc = read_hierarchy(ctx, name).await?;
    Ok(node(&namespace, &hc))
}

/// Every namespace reachable from `roots` through `status.children`. A namespace that cannot be read is
/// recorded with its error line and not descended into.
async fn read_subtrees(ctx: &Ctx, roots: &[String]) -> Forest {
    let mut forest = Forest::new();
    let mut queued: HashSet<String> = roots.iter().cloned().collect();
    let mut frontier: Vec<String> = queued.iter().cloned().collect();
    while !frontier.is_empty() {
        let read: Vec<(String, Result<TreeNode, String>)> = stream::iter(std::mem::take(&mut frontier))
            .map(|name| async move {
                let node = read_node(ctx, &name).await;
                (name, node)
            })
            .buffer_unordered(CONCURRENT_READS)
            .collect()
            .await;
        for (name, result) in read {
            match result {
                Ok(node) => {
                    for child in &node.children {
                        if queued.insert(child.clone()) {
                            frontier.push(child.clone());
                        }
                    }
                    forest.insert(name, node);
                }
                Err(error) => forest.insert_error(name, error),
            }
        }
    }
    forest
}

/// Every namespace of the cluster with its HierarchyConfiguration.
async fn read_cluster(ctx: &Ctx) -> Result<Forest, Failure> {
    let namespaces: Vec<Namespace> = list_all(ctx, &Api::all(ctx.client.clone()))
        .await
        .map_err(|e| Failure(format!("Could not list namespaces: {e}")))?;
    let mut hierarchies: HashMap<String, Result<HierarchyConfiguration, String>> =
        match list_all(ctx, &ctx.hnc_api::<HierarchyConfiguration>(None)).await {
            Ok(list) => list
                .into_iter()
                .filter_map(|object| {
                    let namespace = object.metadata.namespace.clone()?;
                    let hc =
                        decode(object).map_err(|e| format!("Error reading hierarchy for {namespace}: {e}"));
                    Some((namespace, hc))
                })
                .collect(),
            // Typically a user allowed to read HierarchyConfigurations only namespace by namespace.
            Err(_) => {
                stream::iter(namespaces.iter().filter_map(|ns| ns.metadata.name.clone()))
                    .map(|name| async move {
                        let hc = read_hierarchy(ctx, &name).await;
                        (name, hc)
                    })
                    .buffer_unordered(CONCURRENT_READS)
                    .collect()
                    .await
            }
        };
    let mut forest = Forest::new();
    for namespace in &namespaces {
        let Some(name) = namespace.metadata.name.clone() else { continue };
        match hierarchies.remove(&name).unwrap_or_else(|| Ok(blank_hierarchy(&name))) {
            Ok(hc) => forest.insert(name, node(namespace, &hc)),
            Err(error) => forest.insert_error(name, error),
        }
    }
    Ok(forest)
}

/// A whole collection, read page by page.
async fn list_all<K>(ctx: &Ctx, api: &Api<K>) -> Result<Vec<K>, ApiError>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut items = Vec::new();
    let mut params = ListParams::default().limit(PAGE_SIZE);
    loop {
        let page = ctx.call(api.list(&params)).await?;
        items.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(items),
        }
    }
}
