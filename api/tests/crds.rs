//! The committed CRDs are exactly what the types generate, and they are what a real API server accepts.

use hnc_api::crd;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

fn manifests_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds")
}

#[test]
fn committed_crds_match_the_types() {
    for (file, crd) in crd::all() {
        let committed = std::fs::read_to_string(manifests_dir().join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}; run `cargo run -p hnc-api --bin crdgen`"));
        let generated = crd::to_yaml(&crd).unwrap();
        assert!(
            committed == generated,
            "{file} is stale: run `cargo run -p hnc-api --bin crdgen` and commit the result"
        );
    }
}

#[test]
fn committed_yaml_parses_back_to_the_same_crd() {
    for (file, crd) in crd::all() {
        let text = std::fs::read_to_string(manifests_dir().join(file)).unwrap();
        let parsed: CustomResourceDefinition = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(parsed, crd, "{file}");
    }
}

#[test]
fn schemas_are_structural() {
    for (file, crd) in crd::all() {
        for version in &crd.spec.versions {
            let schema = version.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).unwrap();
            crd::check_structural(schema).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }
}

#[test]
fn structural_check_rejects_untyped_nodes() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
    let untyped = JSONSchemaProps {
        type_: Some("object".into()),
        properties: Some([("x".to_owned(), JSONSchemaProps::default())].into()),
        ..Default::default()
    };
    let err = crd::check_structural(&untyped).unwrap_err();
    assert!(err.contains("properties[x]"), "{err}");
}

fn find(name: &str) -> CustomResourceDefinition {
    crd::all().into_iter().map(|(_, c)| c).find(|c| c.metadata.name.as_deref() == Some(name)).unwrap()
}

#[test]
fn names_scopes_and_short_names_match_upstream() {
    let cases = [
        (
            "hierarchyconfigurations.hnc.x-k8s.io",
            "HierarchyConfiguration",
            "hierarchyconfiguration",
            "Namespaced",
            None,
        ),
        (
            "subnamespaceanchors.hnc.x-k8s.io",
            "SubnamespaceAnchor",
            "subnamespaceanchor",
            "Namespaced",
            Some("subns"),
        ),
        ("hncconfigurations.hnc.x-k8s.io", "HNCConfiguration", "hncconfiguration", "Cluster", None),
        (
            "hierarchicalresourcequotas.hnc.x-k8s.io",
            "HierarchicalResourceQuota",
            "hierarchicalresourcequota",
            "Namespaced",
            Some("hrq"),
        ),
    ];
    for (name, kind, singular, scope, short) in cases {
        let crd = find(name);
        assert_eq!(crd.spec.group, "hnc.x-k8s.io");
        assert_eq!(crd.spec.names.kind, kind);
        assert_eq!(crd.spec.names.list_kind.as_deref(), Some(&*format!("{kind}List")));
        assert_eq!(crd.spec.names.singular.as_deref(), Some(singular));
        assert_eq!(format!("{}.hnc.x-k8s.io", crd.spec.names.plural), name);
        assert_eq!(crd.spec.scope, scope);
        assert_eq!(crd.spec.names.short_names.as_ref().and_then(|s| s.first()).map(String::as_str), short);
        assert_eq!(crd.spec.versions.len(), 1);
        let v = &crd.spec.versions[0];
        assert_eq!((v.name.as_str(), v.served, v.storage), ("v1alpha2", true, true));
        // No status subresource: status is written through the main resource, as upstream does.
        assert!(v.subresources.as_ref().and_then(|s| s.status.as_ref()).is_none(), "{name}");
        let schema = v.schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap();
        assert!(schema.required.is_none(), "{name}: spec must stay optional");
    }
}

#[test]
fn singletons_are_enforced_by_the_schema() {
    for (crd_name, singleton) in
        [("hierarchyconfigurations.hnc.x-k8s.io", "hierarchy"), ("hncconfigurations.hnc.x-k8s.io", "config")]
    {
        let crd = find(crd_name);
        let schema = crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap();
        let name = &schema.properties.as_ref().unwrap()["metadata"].properties.as_ref().unwrap()["name"];
        let allowed: Vec<_> = name.enum_.iter().flatten().map(|v| v.0.clone()).collect();
        assert_eq!(allowed, vec![serde_json::json!(singleton)], "{crd_name}");
    }
}

#[test]
fn sync_modes_and_printer_columns() {
    let crd = find("hncconfigurations.hnc.x-k8s.io");
    let schema = crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap();
    let spec = &schema.properties.as_ref().unwrap()["spec"];
    let items = match spec.properties.as_ref().unwrap()["resources"].items.as_ref().unwrap() {
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(s) => s,
        other => panic!("unexpected items {other:?}"),
    };
    let mode = &items.properties.as_ref().unwrap()["mode"];
    let modes: Vec<_> = mode.enum_.iter().flatten().map(|v| v.0.as_str().unwrap().to_owned()).collect();
    assert_eq!(modes, ["Propagate", "Ignore", "Remove", "AllowPropagate"]);
    assert_eq!(items.required.as_deref(), Some(&["resource".to_owned()][..]));

    let hrq = find("hierarchicalresourcequotas.hnc.x-k8s.io");
    let cols: Vec<_> = hrq.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.clone(), c.json_path.clone()))
        .collect();
    assert_eq!(
        cols,
        [
            ("Request".to_owned(), ".status.requestsSummary".to_owned()),
            ("Limit".to_owned(), ".status.limitsSummary".to_owned())
        ]
    );
}
