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
    /// The charges recorded on each HRQ (namespace, name) and not yet known to be reflected in `local`.
    charges: HashMap<(NsName, String), Charges>,
    /// The versions of each namespace's recorded usage seen lately, oldest first, the current one last (at
    /// most [`VERSIONS_KEPT`]): they tell a charge made from a version this view has moved on from (recorded,
    /// or overtaken) from one made from a version it has not reached yet.
    versions: HashMap<NsName, std::collections::VecDeque<String>>,
}

/// How many versions of a namespace's recorded usage [`QuotaModel`] remembers.
pub const VERSIONS_KEPT: usize = 256;

/// What an admitted usage must be charged to before it is allowed: every HRQ limiting a resource it increases,
/// root-most first (the order [`QuotaModel::admit`] checks them in).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admission {
    /// The HRQs, as (namespace, name).
    pub hrqs: Vec<(NsName, String)>,
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
        self.charges.remove(&(NsName::from(namespace), name.to_owned()));
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
        if let Some(hrqs) = self.hrqs.remove(ns) {
            for name in hrqs.into_keys() {
                self.charges.remove(&(NsName::from(ns), name));
            }
        }
    }

    /// Records `usage` as `ns`'s own as it is (a singleton ResourceQuota's `status.used` only names the
    /// resources of its `spec.hard`, which is Limits(`ns`) once HNC has written it).
    pub fn set_local(&mut self, ns: &str, usage: ResourceList) {
        if usage.is_empty() {
            self.local.remove(ns);
        } else {
            self.local.insert(ns.into(), usage);
        }
    }

    /// Records `usage` as `ns`'s own as of `version` (its singleton's resourceVersion), like
    /// [`QuotaModel::set_local`], and remembers the version.
    pub fn record_usage(&mut self, ns: &str, usage: ResourceList, version: &str) {
        self.set_local(ns, usage);
        let seen = self.versions.entry(ns.into()).or_default();
        if seen.back().is_none_or(|last| last != version) {
            seen.push_back(version.to_owned());
            if seen.len() > VERSIONS_KEPT {
                seen.pop_front();
            }
        }
    }

    /// Forgets the recorded usage of `ns` and its versions (its singleton is gone).
    pub fn forget_usage(&mut self, ns: &str) {
        self.local.remove(ns);
        self.versions.remove(ns);
    }

    /// True while `charge` of `ns` may hold a use the recorded usage does not show: unless the recorded usage
    /// has moved on from the version the charge was made from. A version never seen (this view lags behind
    /// the charge, or forgot it) counts as not moved on.
    pub fn charge_pending(&self, ns: &str, charge: &Charge) -> bool {
        match self.versions.get(ns) {
            Some(seen) => seen.back().is_some_and(|v| *v == charge.from) || !seen.contains(&charge.from),
            None => true,
        }
    }

    /// Records the charges HRQ `name` in `namespace` carries (replacing what it had).
    pub fn set_charges(&mut self, namespace: &str, name: &str, charges: Charges) {
        let key = (NsName::from(namespace), name.to_owned());
        if charges.is_empty() {
            self.charges.remove(&key);
        } else {
            self.charges.insert(key, charges);
        }
    }

    /// The charges HRQ `name` in `namespace` carries.
    pub fn charges(&self, namespace: &str, name: &str) -> Option<&Charges> {
        self.charges.get(&(NsName::from(namespace), name.to_owned()))
    }

    /// Every HRQ, as (namespace, name, hard).
    pub fn hrqs(&self) -> impl Iterator<Item = (&NsName, &String, &ResourceList)> {
        self.hrqs.iter().flat_map(|(ns, hrqs)| hrqs.iter().map(move |(name, hard)| (ns, name, hard)))
    }

    /// The HRQs in `ns`, by name.
    pub fn hrqs_in(&self, ns: &str) -> Option<&BTreeMap<String, ResourceList>> {
        self.hrqs.get(ns)
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
        self.admit(view, ns, proposed).map(|_| ())
    }

    /// [`QuotaModel::check_use`], saying which HRQs the use must be charged to. Each HRQ counts, besides the
    /// recorded usage of its subtree, the charges it carries that the recorded usage does not show yet (a
    /// namespace counts at the larger of its recorded usage and its charge), so a use admitted elsewhere and not
    /// yet recorded is never admitted twice.
    pub fn admit(
        &self,
        view: &dyn HierarchyView,
        ns: &str,
        proposed: &ResourceList,
    ) -> Result<Admission, Exceeded> {
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
        let mut admission = Admission::default();
        if increases.is_empty() {
            return Ok(admission);
        }
        let ns_name = NsName::from(ns);
        let mut ancestry: Vec<NsName> = view.ancestors(ns);
        ancestry.reverse();
        ancestry.push(ns_name.clone());
        for (depth, namespace) in ancestry.iter().enumerate() {
            let Some(hrqs) = self.hrqs.get(namespace) else { continue };
            let used = self.subtree_usage(view, namespace);
            for (hrq, hard) in hrqs {
                let charges = self.charges.get(&(namespace.clone(), hrq.clone()));
                let mut exceeded = Vec::new();
                let mut limits_an_increase = false;
                for (resource, increase) in &increases {
                    let Some(limit) = hard.get(resource) else { continue };
                    limits_an_increase = true;
                    let now = used.as_ref().and_then(|u| u.get(resource).copied()).unwrap_or(Quantity::ZERO);
                    let pending = match charges {
                        Some(charges) => {
                            self.unrecorded(view, charges, resource, &ancestry[..=depth], &ns_name, *increase)
                        }
                        None => Some(Quantity::ZERO),
                    };
                    let fits = used.is_some()
                        && pending
                            .and_then(|p| now.checked_add(p))
                            .and_then(|n| n.checked_add(*increase))
                            .and_then(|c| c.checked_cmp(limit))
                            .is_some_and(|o| o != Ordering::Greater);
                    if !fits {
                        let shown = pending.and_then(|p| now.checked_add(p)).unwrap_or(now);
                        exceeded.push((resource.clone(), *increase, shown, *limit));
                    }
                }
                if !exceeded.is_empty() {
                    return Err(Exceeded {
                        namespace: namespace.clone(),
                        hrq: hrq.clone(),
                        resources: exceeded,
                    });
                }
                if limits_an_increase {
                    admission.hrqs.push((namespace.clone(), hrq.clone()));
                }
            }
        }
        Ok(admission)
    }

    /// What `charges` add to the recorded usage of `resource` in the subtree of the last namespace of `chain`
    /// (the ancestry from the root down to it), for a use of `increase` more in `ns`: each charged namespace in
    /// that subtree adds what its charge exceeds its recorded usage by; `ns`'s own charge adds only what it
    /// exceeds the new use by (the new use is already counted as the increase). None beyond exact arithmetic.
    fn unrecorded(
        &self,
        view: &dyn HierarchyView,
        charges: &Charges,
        resource: &str,
        chain: &[NsName],
        ns: &NsName,
        increase: Quantity,
    ) -> Option<Quantity> {
        let top = chain.last()?;
        let mut sum = Quantity::ZERO;
        for (charged, charge) in charges {
            let Some(amount) = charge.used.get(resource) else { continue };
            if !self.charge_pending(charged, charge) {
                continue;
            }
            let in_subtree = charged == top || view.ancestors(charged).iter().any(|a| a == top);
            if !in_subtree {
                continue;
            }
            let recorded =
                self.local.get(charged).and_then(|l| l.get(resource)).copied().unwrap_or(Quantity::ZERO);
            let base = if charged == ns { recorded.checked_add(increase)? } else { recorded };
            let over = amount.checked_sub(base)?;
            if over.checked_cmp(&Quantity::ZERO) == Some(Ordering::Greater) {
                sum = sum.checked_add(over)?;
            }
        }
        Some(sum)
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

/// An HRQ status's two summaries, `requestsSummary` and `limitsSummary`: `<resource>: <used>/<hard>` for every
/// resource of `hard` in name order, joined by `, `; resources whose dotted name starts with `limits` go to the
/// second, every other to the first. Amounts print canonically; a resource not used yet shows `0`.
pub fn summaries(hard: &ResourceList, used: &ResourceList) -> (String, String) {
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    let text = |q: &Quantity| q.canonical().unwrap_or_else(|| "?".to_owned());
    for (resource, limit) in hard {
        let amount = used.get(resource).copied().unwrap_or(Quantity::ZERO);
        let cell = format!("{resource}: {}/{}", text(&amount), text(limit));
        match resource.split_once('.') {
            Some(("limits", _)) => limits.push(cell),
            _ => requests.push(cell),
        }
    }
    (requests.join(", "), limits.join(", "))
}

/// The resources of `used` beyond their amount in `hard`, as (resource, used, hard).
pub fn over_limit(hard: &ResourceList, used: &ResourceList) -> Vec<(String, Quantity, Quantity)> {
    hard.iter()
        .filter_map(|(resource, limit)| {
            let amount = used.get(resource)?;
            (amount.checked_cmp(limit) == Some(Ordering::Greater))
                .then(|| (resource.clone(), *amount, *limit))
        })
        .collect()
}

/// A use an admission allowed and recorded on an HRQ before allowing it, so that every other admission under
/// that HRQ counts it until the namespace's recorded usage shows it (see `docs/hrq.md`).
#[derive(Debug, Clone)]
pub struct Charge {
    /// The resourceVersion of the namespace's singleton ResourceQuota the API server's update started from.
    pub from: String,
    /// The namespace's usage the admission allowed (absolute amounts, as proposed).
    pub used: ResourceList,
    /// When it was charged, in Unix seconds (the admitting replica's clock).
    pub at: i64,
}

impl PartialEq for Charge {
    /// Equal amounts are equal however written (`1` and `1000m`).
    fn eq(&self, other: &Self) -> bool {
        self.from == other.from
            && self.at == other.at
            && self.used.len() == other.used.len()
            && self
                .used
                .iter()
                .zip(&other.used)
                .all(|((r, q), (s, p))| r == s && q.checked_cmp(p) == Some(Ordering::Equal))
    }
}

/// The charges an HRQ carries, by charged namespace (a newer charge of a namespace replaces its older one: it
/// is absolute, so it includes it).
pub type Charges = BTreeMap<NsName, Charge>;

/// How long a charge is kept after the recorded usage of its namespace has moved on from the version it was
/// charged from: long enough for every replica's watch to have seen that move too.
pub const CHARGE_GRACE_SECS: i64 = 10;
/// How long a charge is kept at most (one whose write the API server never completed: the user's create
/// failed after admission).
pub const CHARGE_EXPIRY_SECS: i64 = 60;

/// Reads charges from their annotation value: `{"<namespace>": {"from": "<rv>", "used": {"<resource>":
/// "<quantity>"}, "at": <unix seconds>}}`. Entries that do not read are left out (they count as absent, which
/// the periodic recount and the next charge repair); an unreadable value reads as no charges.
pub fn decode_charges(text: &str) -> Charges {
    let Ok(serde_json::Value::Object(entries)) = serde_json::from_str::<serde_json::Value>(text) else {
        return Charges::new();
    };
    let mut charges = Charges::new();
    for (ns, entry) in entries {
        let from = entry.get("from").and_then(|v| v.as_str());
        let at = entry.get("at").and_then(serde_json::Value::as_i64);
        let used = entry.get("used").and_then(|v| v.as_object()).map(|used| {
            used.iter()
                .filter_map(|(r, q)| Some((r.clone(), hnc_api::quantity::parse(q.as_str()?)?)))
                .collect::<ResourceList>()
        });
        if let (Some(from), Some(at), Some(used)) = (from, at, used) {
            charges.insert(ns.as_str().into(), Charge { from: from.to_owned(), used, at });
        }
    }
    charges
}

/// The annotation value of `charges` ([`decode_charges`] reads it back).
pub fn encode_charges(charges: &Charges) -> String {
    let mut entries = serde_json::Map::new();
    for (ns, charge) in charges {
        let used: serde_json::Map<String, serde_json::Value> = charge
            .used
            .iter()
            .map(|(r, q)| (r.clone(), serde_json::Value::String(q.canonical().unwrap_or_default())))
            .collect();
        entries
            .insert(ns.to_string(), serde_json::json!({"from": charge.from, "used": used, "at": charge.at}));
    }
    serde_json::Value::Object(entries).to_string()
}

/// The charges still needed at `now`: a charge goes once the recorded usage of its namespace has moved on from
/// the version it was charged from (`pending` says whether it has not, [`QuotaModel::charge_pending`]) and
/// [`CHARGE_GRACE_SECS`] have passed — so that every replica's view has moved on too — or after
/// [`CHARGE_EXPIRY_SECS`] in any case.
pub fn live_charges(charges: &Charges, pending: impl Fn(&str, &Charge) -> bool, now: i64) -> Charges {
    charges
        .iter()
        .filter(|(ns, charge)| {
            let age = now.saturating_sub(charge.at);
            let moved_on = !pending(ns, charge);
            age < CHARGE_EXPIRY_SECS && !(moved_on && age >= CHARGE_GRACE_SECS)
        })
        .map(|(ns, charge)| (ns.clone(), charge.clone()))
        .collect()
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

    #[test]
    fn a_charge_not_yet_recorded_counts_against_every_other_use() {
        // foo's budget has room for one more configmap; bar and qux ask at once. bar's admission charged foo's
        // HRQ; until bar's recorded usage shows it, qux's admission must count it.
        let f = forest();
        let mut m = QuotaModel::new();
        m.set_hrq("foo", "budget", list(&[("configmaps", "3")]));
        m.set_local("baz", list(&[("configmaps", "2")]));
        let admitted = m.admit(&f, "bar", &list(&[("configmaps", "1")])).unwrap();
        assert_eq!(admitted.hrqs, vec![(NsName::from("foo"), "budget".to_owned())]);
        let charge = Charge { from: "7".to_owned(), used: list(&[("configmaps", "1")]), at: 100 };
        m.set_charges("foo", "budget", Charges::from([(NsName::from("bar"), charge)]));
        let denied = m.admit(&f, "qux", &list(&[("configmaps", "1")])).unwrap_err();
        assert_eq!(
            denied.to_string(),
            "exceeded hierarchical quota in namespace \"foo\": \"budget\", requested: configmaps=1, used: \
             configmaps=3, limited: configmaps=3"
        );
        // The API server retrying bar's own update is not counted twice.
        m.admit(&f, "bar", &list(&[("configmaps", "1")])).expect("bar's charge is its own use");
        // Once recorded, the charge adds nothing more.
        m.set_local("bar", list(&[("configmaps", "1")]));
        assert!(m.admit(&f, "qux", &list(&[("configmaps", "1")])).is_err(), "now recorded: still full");
        m.set_local("baz", list(&[("configmaps", "1")]));
        m.admit(&f, "qux", &list(&[("configmaps", "1")])).expect("a configmap was deleted in baz");
    }

    #[test]
    fn a_charge_counts_until_the_recorded_usage_moves_on_from_its_version() {
        // bar's charge (1 configmap, made from version 7) fills foo's budget of 3 with baz's 2.
        let f = forest();
        let mut m = QuotaModel::new();
        m.set_hrq("foo", "budget", list(&[("configmaps", "3")]));
        m.record_usage("baz", list(&[("configmaps", "2")]), "5");
        let charge = Charge { from: "7".to_owned(), used: list(&[("configmaps", "1")]), at: 100 };
        m.set_charges("foo", "budget", Charges::from([(NsName::from("bar"), charge.clone())]));
        let one = list(&[("configmaps", "1")]);
        // A view that has not reached version 7 yet counts the charge; so does one still at 7.
        assert!(m.charge_pending("bar", &charge));
        assert!(m.admit(&f, "qux", &one).is_err());
        m.record_usage("bar", list(&[]), "6");
        assert!(m.admit(&f, "qux", &one).is_err(), "6 is older than the charge");
        m.record_usage("bar", list(&[]), "7");
        assert!(m.admit(&f, "qux", &one).is_err(), "still at the version charged from");
        // The API server recorded the charged use (version 8), then it was deleted again (version 9): the
        // charge no longer counts, though it is still on the HRQ until pruned.
        m.record_usage("bar", one.clone(), "8");
        assert!(!m.charge_pending("bar", &charge));
        assert!(m.admit(&f, "qux", &one).is_err(), "recorded: full");
        m.record_usage("bar", list(&[]), "9");
        m.admit(&f, "qux", &one).expect("the charged configmap was deleted: room for one");
        m.forget_usage("bar");
        assert!(m.charge_pending("bar", &charge), "a forgotten namespace counts its charges");
    }

    #[test]
    fn a_use_is_charged_to_the_hrqs_limiting_what_it_increases() {
        let f = forest();
        let mut m = QuotaModel::new();
        m.set_hrq("foo", "pods", list(&[("pods", "10")]));
        m.set_hrq("bar", "cpu", list(&[("requests.cpu", "2")]));
        m.set_hrq("bar", "all", list(&[("pods", "5"), ("requests.cpu", "4")]));
        let admitted = m.admit(&f, "baz", &list(&[("pods", "1")])).unwrap();
        assert_eq!(
            admitted.hrqs,
            vec![(NsName::from("foo"), "pods".to_owned()), (NsName::from("bar"), "all".to_owned())]
        );
        assert!(m.admit(&f, "baz", &list(&[])).unwrap().hrqs.is_empty(), "no increase, no charge");
        assert!(m.admit(&f, "qux", &list(&[("requests.cpu", "1")])).unwrap().hrqs.is_empty());
    }

    #[test]
    fn charges_read_back_and_go_once_recorded_and_old_enough() {
        let charges = Charges::from([
            (
                NsName::from("a"),
                Charge { from: "1".to_owned(), used: list(&[("requests.cpu", "1.5")]), at: 100 },
            ),
            (NsName::from("b"), Charge { from: "2".to_owned(), used: list(&[("pods", "3")]), at: 95 }),
            (NsName::from("c"), Charge { from: "3".to_owned(), used: list(&[("pods", "1")]), at: 30 }),
        ]);
        let text = encode_charges(&charges);
        assert_eq!(decode_charges(&text), charges);
        assert!(decode_charges("not json").is_empty());
        assert_eq!(
            decode_charges(r#"{"a": {"from": "1"}, "b": {"from": "2", "used": {}, "at": 5}}"#).len(),
            1
        );
        // At 106: a moved on 6 s ago (kept), b moved on 11 s ago (gone), c never recorded and too old (gone).
        let pending = |ns: &str, _: &Charge| ns == "c";
        let live = live_charges(&charges, pending, 106);
        assert_eq!(live.keys().map(|k| k.to_string()).collect::<Vec<_>>(), vec!["a".to_owned()]);
        let unmoved = |_: &str, _: &Charge| true;
        assert_eq!(live_charges(&charges, unmoved, 120).len(), 2, "a and b not yet recorded, c expired");
    }

    #[test]
    fn summaries_split_requests_from_limits() {
        let hard = list(&[("limits.cpu", "2"), ("pods", "10"), ("requests.cpu", "1500m"), ("secrets", "2")]);
        let used = list(&[("limits.cpu", "0.5"), ("requests.cpu", "1.5"), ("secrets", "3")]);
        assert_eq!(
            summaries(&hard, &used),
            (
                "pods: 0/10, requests.cpu: 1500m/1500m, secrets: 3/2".to_owned(),
                "limits.cpu: 500m/2".to_owned()
            )
        );
        assert_eq!(
            over_limit(&hard, &used).iter().map(|(r, _, _)| r.as_str()).collect::<Vec<_>>(),
            vec!["secrets"]
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// The charges annotation is written by webhooks but readable by anyone who may edit HRQs: whatever it
        /// holds reads without panicking, and what HNC writes reads back.
        #[test]
        fn any_charges_annotation_reads(
            text in proptest::prelude::any::<String>(),
            entries in proptest::collection::vec(("[a-z]{1,8}", "[0-9]{1,6}", 0u32..1000, -5i64..5_000_000_000), 0..6),
        ) {
            let _ = decode_charges(&text);
            let junk = format!("{{\"a\": {text:?}, \"b\": {{\"from\": 1, \"used\": [], \"at\": \"x\"}}}}");
            proptest::prop_assert!(decode_charges(&junk).is_empty());
            let charges: Charges = entries
                .into_iter()
                .map(|(ns, from, pods, at)| {
                    let used = ResourceList::from([("pods".to_owned(), Quantity::from_int(i64::from(pods)))]);
                    (NsName::from(ns.as_str()), Charge { from, used, at })
                })
                .collect();
            proptest::prop_assert_eq!(decode_charges(&encode_charges(&charges)), charges);
        }
    }
}
