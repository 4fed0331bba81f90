//! `kubectl hns delete CHILD -n PARENT [-a]`: deletes the SubnamespaceAnchor `PARENT/CHILD`, which makes HNC
//! delete the subnamespace. With `-a` it first allows cascading deletion on CHILD, which HNC requires when
//! CHILD has subnamespaces of its own.

use hnc_api::SubnamespaceAnchor;
use kube::api::DeleteParams;

use super::create::PARENT_REQUIRED;
use super::hierarchy::{get_hierarchy, update_reason, write_hierarchy};
use super::{Failure, Out, quoted};
use crate::client::Ctx;

/// Deletes the anchor `child` in the parent namespace (`-n`, else the context's namespace).
pub async fn run(
    ctx: &Ctx,
    out: &mut Out<'_>,
    child: &str,
    namespace_flag: Option<&str>,
    allow_cascading_deletion: bool,
) -> Result<(), Failure> {
    let parent = ctx.namespace(namespace_flag);
    if parent.is_empty() {
        return Err(Failure(PARENT_REQUIRED.to_owned()));
    }
    if allow_cascading_deletion {
        let mut hc = get_hierarchy(ctx, child).await?;
        if hc.spec.allow_cascading_deletion == Some(true) {
            out.line(&format!("Cascading deletion for '{child}' is already set to 'true'; unchanged"));
        } else {
            out.line(&format!("Allowing cascading deletion on '{child}'"));
            hc.spec.allow_cascading_deletion = Some(true);
            write_hierarchy(ctx, &hc, &update_reason(child)).await?;
        }
    }
    let api = ctx.hnc_api::<SubnamespaceAnchor>(Some(&parent));
    ctx.call(api.delete(child, &DeleteParams::default()))
        .await
        .map_err(|e| Failure(format!("\nCould not delete subnamespace anchor.\nReason: {e}")))?;
    out.line(&format!(
        "Successfully deleted {} subnamespace anchor in {} namespace",
        quoted(child),
        quoted(&parent)
    ));
    Ok(())
}
