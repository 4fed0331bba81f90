//! The paths the webhook server answers on (upstream's, spec §8.1); the webhook configurations the leader
//! keeps ([`crate::singletons::registration`]) point the API server at them.

/// Path of the namespace mutator.
pub const MUTATE_NAMESPACE: &str = "/mutate-namespace";
/// Path of the namespace validator.
pub const VALIDATE_NAMESPACE: &str = "/validate-v1-namespace";
/// Path of the HierarchyConfiguration validator.
pub const VALIDATE_HIERARCHY: &str = "/validate-hnc-x-k8s-io-v1alpha2-hierarchyconfigurations";
/// Path of the SubnamespaceAnchor validator.
pub const VALIDATE_ANCHOR: &str = "/validate-hnc-x-k8s-io-v1alpha2-subnamespaceanchors";
/// Path of the HNCConfiguration validator.
pub const VALIDATE_CONFIG: &str = "/validate-hnc-x-k8s-io-v1alpha2-hncconfigurations";
/// Path of the objects validator.
pub const VALIDATE_OBJECTS: &str = "/validate-objects";
/// Path of the HierarchicalResourceQuota validator.
pub const VALIDATE_HRQ: &str = "/validate-hnc-x-k8s-io-v1alpha2-hrq";
/// Path of the ResourceQuota status validator.
pub const VALIDATE_RQ_STATUS: &str = "/validate-hnc-x-k8s-io-v1alpha2-resourcequotasstatus";
