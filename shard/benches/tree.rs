//! Tree index benchmarks: building the index from 100,000 namespace events, publishing a snapshot, walking a
//! deep chain, and planning one new source over the real snapshot (rather than a simplified view).
//!
//! `cargo bench -p hnc-shard --bench tree`

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use hnc_api::{HierarchyConfigurationSpec, SyncMode};
use hnc_shard::propagation::{Dirty, DirtySet, ForestCache, PropagationRules, TypeKey, TypeModes, plan};
use hnc_shard::tree::{NamespacePolicy, ObservedHierarchy, ObservedNamespace};
use hnc_shard::{HierarchyView, TreeIndex};
use serde_json::json;

fn hc(parent: &str) -> ObservedHierarchy {
    ObservedHierarchy {
        spec: HierarchyConfigurationSpec { parent: Some(parent.to_owned()), ..Default::default() },
        ..Default::default()
    }
}

/// 10,000 trees of 10 (a root, 3 children, 6 grandchildren): 100,000 namespaces, 90,000 parent links.
fn forest_events(index: &mut TreeIndex) {
    for t in 0..10_000 {
        let root = format!("t{t}");
        index.apply_namespace(&root, ObservedNamespace::default());
        for c in 0..3 {
            let child = format!("t{t}-c{c}");
            index.apply_namespace(&child, ObservedNamespace::default());
            index.apply_hierarchy(&child, hc(&root));
            for g in 0..2 {
                let grandchild = format!("t{t}-c{c}-g{g}");
                index.apply_namespace(&grandchild, ObservedNamespace::default());
                index.apply_hierarchy(&grandchild, hc(&child));
            }
        }
    }
}

fn chain(depth: usize) -> TreeIndex {
    let mut index = TreeIndex::new(NamespacePolicy::default());
    index.set_synced(true);
    index.apply_namespace("n0", ObservedNamespace::default());
    for i in 1..depth {
        let name = format!("n{i}");
        index.apply_namespace(&name, ObservedNamespace::default());
        index.apply_hierarchy(&name, hc(&format!("n{}", i - 1)));
    }
    index
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("tree");
    group.sample_size(10);
    group.bench_function("apply 100,000 namespace events during the initial list", |b| {
        b.iter_batched(
            || TreeIndex::new(NamespacePolicy::default()),
            |mut index| {
                forest_events(&mut index);
                index.set_synced(true);
                black_box(index.publish())
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("apply 100,000 namespace events after the initial sync", |b| {
        b.iter_batched(
            || {
                let mut index = TreeIndex::new(NamespacePolicy::default());
                index.set_synced(true);
                index
            },
            |mut index| {
                forest_events(&mut index);
                black_box(index.publish())
            },
            BatchSize::PerIteration,
        )
    });

    let mut index = TreeIndex::new(NamespacePolicy::default());
    forest_events(&mut index);
    index.set_synced(true);
    group.sample_size(100);
    group.bench_function("publish a snapshot of 100,000 namespaces", |b| {
        b.iter(|| black_box(index.publish()))
    });
    let deep = chain(100).publish();
    group.bench_function("ancestors of a depth-100 namespace", |b| {
        b.iter(|| black_box(deep.ancestors(black_box("n99"))))
    });
    group.bench_function("tree labels of a depth-100 namespace", |b| {
        b.iter(|| black_box(deep.hierarchy_labels(black_box("n99"))))
    });

    // One source in a root with 10,000 descendants, planned over the real snapshot.
    let mut wide = TreeIndex::new(NamespacePolicy::default());
    wide.set_synced(true);
    wide.apply_namespace("root", ObservedNamespace::default());
    for i in 0..10_000 {
        let name = format!("child-{i}");
        wide.apply_namespace(&name, ObservedNamespace::default());
        wide.apply_hierarchy(&name, hc("root"));
    }
    let wide = wide.publish();
    let ty = TypeKey::new("rbac.authorization.k8s.io", "Role");
    let mut cache = ForestCache::new(PropagationRules::default());
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "admin", "namespace": "root", "resourceVersion": "1"}, "rules": []});
    let dirty = cache.apply(&ty, &role).expect("a valid role").expect("a new source");
    let snapshot = cache.publish();
    let modes: TypeModes = [(ty, SyncMode::Propagate)].into();
    let dirty: DirtySet = [dirty].into_iter().collect::<DirtySet>();
    group.sample_size(10);
    group.bench_function("plan one new source into 10,000 descendants (tree snapshot)", |b| {
        b.iter(|| black_box(plan(&*wide, &snapshot, &modes, &dirty).writes.len()))
    });
    let all: DirtySet = [Dirty::All].into_iter().collect();
    group.bench_function("plan everything for 10,000 descendants (tree snapshot)", |b| {
        b.iter(|| black_box(plan(&*wide, &snapshot, &modes, &all).writes.len()))
    });
    group.finish();
}

criterion_group!(tree, benches);
criterion_main!(tree);
