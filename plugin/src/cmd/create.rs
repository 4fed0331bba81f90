//! `kubectl hns create CHILD -n PARENT`: creates the SubnamespaceAnchor `PARENT/CHILD`; HNC then creates the
//! subnamespace.

use hnc_api::SubnamespaceAnchor;
use kube::api::PostParams;

use super::{Failure, Out, quoted};
use crate::client::{Ctx, encode};

/// Upstream's message when the parent is empty (`-n ""`).
pub const PARENT_REQUIRED: &str = "Error: parent must be set via --namespace or -n";

/// Creates the anchor `child` in the parent namespace (`-n`, else the context's namespace).
pub async fn run(
    ctx: &Ctx,
    out: &mut Out<'_>,
    child: &str,
    namespace_flag: Option<&str>,
) -> Result<(), Failure> {
    let parent = ctx.namespace(namespace_flag);
    if parent.is_empty() {
        return Err(Failure(PARENT_REQUIRED.to_owned()));
    }
    let api = ctx.hnc_api::<SubnamespaceAnchor>(Some(&parent));
    let anchor = SubnamespaceAnchor::new(child, Default::default());
    let created = match encode(&anchor) {
        Ok(object) => ctx.call(api.create(&PostParams::default(), &object)).await,
        Err(e) => Err(e),
    };
    created.map_err(|e| Failure(format!("\nCould not create subnamespace anchor.\nReason: {e}")))?;
    out.line(&format!(
        "Successfully created {} subnamespace anchor in {} namespace",
        quoted(child),
        quoted(&parent)
    ));
    Ok(())
}
