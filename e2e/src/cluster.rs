//! Making and reading HNC's objects the way a user would, through the API server.
//!
//! Every namespace a test creates is named `<base>-<run id>` and labelled `hnc.x-k8s.io/testNamespace=<run id>`,
//! so tests can run side by side and, against a real cluster, their namespaces are found and removed afterwards.

use std::collections::BTreeMap;

use hnc_api::keys::labels::TEST_NAMESPACE;
use hnc_api::{
    HierarchyConfiguration, HierarchyConfigurationSpec, SubnamespaceAnchor, SubnamespaceAnchorSpec,
};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams,
};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::TestEnv;

/// A short random id for one test environment.
pub(crate) fn run_id() -> String {
    format!("{:06x}", rand::random::<u32>() & 0xff_ffff)
}

impl TestEnv {
    /// The name this run uses for a namespace called `base` in the test.
    pub fn ns(&self, base: &str) -> String {
        format!("{base}-{}", self.run_id)
    }

    /// Creates namespace `name` (already made unique with [`TestEnv::ns`]) with the test label.
    pub async fn create_namespace(&self, name: &str) -> anyhow::Result<Namespace> {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(BTreeMap::from([(TEST_NAMESPACE.to_owned(), self.run_id.clone())])),
                ..Default::default()
            },
            ..Default::default()
        };
        Ok(Api::<Namespace>::all(self.client.clone()).create(&PostParams::default(), &ns).await?)
    }

    /// Deletes namespace `name`.
    pub async fn delete_namespace(&self, name: &str) -> anyhow::Result<()> {
        Api::<Namespace>::all(self.client.clone()).delete(name, &DeleteParams::default()).await?;
        Ok(())
    }

    /// The namespace `name`, if it exists.
    pub async fn namespace(&self, name: &str) -> anyhow::Result<Option<Namespace>> {
        Ok(Api::<Namespace>::all(self.client.clone()).get_opt(name).await?)
    }

    /// The tree labels of namespace `name` as `ancestor → depth` (empty if it does not exist).
    pub async fn tree_labels(&self, name: &str) -> anyhow::Result<BTreeMap<String, String>> {
        let Some(ns) = self.namespace(name).await? else { return Ok(BTreeMap::new()) };
        Ok(ns
            .labels()
            .iter()
            .filter_map(|(k, v)| {
                hnc_api::keys::labels::tree_label_ancestor(k).map(|a| (a.to_owned(), v.clone()))
            })
            .collect())
    }

    /// Sets `spec.parent` of `ns`'s HierarchyConfiguration, creating it if needed (`None` makes a root).
    pub async fn set_parent(&self, ns: &str, parent: Option<&str>) -> anyhow::Result<()> {
        self.edit_hierarchy(ns, |spec| spec.parent = parent.map(str::to_owned)).await
    }

    /// Applies `edit` to `ns`'s HierarchyConfiguration spec, creating the object if needed.
    pub async fn edit_hierarchy(
        &self,
        ns: &str,
        edit: impl Fn(&mut HierarchyConfigurationSpec),
    ) -> anyhow::Result<()> {
        let api = Api::<HierarchyConfiguration>::namespaced(self.client.clone(), ns);
        for _ in 0..10 {
            let result = match api.get_opt(hnc_api::keys::names::HIERARCHY).await? {
                Some(mut hc) => {
                    edit(&mut hc.spec);
                    api.replace(hnc_api::keys::names::HIERARCHY, &PostParams::default(), &hc).await.map(drop)
                }
                None => {
                    let mut hc =
                        HierarchyConfiguration::new(hnc_api::keys::names::HIERARCHY, Default::default());
                    hc.metadata.namespace = Some(ns.to_owned());
                    edit(&mut hc.spec);
                    api.create(&PostParams::default(), &hc).await.map(drop)
                }
            };
            match result {
                Ok(()) => return Ok(()),
                // The controller may write the same object concurrently: read again and retry.
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        anyhow::bail!("could not update the HierarchyConfiguration of {ns}: conflicts kept happening")
    }

    /// The HierarchyConfiguration of `ns`, if it exists.
    pub async fn hierarchy(&self, ns: &str) -> anyhow::Result<Option<HierarchyConfiguration>> {
        let api = Api::<HierarchyConfiguration>::namespaced(self.client.clone(), ns);
        Ok(api.get_opt(hnc_api::keys::names::HIERARCHY).await?)
    }

    /// `(type, reason)` of every condition on `ns`'s HierarchyConfiguration.
    pub async fn conditions(&self, ns: &str) -> anyhow::Result<Vec<(String, String)>> {
        let hc = self.hierarchy(ns).await?;
        Ok(hc
            .and_then(|hc| hc.status)
            .map(|s| s.conditions.into_iter().map(|c| (c.type_, c.reason)).collect())
            .unwrap_or_default())
    }

    /// Creates the anchor `parent/child` (the subnamespace `child` of `parent`).
    pub async fn create_anchor(&self, parent: &str, child: &str) -> anyhow::Result<()> {
        let api = Api::<SubnamespaceAnchor>::namespaced(self.client.clone(), parent);
        let mut anchor = SubnamespaceAnchor::new(child, SubnamespaceAnchorSpec::default());
        anchor.metadata.namespace = Some(parent.to_owned());
        api.create(&PostParams::default(), &anchor).await?;
        Ok(())
    }

    /// Creates the anchor `parent/child` with metadata alone, no `spec` at all (valid: the CRD does not
    /// require one, and `kubectl create -f` of a minimal manifest does exactly this).
    pub async fn create_anchor_without_spec(&self, parent: &str, child: &str) -> anyhow::Result<()> {
        let anchor: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "SubnamespaceAnchor",
            "metadata": {"name": child, "namespace": parent},
        }))?;
        self.anchors(parent).create(&PostParams::default(), &anchor).await?;
        Ok(())
    }

    /// Anchors in `parent`, untyped: an anchor need not have a `spec`.
    fn anchors(&self, parent: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), parent, &ApiResource::erase::<SubnamespaceAnchor>(&()))
    }

    /// Deletes the anchor `parent/child`.
    pub async fn delete_anchor(&self, parent: &str, child: &str) -> anyhow::Result<()> {
        self.anchors(parent).delete(child, &DeleteParams::default()).await?;
        Ok(())
    }

    /// `status.status` of the anchor `parent/child`, if the anchor exists.
    pub async fn anchor_state(&self, parent: &str, child: &str) -> anyhow::Result<Option<String>> {
        let anchor = self.anchors(parent).get_opt(child).await?;
        Ok(anchor.map(|a| a.data["status"]["status"].as_str().unwrap_or_default().to_owned()))
    }

    /// Merge-patches the labels of namespace `name` (`None` values remove).
    pub async fn patch_namespace_labels(
        &self,
        name: &str,
        labels: &[(&str, Option<&str>)],
    ) -> anyhow::Result<()> {
        let labels: serde_json::Map<String, serde_json::Value> =
            labels.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
        Api::<Namespace>::all(self.client.clone())
            .patch(name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": labels}})))
            .await?;
        Ok(())
    }

    /// Best-effort removal of this run's namespaces from a real cluster: allow cascading deletion on each, so
    /// HNC lets them go, then delete them.
    pub(crate) fn cleanup_real_cluster(&self) {
        let client = self.client.clone();
        let selector = format!("{TEST_NAMESPACE}={}", self.run_id);
        let cleanup = async move {
            let namespaces = Api::<Namespace>::all(client.clone());
            let Ok(list) = namespaces.list(&ListParams::default().labels(&selector)).await else { return };
            for ns in list {
                let name = ns.name_any();
                let hc = Api::<HierarchyConfiguration>::namespaced(client.clone(), &name);
                let patch = json!({"spec": {"allowCascadingDeletion": true}});
                let _ = hc.patch("hierarchy", &PatchParams::default(), &Patch::Merge(patch)).await;
                let _ = namespaces.delete(&name, &DeleteParams::default()).await;
            }
        };
        // Drop may run inside a runtime; do the cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(cleanup);
            }
        })
        .join();
    }
}
