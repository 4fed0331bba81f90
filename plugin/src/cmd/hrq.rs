//! `kubectl hns hrq [NAME...] [-A] [--show-labels]`: lists HierarchicalResourceQuotas (it only reads them, so it
//! works whether or not the controller enforces them) and prints them through [`crate::render::render_hrq_table`].

use hnc_api::HierarchicalResourceQuota;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;

use super::{Failure, Out};
use crate::client::{Ctx, decode};
use crate::render::render_hrq_table;

/// Shows the quotas named `names` (all if none) in `namespace`, or in every namespace when it is `None` (`-A`).
pub async fn run(
    ctx: &Ctx,
    out: &mut Out<'_>,
    names: &[String],
    namespace: Option<&str>,
    show_labels: bool,
) -> Result<(), Failure> {
    let quotas = match namespace {
        Some(ns) if !names.is_empty() => {
            let api = ctx.hnc_api::<HierarchicalResourceQuota>(Some(ns));
            let mut quotas = Vec::with_capacity(names.len());
            for name in names {
                let hrq: HierarchicalResourceQuota =
                    ctx.call(api.get(name)).await.and_then(decode).map_err(|e| {
                        Failure(format!("Error reading hierarchicalresourcequota {name}: {e}"))
                    })?;
                quotas.push(hrq);
            }
            quotas
        }
        _ => {
            let api = ctx.hnc_api::<HierarchicalResourceQuota>(namespace);
            let mut list = ctx
                .call(api.list(&ListParams::default()))
                .await
                .and_then(|list| {
                    list.items
                        .into_iter()
                        .map(decode::<HierarchicalResourceQuota>)
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(|e| Failure(format!("Error reading hierarchicalresourcequotas: {e}")))?;
            // With -A, names select quotas across namespaces (upstream ignored them and listed everything).
            if !names.is_empty() {
                list.retain(|hrq| hrq.metadata.name.as_ref().is_some_and(|n| names.contains(n)));
            }
            list
        }
    };
    if quotas.is_empty() {
        return Err(Failure(match namespace {
            Some(ns) => format!("No resources found in {ns} namespace."),
            None => "No resources found".to_owned(),
        }));
    }
    out.print(&render_hrq_table(&quotas, namespace.is_none(), show_labels, Timestamp::now()));
    Ok(())
}
