//! Hierarchical resource quota accounting, as a pure model: which limits apply in a namespace, what a subtree
//! uses, and whether a namespace may use more.
//!
//! The rules are upstream's (spec §9), with one deliberate difference:
//!
//! * **Limits(N)** — for every resource named by an HRQ in N or in any of its ancestors, the strictest (smallest)
//!   of their `hard` amounts. This is what the singleton ResourceQuota `hrq.hnc.x-k8s.io` in N asks of the API
//!   server's own quota admission.
//! * **Local usage** — N's own usage as its singleton ResourceQuota's `status.used` reports it, kept only for the
//!   resources Limits(N) names.
//! * **Subtree usage** — the sum of local usage over N and its descendants.
//! * **A proposed usage** (the API server updating `status.used` of N's singleton while admitting a write) is
//!   allowed unless it *increases* a resource that, added to the subtree usage of N or of an ancestor, goes
//!   beyond the `hard` of an HRQ there. The ancestry is checked from the root down and the HRQs of a namespace
//!   in name order; the first HRQ exceeded is reported with every resource it exceeds, in upstream's words.
//!   Decreases are always allowed, and a resource already over its limit does not block the others.
//!   *Unlike upstream*, a resource the subtree has not recorded any usage for yet is checked as zero rather than
//!   skipped: upstream lets such a first use through unchecked.
//!
//! Amounts are exact ([`hnc_api::quantity`]): `0.1 + 0.2` CPU is `300m`, never a float. An amount this
//! arithmetic cannot hold (beyond 10^38 at the finest precision involved) denies an increase rather than wrap.
//!
//! The model recomputes subtree sums from the hierarchy it is given on every question; keeping them incrementally
//! (and sharded, per tree owner) is the controller's job and is checked against this model.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use hnc_api::quantity::Quantity;

use crate::view::{HierarchyView, NsName};

/// Amounts by resource name (`pods`, `requests.cpu`, `count/configmaps`, ...).
pub type ResourceList = BTreeMap<String, Quantity>;

/// The element-wise strictest of `lists`: every resource any of them names, at its smallest amount. A pair that
/// cannot be compared exactly keeps the amount seen first.
pub fn strictest<'a>(lists: impl IntoIterator<Item = &'a ResourceList>) -> ResourceList {
    let mut out = ResourceList::new();
    for list in lists {
        for (resource, amount) in list {
            match out.get(resource) {
                Some(current) if current.checked_cmp(amount) != Some(Ordering::Greater) => {}
                _ => {
                    out.insert(resource.clone(), *amount);
                }
            }
        }
    }
    out
}

/// One HRQ's limit that a proposed usage would exceed, in the words upstream's admission uses.
#[derive(Debug, Clone)]
pub struct Exceeded {
    /// The namespace holding the HRQ.
    pub namespace: NsName,
    /// The HRQ's name.
    pub hrq: String,
    /// Each resource it exceeds: (name, increase requested, subtree usage now, limit).
    pub resources: Vec<(String, Quantity, Quantity, Quantity)>,
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |q: &Quantity| q.canonical().unwrap_or_else(|| "?".to_owned());
        write!(f, "exceeded hierarchical quota in namespace {:?}: {:?}", &*self.namespace, self.hrq)?;
        for (resource, requested, used, limited) in &self.resources {
            write!(
                f,
                ", requested: {resource}={}, used: {resource}={}, limited: {resource}={}",
                text(requested),
                text(used),
                text(limited)
            )?;
        }
        Ok(())
    }
}

/// HRQ limits and namespace usage.
#[derive(Debug, Clone, Default)]
pub struct QuotaModel {
    /// The `hard` of every HRQ, by namespace and HRQ name.
    hrqs: HashMap<NsName, BTreeMap<String, ResourceList>>,
    /// Each namespace's own usage, restricted to its limits when it was recorded.
    local: HashMap<NsName, ResourceList>,
}

impl QuotaModel {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records HRQ `name` in `namespace` with its `hard` (replacing what it had).
    pub fn set_hrq(&mut self, namespace: &str, name: &str, hard: ResourceList) {
        self.hrqs.entry(namespace.into()).or_default().insert(name.to_owned(), hard);
    }

    /// Forgets HRQ `name` in `namespace`.
    pub fn remove_hrq(&mut self, namespace: &str, name: &str) {
        if let Some(hrqs) = self.hrqs.get_mut(namespace) {
            hrqs.remove(name);
            if hrqs.is_empty() {
                self.hrqs.remove(namespace);
            }
        }
    }

    /// Limits(`ns`): the strictest amount of every resource an HRQ in `ns` or an ancestor names.
    pub fn limits(&self, view: &dyn HierarchyView, ns: &str) -> ResourceList {
        let chain: Vec<NsName> = std::iter::once(NsName::from(ns)).chain(view.ancestors(ns)).collect();
        strictest(chain.iter().filter_map(|n| self.hrqs.get(n)).flat_map(|hrqs| hrqs.values()))
    }

    /// Records `usage` as `ns`'s own (its singleton ResourceQuota's `status.used`), keeping the resources
    /// Limits(`ns`) names.
    pub fn use_resources(&mut self, view: &dyn HierarchyView, ns: &str, usage: &ResourceList) {
        let limits = self.limits(view, ns);
        let kept: ResourceList =
            usage.iter().filter(|(r, _)| limits.contains_key(*r)).map(|(r, q)| (r.clone(), *q)).collect();
        if kept.is_empty() {
            self.local.remove(ns);
        } else {
            self.local.insert(ns.into(), kept);
        }
    }

    /// Forgets `ns`'s usage (the namespace was deleted).
    pub fn forget_namespace(&mut self, ns: &str) {
        self.local.remove(ns);
        self.hrqs.remove(ns);
    }

    /// `ns`'s own recorded usage.
    pub fn local(&self, ns: &str) -> ResourceList {
        self.local.get(ns).cloned().unwrap_or_default()
    }

    /// The usage of `ns` and its descendants, summed; None when a sum leaves exact arithmetic.
    pub fn subtree_usage(&self, view: &dyn HierarchyView, ns: &str) -> Option<ResourceList> {
        let mut sum = ResourceList::new();
        let members = std::iter::once(NsName::from(ns)).chain(view.descendants(ns));
        for member in members {
            for (resource, amount) in self.local.get(&member).into_iter().flatten() {
                let total = match sum.get(resource) {
                    Some(so_far) => so_far.checked_add(*amount)?,
                    None => *amount,
                };
                sum.insert(resource.clone(), total);
            }
        }
        Some(sum)
    }

    /// The usage HRQ `name` in `ns` reports (`status.used`): its subtree's, for the resources its `hard`
    /// names (zero for those not used yet).
    pub fn hrq_usage(&self, view: &dyn HierarchyView, ns: &str, name: &str) -> Option<ResourceList> {
        let hard = self.hrqs.get(ns)?.get(name)?;
        let used = self.subtree_usage(view, ns)?;
        Some(hard.keys().map(|r| (r.clone(), used.get(r).copied().unwrap_or(Quantity::ZERO))).collect())
    }

    /// Whether `ns` may use `proposed` (absolute amounts), by the rules in the module docs.
    pub fn check_use(
        &self,
        view: &dyn HierarchyView,
        ns: &str,
        proposed: &ResourceList,
    ) -> Result<(), Exceeded> {
        let local = self.local(ns);
        let mut increases = ResourceList::new();
        for (resource, amount) in proposed {
            let before = local.get(resource).copied().unwrap_or(Quantity::ZERO);
            // An amount beyond exact arithmetic counts as an increase of itself: it is checked, not waved on.
            let increase = amount.checked_sub(before).unwrap_or(*amount);
            if increase.checked_cmp(&Quantity::ZERO) != Some(Ordering::Greater) {
                continue;
            }
            increases.insert(resource.clone(), increase);
        }
        if increases.is_empty() {
            return Ok(());
        }
        let mut chain: Vec<NsName> = view.ancestors(ns);
        chain.reverse();
        chain.push(ns.into());
        for namespace in chain {
            let Some(hrqs) = self.hrqs.get(&namespace) else { continue };
            let used = self.subtree_usage(view, &namespace);
            for (hrq, hard) in hrqs {
                let mut exceeded = Vec::new();
                for (resource, increase) in &increases {
                    let Some(limit) = hard.get(resource) else { continue };
                    let now = used.as_ref().and_then(|u| u.get(resource).copied()).unwrap_or(Quantity::ZERO);
                    let fits = used.is_some()
                        && now
                            .checked_add(*increase)
                            .and_then(|c| c.checked_cmp(limit))
                            .is_some_and(|o| o != Ordering::Greater);
                    if !fits {
                        exceeded.push((resource.clone(), *increase, now, *limit));
                    }
                }
                if !exceeded.is_empty() {
                    return Err(Exceeded { namespace, hrq: hrq.clone(), resources: exceeded });
                }
            }
        }
        Ok(())
    }

    /// [`QuotaModel::check_use`], and on success records the usage at once (optimistic accounting: the API
    /// server updates the ResourceQuota's status only once every admission check has passed).
    pub fn try_use(
        &mut self,
        view: &dyn HierarchyView,
        ns: &str,
        proposed: &ResourceList,
    ) -> Result<(), Exceeded> {
        self.check_use(view, ns, proposed)?;
        self.use_resources(view, ns, proposed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use super::*;
    use crate::view::Labels;

    /// A forest given as child → parent.
    struct Forest(HashMap<&'static str, &'static str>);

    impl HierarchyView for Forest {
        fn is_managed(&self, _: &str) -> bool {
            true
        }
        fn ancestors(&self, ns: &str) -> Vec<NsName> {
            let mut out = Vec::new();
            let mut seen = HashSet::new();
            let mut at = ns;
            while let Some(parent) = self.0.get(at) {
                if !seen.insert(*parent) {
                    break;
                }
                out.push(NsName::from(*parent));
                at = parent;
            }
            out
        }
        fn descendants(&self, ns: &str) -> Vec<NsName> {
            self.0
                .keys()
                .filter(|c| self.ancestors(c).iter().any(|a| &**a == ns))
                .map(|c| NsName::from(*c))
                .collect()
        }
        fn labels(&self, _: &str) -> Option<Arc<Labels>> {
            None
        }
        fn halted_by(&self, _: &str) -> Option<NsName> {
            None
        }
        fn root(&self, ns: &str) -> NsName {
            self.ancestors(ns).last().cloned().unwrap_or_else(|| ns.into())
        }
    }

    fn list(items: &[(&str, &str)]) -> ResourceList {
        items
            .iter()
            .map(|(r, q)| {
                ((*r).to_owned(), hnc_api::quantity::parse(q).unwrap_or_else(|| panic!("{q} parses")))
            })
            .collect()
    }

    fn text(list: &ResourceList) -> Vec<(String, String)> {
        list.iter().map(|(r, q)| (r.clone(), q.canonical().unwrap())).collect()
    }

    /// foo ← bar ← baz, and foo ← qux.
    fn forest() -> Forest {
        Forest(HashMap::from([("bar", "foo"), ("baz", "bar"), ("qux", "foo")]))
    }

    #[test]
    fn a_namespace_gets_the_strictest_limits_of_its_ancestry() {
        let f = forest();
        let mut m = QuotaModel::new();
        m.set_hrq("foo", "a", list(&[("secrets", "6"), ("pods", "3")]));
        m.set_hrq("bar", "b", list(&[("secrets", "100"), ("cpu", "50")]));
        assert_eq!(
            text(&m.limits(&f, "bar")),
            text(&list(&[("cpu", "50"), ("pods", "3"), ("secrets", "6")]))
        );
        assert_eq!(text(&m.limits(&f, "qux")), text(&list(&[("pods", "3"), ("secrets", "6")])));
        assert_eq!(text(&m.limits(&f, "baz")), text(&m.limits(&f, "bar")), "inherited unchanged below");
        m.remove_hrq("foo", "a");
        assert_eq!(text(&m.limits(&f, "baz")), text(&list(&[("cpu", "50"), ("secrets", "100")])));
    }

    #[test]
    fn sibling_usage_counts_against_the_common_ancestor() {
        let f = forest();
        let mut m = QuotaModel::new();
        m.set_hrq("foo", "budget", list(&[("configmaps", "2")]));
        m.try_use(&f, "bar", &list(&[("configmaps", "1")])).unwrap();
        m.try_use(&f, "qux", &list(&[("configmaps", "1")])).unwrap();
        let denied = m.try_use(&f, "baz", &list(&[("configmaps", "1")])).unwrap_err();
        assert_eq!(
            denied.to_string(),
            "exceeded hierarchical quota in namespace \"foo\": \"budget\", requested: configmaps=1, used: \
             configmaps=2, limited: configmaps=2"
        );
        assert_eq!(text(&m.hrq_usage(&f, "foo", "budget").unwrap()), text(&list(&[("configmaps", "2")])));
        assert!(m.local("baz").is_empty(), "a denied use is not recorded");
    }

    #[test]
    fn decreases_pass_and_a_resource_over_its_limit_blocks_only_itself() {
        let f = forest();
        let mut m = QuotaModel::new();
        m.set_hrq("foo", "h", list(&[("pods", "1"), ("secrets", "5")]));
        // Usage recorded before the HRQ existed, over the new limit: kept and reported.
        m.use_resources(&f, "bar", &list(&[("pods", "2"), ("secrets", "1")]));
        assert_eq!(
            text(&m.hrq_usage(&f, "foo", "h").unwrap()),
            text(&list(&[("pods", "2"), ("secrets", "1")]))
        );
        m.try_use(&f, "bar", &list(&[("pods", "2"), ("secrets", "2")])).expect("pods unchanged, secrets fit");
        m.try_use(&f, "bar", &list(&[("pods", "1"), ("secrets", "2")])).expect("a decrease");
        let denied = m.try_use(&f, "qux", &list(&[("pods", "1")])).unwrap_err();
        assert_eq!(denied.resources.len(), 1);
        assert_eq!(denied.resources[0].0, "pods");
    }

    #[test]
    fn the_first_use_of_a_resource_is_checked_too() {
        // Upstream skips a resource the subtree has no usage recorded for; here it counts as zero.
        let f = forest();
        let mut m = QuotaModel::new();
        m.set_hrq("foo", "h", list(&[("services", "1")]));
        let denied = m.try_use(&f, "baz", &list(&[("services", "2")])).unwrap_err();
        assert_eq!(
            denied.to_string(),
            "exceeded hierarchical quota in namespace \"foo\": \"h\", requested: services=2, used: services=0, \
             limited: services=1"
        );
    }

    #[test]
    fn fractional_cpu_adds_up_exactly() {
        let f = forest();
        let mut m = QuotaModel::new();
        m.set_hrq("foo", "cpu", list(&[("requests.cpu", "0.3")]));
        m.try_use(&f, "bar", &list(&[("requests.cpu", "0.1")])).unwrap();
        m.try_use(&f, "qux", &list(&[("requests.cpu", "200m")])).expect("0.1 + 0.2 is exactly 0.3");
        assert!(
            m.try_use(&f, "baz", &list(&[("requests.cpu", "1n")])).is_err(),
            "one nano more does not fit"
        );
        assert_eq!(
            text(&m.hrq_usage(&f, "foo", "cpu").unwrap()),
            vec![("requests.cpu".to_owned(), "300m".to_owned())]
        );
    }

    #[test]
    fn the_root_most_exceeded_hrq_is_reported_with_every_resource_it_exceeds() {
        let f = forest();
        let mut m = QuotaModel::new();
        m.set_hrq("foo", "top", list(&[("pods", "4"), ("secrets", "6")]));
        m.set_hrq("bar", "mid", list(&[("pods", "1")]));
        m.use_resources(&f, "baz", &list(&[("pods", "3"), ("secrets", "5")]));
        let denied = m.check_use(&f, "baz", &list(&[("pods", "9"), ("secrets", "8")])).unwrap_err();
        assert_eq!(&*denied.namespace, "foo");
        assert_eq!(
            denied.to_string(),
            "exceeded hierarchical quota in namespace \"foo\": \"top\", requested: pods=6, used: pods=3, limited: \
             pods=4, requested: secrets=3, used: secrets=5, limited: secrets=6"
        );
    }

    #[test]
    fn usage_outside_every_limit_is_not_kept() {
        let f = forest();
        let mut m = QuotaModel::new();
        m.set_hrq("bar", "h", list(&[("pods", "10")]));
        m.use_resources(&f, "baz", &list(&[("pods", "1"), ("memory", "1Gi")]));
        assert_eq!(text(&m.local("baz")), text(&list(&[("pods", "1")])));
        m.use_resources(&f, "qux", &list(&[("pods", "1")]));
        assert!(m.local("qux").is_empty(), "qux is under no HRQ");
    }
}
