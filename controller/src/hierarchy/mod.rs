//! The hierarchy half of HNC on the controller side: observed Namespaces, HierarchyConfigurations and anchors,
//! and the minimal writes that bring them to what the tree index says.

pub mod diff;
pub mod observed;
