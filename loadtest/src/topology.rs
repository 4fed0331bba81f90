//! Synthetic hierarchies: upstream HNC's three performance topologies (`wide`, `full`, `skewer`, spec §19) and
//! `forest` — many independent trees with a uniform or heavy-tailed size distribution, the shape sharding is
//! for. A topology is a list of namespaces in creation order (every parent before its children); generation is
//! deterministic for a given spec and seed.

use clap::ValueEnum;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// Prefix of every namespace the harness creates (and of nothing else), so its watches can ignore the rest.
pub const NS_PREFIX: &str = "lt-";

/// The shape of the hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// 1 root + N children (upstream `load-topology-wide.sh`, default N = 500).
    Wide,
    /// Root, N children, N² grandchildren (upstream `load-topology-full.sh`, default N = 20).
    Full,
    /// A single chain N deep (upstream `load-topology-skewer.sh`, default N = 100).
    Skewer,
    /// T independent trees totalling M namespaces, tree sizes drawn from `--distribution`.
    Forest,
}

/// How forest tree sizes are distributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Every tree gets M/T namespaces (±1).
    Uniform,
    /// Tree of rank k gets a share ∝ 1/k^s (s = `--skew`, default 1.0): a few huge trees, a long tail.
    Zipf,
    /// Sizes drawn from a Pareto distribution with shape α = `--skew` (default 1.2), then scaled to M.
    Pareto,
}

/// Everything that determines a topology.
#[derive(Debug, Clone, Serialize)]
pub struct TopologySpec {
    pub shape: Shape,
    /// N for wide/full/skewer.
    pub size: usize,
    /// T for forest.
    pub trees: usize,
    /// M for forest.
    pub namespaces: usize,
    pub distribution: Distribution,
    /// Zipf exponent or Pareto shape; `None` = the distribution's default.
    pub skew: Option<f64>,
    /// Deepest level a forest tree grows to (root = 0).
    pub max_depth: usize,
    pub seed: u64,
}

impl TopologySpec {
    /// A short name for file names and reports, e.g. `wide-500` or `forest-20000x2000-zipf`.
    pub fn label(&self) -> String {
        match self.shape {
            Shape::Wide => format!("wide-{}", self.size),
            Shape::Full => format!("full-{}", self.size),
            Shape::Skewer => format!("skewer-{}", self.size),
            Shape::Forest => format!(
                "forest-{}x{}-{}",
                self.namespaces,
                self.trees,
                format!("{:?}", self.distribution).to_lowercase()
            ),
        }
    }
}

/// One namespace of a topology.
#[derive(Debug, Clone)]
pub struct TopoNode {
    pub name: String,
    /// Index of the parent in [`Topology::nodes`] (always smaller than this node's index).
    pub parent: Option<usize>,
}

/// A generated hierarchy.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    pub nodes: Vec<TopoNode>,
}

impl Topology {
    /// Generates the topology `spec` describes.
    pub fn generate(spec: &TopologySpec) -> anyhow::Result<Topology> {
        let mut t = Topology::default();
        match spec.shape {
            Shape::Wide => {
                let root = t.push(format!("{NS_PREFIX}w"), None);
                for i in 0..spec.size {
                    t.push(format!("{NS_PREFIX}w-{i}"), Some(root));
                }
            }
            Shape::Full => {
                let root = t.push(format!("{NS_PREFIX}f"), None);
                for i in 0..spec.size {
                    let child = t.push(format!("{NS_PREFIX}f-{i}"), Some(root));
                    for j in 0..spec.size {
                        t.push(format!("{NS_PREFIX}f-{i}-{j}"), Some(child));
                    }
                }
            }
            Shape::Skewer => {
                let mut parent = None;
                for i in 0..spec.size.max(1) {
                    parent = Some(t.push(format!("{NS_PREFIX}s-{i}"), parent));
                }
            }
            Shape::Forest => {
                anyhow::ensure!(spec.trees >= 1, "--trees must be at least 1");
                anyhow::ensure!(
                    spec.namespaces >= spec.trees,
                    "--namespaces ({}) must be at least --trees ({})",
                    spec.namespaces,
                    spec.trees
                );
                let mut rng = StdRng::seed_from_u64(spec.seed);
                let sizes = tree_sizes(spec, &mut rng);
                for (tree, size) in sizes.into_iter().enumerate() {
                    t.grow_tree(tree, size, spec.max_depth.max(1), &mut rng);
                }
            }
        }
        Ok(t)
    }

    fn push(&mut self, name: String, parent: Option<usize>) -> usize {
        self.nodes.push(TopoNode { name, parent });
        self.nodes.len() - 1
    }

    /// A random recursive tree: each new namespace picks its parent uniformly among the tree's namespaces that
    /// are above `max_depth`, which gives the bushy, shallow shape of organisations (most trees 2–4 deep).
    fn grow_tree(&mut self, tree: usize, size: usize, max_depth: usize, rng: &mut StdRng) {
        let root = self.push(format!("{NS_PREFIX}t{tree}-0"), None);
        let mut members: Vec<(usize, usize)> = vec![(root, 0)];
        let mut can_parent: Vec<usize> = vec![0];
        for n in 1..size {
            let pick = can_parent[rng.random_range(0..can_parent.len())];
            let (parent, depth) = members[pick];
            let id = self.push(format!("{NS_PREFIX}t{tree}-{n}"), Some(parent));
            members.push((id, depth + 1));
            if depth + 1 < max_depth {
                can_parent.push(members.len() - 1);
            }
        }
    }

    /// Number of namespaces.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True for the empty topology.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Number of root namespaces (trees).
    pub fn roots(&self) -> usize {
        self.nodes.iter().filter(|n| n.parent.is_none()).count()
    }

    /// Depth of every node (roots are 0).
    pub fn depths(&self) -> Vec<usize> {
        let mut depth = vec![0; self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(p) = n.parent {
                depth[i] = depth[p] + 1;
            }
        }
        depth
    }

    /// Number of descendants of every node.
    pub fn descendant_counts(&self) -> Vec<usize> {
        let mut count = vec![0; self.nodes.len()];
        for i in (0..self.nodes.len()).rev() {
            if let Some(p) = self.nodes[i].parent {
                count[p] += count[i] + 1;
            }
        }
        count
    }
}

/// Tree sizes summing to `spec.namespaces`, each at least 1, largest first.
fn tree_sizes(spec: &TopologySpec, rng: &mut StdRng) -> Vec<usize> {
    let (t, m) = (spec.trees, spec.namespaces);
    let weights: Vec<f64> = match spec.distribution {
        Distribution::Uniform => vec![1.0; t],
        Distribution::Zipf => {
            let s = spec.skew.unwrap_or(1.0);
            (1..=t).map(|k| 1.0 / (k as f64).powf(s)).collect()
        }
        Distribution::Pareto => {
            let alpha = spec.skew.unwrap_or(1.2);
            let mut w: Vec<f64> = (0..t).map(|_| (1.0 - rng.random::<f64>()).powf(-1.0 / alpha)).collect();
            w.sort_by(|a, b| b.total_cmp(a));
            w
        }
    };
    // Every tree has its root; the rest is shared by weight, remainders to the largest fractions.
    let spare = (m - t) as f64;
    let total: f64 = weights.iter().sum();
    let exact: Vec<f64> = weights.iter().map(|w| spare * w / total).collect();
    let mut sizes: Vec<usize> = exact.iter().map(|e| 1 + e.floor() as usize).collect();
    let mut left = m - sizes.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..t).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    for &i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        sizes[i] += 1;
        left -= 1;
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(shape: Shape, size: usize) -> TopologySpec {
        TopologySpec {
            shape,
            size,
            trees: 0,
            namespaces: 0,
            distribution: Distribution::Uniform,
            skew: None,
            max_depth: 4,
            seed: 7,
        }
    }

    #[test]
    fn upstream_shapes_have_upstreams_sizes() {
        assert_eq!(Topology::generate(&spec(Shape::Wide, 500)).unwrap().len(), 501);
        assert_eq!(Topology::generate(&spec(Shape::Full, 20)).unwrap().len(), 421);
        let skewer = Topology::generate(&spec(Shape::Skewer, 100)).unwrap();
        assert_eq!(skewer.len(), 100);
        assert_eq!(skewer.depths().into_iter().max(), Some(99));
        assert_eq!(skewer.descendant_counts()[0], 99);
    }

    #[test]
    fn forests_have_the_requested_trees_and_namespaces_within_the_depth() {
        for distribution in [Distribution::Uniform, Distribution::Zipf, Distribution::Pareto] {
            let s = TopologySpec {
                shape: Shape::Forest,
                trees: 50,
                namespaces: 1000,
                distribution,
                ..spec(Shape::Forest, 0)
            };
            let t = Topology::generate(&s).unwrap();
            assert_eq!(t.len(), 1000, "{distribution:?}");
            assert_eq!(t.roots(), 50, "{distribution:?}");
            assert!(t.depths().into_iter().all(|d| d <= 4));
            let names: std::collections::HashSet<_> = t.nodes.iter().map(|n| &n.name).collect();
            assert_eq!(names.len(), 1000, "names are unique");
            assert!(t.nodes.iter().enumerate().all(|(i, n)| n.parent.is_none_or(|p| p < i)));
        }
    }

    #[test]
    fn heavy_tailed_forests_are_skewed_and_uniform_ones_are_not() {
        let sizes = |distribution| {
            let s = TopologySpec {
                shape: Shape::Forest,
                trees: 100,
                namespaces: 10_000,
                distribution,
                ..spec(Shape::Forest, 0)
            };
            let t = Topology::generate(&s).unwrap();
            let counts = t.descendant_counts();
            let mut roots: Vec<usize> = t
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.parent.is_none())
                .map(|(i, _)| counts[i] + 1)
                .collect();
            roots.sort_unstable();
            (roots[0], roots[roots.len() - 1])
        };
        let (min, max) = sizes(Distribution::Uniform);
        assert_eq!((min, max), (100, 100));
        let (min, max) = sizes(Distribution::Zipf);
        assert!(max > 10 * min, "zipf: {min}..{max}");
    }
}
