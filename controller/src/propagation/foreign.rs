//! Writes into copies another replica made, checked against the API server's hierarchy first.
//!
//! A replica's view of the hierarchy and its view of the copies come from different watches, and either can
//! lag the other. When a namespace is re-parented into another replica's tree, that replica writes copies of
//! its sources there as soon as it sees the move; this replica can see those copies *before* it sees the move,
//! still believe the namespace is its own (a new namespace is a root until its parent is set), and judge the
//! copies orphans — deleting a valid copy that the owner then writes again. Upstream's single writer cannot
//! see one watch ahead of the other in this way.
//!
//! So a write that replaces or removes a copy whose source is in a tree this replica does not own, and whose
//! source namespace this replica's view does not place above the copy's, carries a [`Precondition`]: right
//! before it is sent, the writer reads the namespace's HierarchyConfiguration and its ancestors' from the API
//! server, and the write goes ahead only if that chain does not reach the copy's source namespace either. If
//! it does, this replica's view is behind: the write ends [`Stale`](crate::writer::Outcome::Stale), and the
//! watch's coming event re-plans the namespace (under its real owner). Such writes are rare — a subtree leaving
//! another replica's tree, a source namespace deleted — and each costs one read per level of the chain.

use hnc_api::HierarchyConfiguration;
use hnc_api::keys::names;
use hnc_shard::{HierarchyView, NsName};
use kube::{Api, Client};

use crate::writer::Precondition;

/// The deepest chain followed; a longer one (or a cycle, which admission prevents) counts as not reaching the
/// source, as the view already judged.
const MAX_DEPTH: usize = 256;

/// The precondition for a write into `namespace` of a copy of a source in `source_namespace`, if the write
/// needs one: the source's tree is not one this replica owns (`owns`), and this replica's `view` does not
/// place the source namespace above `namespace`.
pub fn precondition_for(
    view: &dyn HierarchyView,
    owns: impl Fn(&str) -> bool,
    namespace: &NsName,
    source_namespace: &NsName,
) -> Option<Precondition> {
    if owns(source_namespace) || view.ancestors(namespace).iter().any(|a| a == source_namespace) {
        return None;
    }
    let (namespace, source) = (namespace.clone(), source_namespace.clone());
    Some(Precondition(std::sync::Arc::new(move |client| {
        let (namespace, source) = (namespace.clone(), source.clone());
        Box::pin(async move { Ok(!reaches(client, &namespace, &source).await?) })
    })))
}

/// True when the API server's HierarchyConfigurations place `ancestor` above `namespace`.
async fn reaches(client: Client, namespace: &str, ancestor: &str) -> Result<bool, kube::Error> {
    let mut current = namespace.to_owned();
    for _ in 0..MAX_DEPTH {
        let api: Api<HierarchyConfiguration> = Api::namespaced(client.clone(), &current);
        let parent = api.get_opt(names::HIERARCHY).await?.and_then(|hc| hc.spec.parent);
        match parent {
            Some(parent) if parent == ancestor => return Ok(true),
            Some(parent) => current = parent,
            None => return Ok(false),
        }
    }
    Ok(false)
}
