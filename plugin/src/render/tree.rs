//! `kubectl hns tree`: rendering of hierarchy trees from a snapshot of namespaces (spec §12.2).
//!
//! ```text
//! acme (1)                      <- a root is printed without [s]; footnote numbers follow the name
//! ├── [s] team-a                <- [s]: the namespace has a subnamespace-of annotation
//! │   └── svc-1
//! └── team-b (1,2)
//!
//! [s] indicates subnamespaces
//!
//! Conditions:
//! 1) ActivitiesHalted (ParentMissing): ...
//! ```
//!
//! Footnote numbers are given to condition texts in the order the namespaces are *looked at*, which with `-A`
//! is every namespace in name order, interleaved with the depth-first walk of each printed root — so a namespace
//! that is printed nowhere still contributes its footnotes, as upstream's do.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use hnc_api::Condition;
use hnc_api::condition::reasons;

/// What `tree` needs to know about one namespace: its Namespace and its HierarchyConfiguration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TreeNode {
    /// `spec.parent` of its HierarchyConfiguration; empty for a root or a namespace without one.
    pub parent: String,
    /// `status.children` of its HierarchyConfiguration.
    pub children: Vec<String>,
    /// `status.conditions` of its HierarchyConfiguration.
    pub conditions: Vec<Condition>,
    /// The Namespace has an `hnc.x-k8s.io/subnamespace-of` annotation (any value).
    pub subnamespace: bool,
}

/// The namespaces a tree is drawn from. A name maps to its node, or to the line upstream prints when it could
/// not read that namespace (`Error reading namespace …`); a name absent from the map does not exist.
#[derive(Debug, Clone, Default)]
pub struct Forest {
    nodes: BTreeMap<String, Result<TreeNode, String>>,
}

impl Forest {
    /// An empty forest.
    pub fn new() -> Self {
        Forest::default()
    }

    /// Adds (or replaces) a namespace that was read.
    pub fn insert(&mut self, name: impl Into<String>, node: TreeNode) {
        self.nodes.insert(name.into(), Ok(node));
    }

    /// Records that `name` could not be read; `error` is the whole line to print.
    pub fn insert_error(&mut self, name: impl Into<String>, error: String) {
        self.nodes.insert(name.into(), Err(error));
    }

    /// True when `name` was read or failed to be read.
    pub fn contains(&self, name: &str) -> bool {
        self.nodes.contains_key(name)
    }

    /// The node of `name`, or the line to print when it cannot be shown.
    pub fn get(&self, name: &str) -> Result<&TreeNode, String> {
        match self.nodes.get(name) {
            Some(Ok(node)) => Ok(node),
            Some(Err(error)) => Err(error.clone()),
            None => Err(not_found(name)),
        }
    }

    /// Every namespace name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }
}

/// The line upstream prints for a namespace that does not exist (the API server's NotFound message).
pub fn not_found(name: &str) -> String {
    format!("Error reading namespace {name}: namespaces \"{name}\" not found")
}

/// Which trees to draw.
#[derive(Debug, Clone, Copy)]
pub enum Roots<'a> {
    /// `tree NS...`: each named namespace is drawn as a root, whether or not it has a parent.
    Named(&'a [String]),
    /// `tree -A`: every tree of the forest.
    All,
}

/// The text `tree` prints and, when it stopped at a namespace it could not read, the error line that follows
/// (the command then exits with status 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeOutput {
    /// Everything printed before the error, or the whole output.
    pub text: String,
    /// The error line, without its newline.
    pub error: Option<String>,
}

/// Draws the trees of `roots` from `forest`.
///
/// With [`Roots::All`] a namespace is drawn as a root when its parent is empty, when it is in a cycle (upstream's
/// two rules), and also when its parent does not list it among its children — typically because the parent
/// was deleted (an orphan). Upstream's plugin printed orphans nowhere (spec §18 item 17), while still listing
/// their conditions under `Conditions:`.
pub fn render_tree(forest: &Forest, roots: Roots<'_>) -> TreeOutput {
    let mut tree = TreeWriter::default();
    let result = match roots {
        Roots::Named(names) => names.iter().try_for_each(|name| tree.root(forest, name)),
        Roots::All => forest.names().try_for_each(|name| tree.root_if_top(forest, name)),
    };
    tree.finish(result.err())
}

#[derive(Default)]
struct TreeWriter {
    text: String,
    footnotes: Vec<String>,
    footnote_ids: HashMap<String, usize>,
    any_subnamespace: bool,
}

impl TreeWriter {
    fn root(&mut self, forest: &Forest, name: &str) -> Result<(), String> {
        let node = forest.get(name)?;
        let (label, in_cycle) = self.label(name, node);
        self.print_root(forest, name, node, label, in_cycle)
    }

    fn root_if_top(&mut self, forest: &Forest, name: &str) -> Result<(), String> {
        let node = forest.get(name)?;
        // The label is made first even for namespaces that are skipped: it numbers their footnotes.
        let (label, in_cycle) = self.label(name, node);
        let listed_by_parent =
            || forest.get(&node.parent).is_ok_and(|p| p.children.iter().any(|c| c == name));
        if !in_cycle && !node.parent.is_empty() && listed_by_parent() {
            return Ok(());
        }
        self.print_root(forest, name, node, label, in_cycle)
    }

    fn print_root(
        &mut self,
        forest: &Forest,
        name: &str,
        node: &TreeNode,
        label: String,
        in_cycle: bool,
    ) -> Result<(), String> {
        self.text.push_str(&label);
        self.text.push('\n');
        let mut path = vec![name.to_owned()];
        self.subtree(forest, "", node, in_cycle, &mut path)
    }

    fn subtree(
        &mut self,
        forest: &Forest,
        prefix: &str,
        node: &TreeNode,
        parent_in_cycle: bool,
        path: &mut Vec<String>,
    ) -> Result<(), String> {
        let mut children: Vec<&String> = node.children.iter().collect();
        children.sort();
        children.dedup();
        let last = children.len().saturating_sub(1);
        for (i, name) in children.into_iter().enumerate() {
            let child = forest.get(name)?;
            let (mut label, in_cycle) = self.label(name, child);
            // Upstream's guard against endless recursion: inside a cycle, other cycle members are not printed.
            if in_cycle && parent_in_cycle {
                continue;
            }
            // Stale statuses can loop without an InCycle condition; never print a namespace inside itself.
            if path.iter().any(|p| p == name) {
                continue;
            }
            if child.subnamespace {
                label.insert_str(0, "[s] ");
                self.any_subnamespace = true;
            }
            let (branch, indent) = if i < last { ("├── ", "│   ") } else { ("└── ", "    ") };
            let _ = writeln!(self.text, "{prefix}{branch}{label}");
            path.push(name.clone());
            let result = self.subtree(forest, &format!("{prefix}{indent}"), child, in_cycle, path);
            path.pop();
            result?;
        }
        Ok(())
    }

    /// `name` followed by its footnote numbers, e.g. `team-b (1,2)`, and whether it is in a cycle.
    fn label(&mut self, name: &str, node: &TreeNode) -> (String, bool) {
        let mut in_cycle = false;
        let mut ids = Vec::with_capacity(node.conditions.len());
        for cond in &node.conditions {
            in_cycle |= cond.reason == reasons::IN_CYCLE;
            let text = condition_text(cond);
            let next = self.footnotes.len() + 1;
            let id = *self.footnote_ids.entry(text.clone()).or_insert_with(|| {
                self.footnotes.push(text);
                next
            });
            ids.push(id);
        }
        if ids.is_empty() {
            return (name.to_owned(), false);
        }
        ids.sort_unstable();
        let ids: Vec<String> = ids.iter().map(usize::to_string).collect();
        (format!("{name} ({})", ids.join(",")), in_cycle)
    }

    fn finish(mut self, error: Option<String>) -> TreeOutput {
        if error.is_none() {
            if self.any_subnamespace {
                self.text.push_str("\n[s] indicates subnamespaces\n");
            }
            if !self.footnotes.is_empty() {
                self.text.push_str("\nConditions:\n");
                for (i, note) in self.footnotes.iter().enumerate() {
                    let _ = writeln!(self.text, "{}) {note}", i + 1);
                }
            }
        }
        TreeOutput { text: self.text, error }
    }
}

/// A condition as `tree` and `describe` print it: `<Type> (<Reason>): <Message>`.
pub fn condition_text(cond: &Condition) -> String {
    format!("{} ({}): {}", cond.type_, cond.reason, cond.message)
}

#[cfg(test)]
mod tests {
    use hnc_api::condition::types;
    use pretty_assertions::assert_eq;

    use super::*;

    fn node(parent: &str, children: &[&str]) -> TreeNode {
        TreeNode {
            parent: parent.to_owned(),
            children: children.iter().map(|c| (*c).to_owned()).collect(),
            ..TreeNode::default()
        }
    }

    fn cond(type_: &str, reason: &str, message: &str) -> Condition {
        Condition::new(type_, reason, message, "2025-01-01T00:00:00Z")
    }

    fn sub(mut n: TreeNode) -> TreeNode {
        n.subnamespace = true;
        n
    }

    fn with(mut n: TreeNode, conds: Vec<Condition>) -> TreeNode {
        n.conditions = conds;
        n
    }

    fn named(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn full(forest: &Forest, roots: Roots<'_>) -> String {
        let out = render_tree(forest, roots);
        assert_eq!(out.error, None);
        out.text
    }

    #[test]
    fn branches_prefixes_and_subnamespace_markers() {
        let mut f = Forest::new();
        f.insert("acme", node("", &["team-b", "team-a"]));
        f.insert("team-a", sub(node("acme", &["svc-1", "svc-2"])));
        f.insert("svc-1", sub(node("team-a", &[])));
        f.insert("svc-2", node("team-a", &["deep"]));
        f.insert("deep", node("svc-2", &[]));
        f.insert("team-b", node("acme", &[]));
        assert_eq!(
            full(&f, Roots::Named(&named(&["acme"]))),
            "acme\n\
             ├── [s] team-a\n\
             │   ├── [s] svc-1\n\
             │   └── svc-2\n\
             │       └── deep\n\
             └── team-b\n\
             \n\
             [s] indicates subnamespaces\n"
        );
    }

    #[test]
    fn a_named_root_never_gets_the_subnamespace_marker_and_may_have_a_parent() {
        let mut f = Forest::new();
        f.insert("acme", node("", &["team-a"]));
        f.insert("team-a", sub(node("acme", &["svc"])));
        f.insert("svc", node("team-a", &[]));
        assert_eq!(full(&f, Roots::Named(&named(&["team-a"]))), "team-a\n└── svc\n");
    }

    #[test]
    fn identical_condition_texts_share_a_footnote_numbered_in_order_of_appearance() {
        let missing = cond(types::BAD_CONFIGURATION, reasons::SUBNAMESPACE_ANCHOR_MISSING, "anchor gone");
        let label = cond(types::BAD_CONFIGURATION, reasons::ILLEGAL_MANAGED_LABEL, "bad key x");
        let mut f = Forest::new();
        f.insert("root", node("", &["a", "b"]));
        f.insert("a", with(sub(node("root", &[])), vec![missing.clone()]));
        // Footnote 2 is listed first here: ids are printed sorted.
        f.insert("b", with(node("root", &[]), vec![label, missing]));
        assert_eq!(
            full(&f, Roots::Named(&named(&["root"]))),
            "root\n\
             ├── [s] a (1)\n\
             └── b (1,2)\n\
             \n\
             [s] indicates subnamespaces\n\
             \n\
             Conditions:\n\
             1) BadConfiguration (SubnamespaceAnchorMissing): anchor gone\n\
             2) BadConfiguration (IllegalManagedLabel): bad key x\n"
        );
    }

    #[test]
    fn several_named_roots_are_printed_one_after_the_other() {
        let mut f = Forest::new();
        f.insert("a", node("", &["a1"]));
        f.insert("a1", node("a", &[]));
        f.insert("b", node("", &[]));
        assert_eq!(full(&f, Roots::Named(&named(&["b", "a"]))), "b\na\n└── a1\n");
    }

    #[test]
    fn all_namespaces_prints_roots_once_in_name_order() {
        let mut f = Forest::new();
        f.insert("zeta", node("", &[]));
        f.insert("alpha", node("", &["beta"]));
        f.insert("beta", sub(node("alpha", &[])));
        assert_eq!(full(&f, Roots::All), "alpha\n└── [s] beta\nzeta\n\n[s] indicates subnamespaces\n");
    }

    #[test]
    fn all_namespaces_prints_cycle_members_as_roots_without_recursing_into_the_cycle() {
        let in_cycle = |msg: &str| cond(types::ACTIVITIES_HALTED, reasons::IN_CYCLE, msg);
        let msg = "Namespace is a member of the cycle: a <- b <- a";
        let mut f = Forest::new();
        f.insert("a", with(node("b", &["b", "x"]), vec![in_cycle(msg)]));
        f.insert("b", with(node("a", &["a"]), vec![in_cycle(msg)]));
        f.insert("x", node("a", &[]));
        assert_eq!(
            full(&f, Roots::All),
            "a (1)\n\
             └── x\n\
             b (1)\n\
             \n\
             Conditions:\n\
             1) ActivitiesHalted (InCycle): Namespace is a member of the cycle: a <- b <- a\n"
        );
    }

    #[test]
    fn all_namespaces_shows_an_orphan_as_a_root() {
        let gone = cond(types::ACTIVITIES_HALTED, reasons::PARENT_MISSING, "parent \"gone\" doesn't exist");
        let mut f = Forest::new();
        f.insert("a", node("", &[]));
        f.insert("orphan", with(node("gone", &["kid"]), vec![gone]));
        f.insert("kid", node("orphan", &[]));
        assert_eq!(
            full(&f, Roots::All),
            "a\n\
             orphan (1)\n\
             └── kid\n\
             \n\
             Conditions:\n\
             1) ActivitiesHalted (ParentMissing): parent \"gone\" doesn't exist\n"
        );
    }

    #[test]
    fn all_namespaces_numbers_footnotes_in_name_order_before_the_walk_reaches_them() {
        // "b" is looked at (as a candidate root) before its parent "c" is printed, so it takes number 1.
        let first = cond(types::BAD_CONFIGURATION, reasons::ILLEGAL_MANAGED_LABEL, "first");
        let second = cond(types::BAD_CONFIGURATION, reasons::ILLEGAL_MANAGED_ANNOTATION, "second");
        let mut f = Forest::new();
        f.insert("b", with(node("c", &[]), vec![first]));
        f.insert("c", with(node("", &["b"]), vec![second]));
        assert_eq!(
            full(&f, Roots::All),
            "c (2)\n\
             └── b (1)\n\
             \n\
             Conditions:\n\
             1) BadConfiguration (IllegalManagedLabel): first\n\
             2) BadConfiguration (IllegalManagedAnnotation): second\n"
        );
    }

    #[test]
    fn a_child_that_cannot_be_read_stops_the_output_with_its_error() {
        let mut f = Forest::new();
        f.insert("root", node("", &["a", "gone", "z"]));
        f.insert("a", sub(node("root", &[])));
        f.insert("z", node("root", &[]));
        let out = render_tree(&f, Roots::Named(&named(&["root"])));
        assert_eq!(out.text, "root\n├── [s] a\n");
        assert_eq!(out.error.as_deref(), Some("Error reading namespace gone: namespaces \"gone\" not found"));

        f.insert_error("gone", "Error reading namespace gone: boom".into());
        let out = render_tree(&f, Roots::Named(&named(&["root"])));
        assert_eq!(out.error.as_deref(), Some("Error reading namespace gone: boom"));
    }

    #[test]
    fn a_missing_named_root_prints_only_its_error() {
        let f = Forest::new();
        let out = render_tree(&f, Roots::Named(&named(&["nope"])));
        assert_eq!(out.text, "");
        assert_eq!(out.error, Some(not_found("nope")));
    }

    #[test]
    fn children_looping_without_a_cycle_condition_are_not_printed_inside_themselves() {
        let mut f = Forest::new();
        f.insert("a", node("", &["b"]));
        f.insert("b", node("a", &["a"]));
        assert_eq!(full(&f, Roots::Named(&named(&["a"]))), "a\n└── b\n");
    }
}
