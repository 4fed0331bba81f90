//! What the controller's tests against apisim share.

/// Creates HNC's CustomResourceDefinitions in `sim`, as `kubectl apply -k manifests/crds` would.
pub fn install_hnc_crds(sim: &hnc_apisim::ApiSim) {
    for (_, crd) in hnc_api::crd::all() {
        sim.create(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "",
            serde_json::to_value(&crd).unwrap(),
        )
        .unwrap();
    }
}
