//! Reading and writing a namespace's HierarchyConfiguration as upstream's plugin does (spec §12): the Namespace
//! must exist; a missing HierarchyConfiguration reads as a blank one named `hierarchy`, which a later write
//! creates (POST) rather than replaces (PUT).

use hnc_api::HierarchyConfiguration;
use hnc_api::keys::names::HIERARCHY;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::PostParams;

use super::Failure;
use crate::client::{Ctx, decode, encode};

/// GETs the Namespace; the error is upstream's whole line.
pub async fn read_namespace(ctx: &Ctx, namespace: &str) -> Result<Namespace, String> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    ctx.call(api.get(namespace)).await.map_err(|e| format!("Error reading namespace {namespace}: {e}"))
}

/// GETs the HierarchyConfiguration, blank if there is none; the error is upstream's whole line.
pub async fn read_hierarchy(ctx: &Ctx, namespace: &str) -> Result<HierarchyConfiguration, String> {
    let api = ctx.hnc_api::<HierarchyConfiguration>(Some(namespace));
    match ctx.call(api.get(HIERARCHY)).await.and_then(decode) {
        Ok(hc) => Ok(hc),
        Err(e) if e.is_not_found() => Ok(blank_hierarchy(namespace)),
        Err(e) => Err(format!("Error reading hierarchy for {namespace}: {e}")),
    }
}

/// A HierarchyConfiguration that does not exist yet: no parent, no children, no conditions.
pub fn blank_hierarchy(namespace: &str) -> HierarchyConfiguration {
    let mut hc = HierarchyConfiguration::new(HIERARCHY, Default::default());
    hc.metadata.namespace = Some(namespace.to_owned());
    hc
}

/// Upstream's `getHierarchy`: the namespace must exist, then its (possibly blank) HierarchyConfiguration.
pub async fn get_hierarchy(ctx: &Ctx, namespace: &str) -> Result<HierarchyConfiguration, Failure> {
    read_namespace(ctx, namespace).await.map_err(Failure)?;
    read_hierarchy(ctx, namespace).await.map_err(Failure)
}

/// Creates or replaces `hc`; on failure prints `Could not <reason>.` and the server's reason.
pub async fn write_hierarchy(ctx: &Ctx, hc: &HierarchyConfiguration, reason: &str) -> Result<(), Failure> {
    let namespace = hc.metadata.namespace.as_deref().unwrap_or_default();
    let api = ctx.hnc_api::<HierarchyConfiguration>(Some(namespace));
    let params = PostParams::default();
    let object = encode(hc).map_err(|e| Failure(format!("\nCould not {reason}.\nReason: {e}")))?;
    let result = if hc.metadata.creation_timestamp.is_none() {
        ctx.call(api.create(&params, &object)).await
    } else {
        ctx.call(api.replace(HIERARCHY, &params, &object)).await
    };
    result.map(drop).map_err(|e| Failure(format!("\nCould not {reason}.\nReason: {e}")))
}

/// The reason text upstream uses for every HierarchyConfiguration update of `namespace`.
pub fn update_reason(namespace: &str) -> String {
    format!("update the hierarchical configuration of {namespace}")
}
