//! Object propagation (spec §6): which sources may propagate where ([`selector`]), what a copy looks like
//! ([`object`]), what this replica knows of sources and copies ([`forest`]), what changed ([`dirty`]) and the
//! writes that make the cluster match ([`planner`] → [`batch`]).
//!
//! Controller loop, in short: feed watch events to [`ForestCache::apply`] / [`ForestCache::delete`] and
//! collect the returned [`Dirty`] entries (plus `Subtree` entries for hierarchy changes) into a [`DirtySet`];
//! [`ForestCache::publish`]; [`plan`] against the hierarchy snapshot; perform each [`PlannedWrite`] (its
//! [`PlannedWrite::body`] builds the object) and report success with [`ForestCache::record_written`].

pub mod batch;
pub mod dirty;
pub mod forest;
pub mod object;
pub mod planner;
pub mod selector;
pub mod sources;

pub use batch::{CopyOp, PlannedEvent, PlannedWrite, WriteBatch};
pub use dirty::{Dirty, DirtySet};
pub use forest::{
    CopyFingerprint, ForestCache, ForestCacheReader, ForestCacheSnapshot, NsObjects, TypeForest, TypeStats,
};
pub use object::{
    ContentHash, ObjName, ObjectError, PropagationRules, ResourceVersion, SourceEntry, TypeKey, build_copy,
    canonical, clean_source, content_hash,
};
pub use planner::{TypeModes, plan};
pub use selector::{
    LabelSelector, PropagationPolicy, SelectorError, SelectorProblem, TreeSelector, parse_bool_annotation,
    parse_select, parse_tree_select, should_propagate, validate_selector_annotation,
};
pub use sources::{SourceNames, SourceNamesReader, SourceNamesSnapshot};
