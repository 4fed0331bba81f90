//! Planner benchmarks, and the memory the forest cache needs per source and per copy.
//!
//! `cargo bench -p hnc-shard --bench planner` first prints the memory figures (resident-set growth while
//! indexing 200,000 source names, then ingesting 100,000 sources and 1,000,000 copies into a forest cache;
//! Linux only), then runs the timed cases:
//! * one new source in a root with 10,000 descendants (a dirty name: 10,000 creates);
//! * a cold full plan of 100,000 namespaces in 10,000 trees of 10, 10 sources per root (900,000 creates),
//!   on a local rayon pool of 1 and of 2 threads.

use ahash::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group};
use hnc_api::SyncMode;
use hnc_api::keys::labels;
use hnc_shard::propagation::{
    CopyFingerprint, DirtySet, ForestCache, PropagationRules, SourceEntry, SourceNames, TypeKey, TypeModes,
    build_copy, plan,
};
use hnc_shard::{HierarchyView, Labels, NsName};
use serde_json::{Value, json};

/// A hierarchy held in plain maps, answering like the tree index: parent walks and child walks.
#[derive(Default)]
struct BenchView {
    parent: HashMap<NsName, NsName>,
    children: HashMap<NsName, Vec<NsName>>,
    labels: HashMap<NsName, Arc<Labels>>,
}

impl BenchView {
    fn add(&mut self, name: &str, parent: Option<&str>) {
        let name: NsName = name.into();
        let mut own = Labels::new();
        own.insert(labels::tree_label(&name), "0".to_owned());
        if let Some(p) = parent {
            let p: NsName = p.into();
            for (depth, a) in std::iter::once(p.clone()).chain(self.ancestors(&p)).enumerate() {
                own.insert(labels::tree_label(&a), (depth + 1).to_string());
            }
            self.children.entry(p.clone()).or_default().push(name.clone());
            self.parent.insert(name.clone(), p);
        }
        self.labels.insert(name, Arc::new(own));
    }
}

impl HierarchyView for BenchView {
    fn is_managed(&self, ns: &str) -> bool {
        self.labels.contains_key(ns)
    }

    fn ancestors(&self, ns: &str) -> Vec<NsName> {
        let mut out: Vec<NsName> = Vec::new();
        let mut cur = ns;
        while let Some(p) = self.parent.get(cur) {
            if &**p == ns || out.contains(p) {
                break;
            }
            out.push(p.clone());
            cur = p;
        }
        out
    }

    fn descendants(&self, ns: &str) -> Vec<NsName> {
        let mut out: Vec<NsName> = Vec::new();
        let mut next = 0;
        out.extend(self.children.get(ns).into_iter().flatten().cloned());
        while next < out.len() {
            let children = self.children.get(&out[next]).into_iter().flatten();
            out.extend(children.filter(|c| &***c != ns).cloned());
            next += 1;
        }
        out
    }

    fn labels(&self, ns: &str) -> Option<Arc<Labels>> {
        self.labels.get(ns).cloned()
    }

    fn halted_by(&self, _ns: &str) -> Option<NsName> {
        None
    }

    fn root(&self, ns: &str) -> NsName {
        self.ancestors(ns).pop().unwrap_or_else(|| ns.into())
    }
}

fn role() -> TypeKey {
    TypeKey::new("rbac.authorization.k8s.io", "Role")
}

fn modes() -> TypeModes {
    [(role(), SyncMode::Propagate)].into_iter().collect()
}

fn role_source(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": "12345", "uid": "8d1c0a52-7a5e"},
        "rules": [{"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]}],
    })
}

/// `trees` trees, each a root with 3 children and 2 grandchildren per child (10 namespaces), and
/// `sources` Roles in every root.
fn forest(trees: usize, sources: usize) -> (BenchView, ForestCache) {
    let mut view = BenchView::default();
    let mut cache = ForestCache::new(PropagationRules::default());
    for t in 0..trees {
        let root = format!("t{t}");
        view.add(&root, None);
        for c in 0..3 {
            let child = format!("{root}-{c}");
            view.add(&child, Some(&root));
            for g in 0..2 {
                view.add(&format!("{child}-{g}"), Some(&child));
            }
        }
        for s in 0..sources {
            cache.apply(&role(), &role_source(&root, &format!("role-{s}"))).expect("valid");
        }
    }
    (view, cache)
}

fn one_source_in_a_big_root(c: &mut Criterion) {
    let mut view = BenchView::default();
    view.add("root", None);
    for i in 0..100 {
        let child = format!("c{i}");
        view.add(&child, Some("root"));
        for j in 0..99 {
            view.add(&format!("{child}-{j}"), Some(&child));
        }
    }
    let mut cache = ForestCache::new(PropagationRules::default());
    let dirty = cache.apply(&role(), &role_source("root", "new-role")).expect("valid").expect("new source");
    let snapshot = cache.publish();
    let dirty: DirtySet = [dirty].into_iter().collect();
    let modes = modes();
    assert_eq!(plan(&view, &snapshot, &modes, &dirty).writes.len(), 10_000);
    c.bench_function("plan one new source, root with 10,000 descendants", |b| {
        b.iter(|| black_box(plan(&view, &snapshot, &modes, &dirty)))
    });
}

fn cold_full_plan(c: &mut Criterion) {
    let (view, cache) = forest(10_000, 10);
    let snapshot = cache.publish();
    let modes = modes();
    let all = DirtySet::all();
    let mut group =
        c.benchmark_group("cold full plan, 100,000 namespaces in 10,000 trees, 10 sources per root");
    group.sample_size(10);
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
        assert_eq!(pool.install(|| plan(&view, &snapshot, &modes, &all)).writes.len(), 900_000);
        group.bench_function(format!("{threads} thread(s)"), |b| {
            b.iter(|| pool.install(|| black_box(plan(&view, &snapshot, &modes, &all))))
        });
    }
    group.finish();
}

/// Resident set size in bytes (Linux `/proc/self/statm`), `None` elsewhere.
fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Bytes per source and per copy fingerprint: 10,000 trees × 10 sources in the root, then 10 copies of each
/// source in the root's children (1,000,000 copies), ingested as watch events.
fn memory_report() {
    let (fingerprint, entry) = (size_of::<CopyFingerprint>(), size_of::<SourceEntry>());
    println!("struct sizes: CopyFingerprint {fingerprint} B, SourceEntry {entry} B (plus its JSON)");
    let Some(start) = resident_bytes() else {
        println!("memory figures need /proc/self/statm (Linux)");
        return;
    };
    // The cluster-wide source-name index every replica keeps for admission: 100,000 namespaces with two
    // sources each, as a forest of teams with a Role and a RoleBinding per namespace would have.
    let mut names = SourceNames::new(PropagationRules::default());
    let source_names = 200_000;
    for i in 0..source_names / 2 {
        let ns = format!("team-{i}");
        for name in ["admins", "viewers"] {
            names.apply(&role(), &ns, name, &role_source(&ns, name));
        }
    }
    let _ = names.publish();
    let after_names = resident_bytes().unwrap_or(start);
    assert_eq!(names.current().count(&role()), source_names);
    println!(
        "source names: {source_names} sources: {} B each (resident-set growth)",
        (after_names - start) / source_names
    );
    let start = after_names;

    let (trees, sources, copies_per_source) = (10_000, 10, 10);
    let mut cache = ForestCache::new(PropagationRules::default());
    for t in 0..trees {
        for s in 0..sources {
            cache.apply(&role(), &role_source(&format!("t{t}"), &format!("role-{s}"))).expect("valid");
        }
    }
    let _ = cache.publish();
    let after_sources = resident_bytes().unwrap_or(start);
    for t in 0..trees {
        let root = format!("t{t}");
        for s in 0..sources {
            let source =
                cache.current().source(&role(), &root, &format!("role-{s}")).expect("cached").clone();
            for d in 0..copies_per_source {
                let mut copy = build_copy(&source, &format!("{root}-{d}"));
                copy["metadata"]["resourceVersion"] = json!((t * 1000 + s * 10 + d).to_string());
                cache.apply(&role(), &copy).expect("valid");
            }
        }
    }
    let snapshot = cache.publish();
    let after_copies = resident_bytes().unwrap_or(after_sources);
    let stats = snapshot.stats(&role());
    println!(
        "forest cache: {} sources: {} B each; {} copies: {} B each (resident-set growth)",
        stats.sources,
        (after_sources - start) / stats.sources,
        stats.copies,
        (after_copies - after_sources) / stats.copies,
    );
    drop((names, cache, snapshot));
}

criterion_group!(benches, one_source_in_a_big_root, cold_full_plan);

fn main() {
    // A name filter (`cargo bench ... -- cold`) runs only the matching benchmarks; "memory" selects the
    // report.
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if filters.is_empty() || filters.iter().any(|f| "memory".contains(f.as_str())) {
        memory_report();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
