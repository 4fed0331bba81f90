//! Reads the API server's resources at each group's preferred version into a [`Discovered`] snapshot.

use kube::Client;

use super::resolve::{Discovered, DiscoveredResource};

/// Lists every group and the resources of its preferred version (subresources left out).
pub async fn discover(client: &Client) -> Result<Discovered, kube::Error> {
    let mut out = Vec::new();
    let core = client.list_core_api_versions().await?;
    for version in core.versions.iter().filter(|v| *v == "v1") {
        let list = client.list_core_api_resources(version).await?;
        push_resources(&mut out, "", version, list.resources);
    }
    for group in client.list_api_groups().await?.groups {
        let Some(preferred) = group.preferred_version.or_else(|| group.versions.first().cloned()) else {
            continue;
        };
        match client.list_api_group_resources(&preferred.group_version).await {
            Ok(list) => push_resources(&mut out, &group.name, &preferred.version, list.resources),
            // A group whose backing service is down (e.g. an unavailable APIService) must not hide the others.
            Err(error) => tracing::warn!(group = %group.name, %error, "skipping API group during discovery"),
        }
    }
    Ok(Discovered::new(out))
}

fn push_resources(
    out: &mut Vec<DiscoveredResource>,
    group: &str,
    version: &str,
    resources: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResource>,
) {
    for r in resources.into_iter().filter(|r| !r.name.contains('/')) {
        out.push(DiscoveredResource {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: r.kind,
            plural: r.name,
            singular: r.singular_name,
            namespaced: r.namespaced,
        });
    }
}
