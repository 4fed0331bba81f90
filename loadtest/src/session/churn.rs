//! Churn: changes of every kind (sources created, updated, deleted; subnamespaces created and deleted;
//! re-parents) at a fixed rate, each tracked until the cluster shows its expected effect. Also the changes
//! themselves, which the burst phase uses one at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use parking_lot::Mutex;
use rand::Rng;
use serde_json::{Value, json};

use super::{Session, anchors, bar, hierarchies};
use crate::model::{Delta, Source, source_name};
use crate::objects::fingerprint_json;
use crate::report::{LatencyStats, PhaseResult};
use crate::topology::NS_PREFIX;

/// The kinds of change churn makes.
const KINDS: [&str; 6] = ["create", "update", "delete", "subns-create", "subns-delete", "reparent"];

/// Parses `create=3,update=4,...` into weights in [`KINDS`] order.
pub fn parse_mix(mix: &str) -> anyhow::Result<[f64; 6]> {
    let mut weights = [0.0; 6];
    for part in mix.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (kind, weight) =
            part.split_once('=').with_context(|| format!("--mix: {part:?} is not KIND=WEIGHT"))?;
        let i = KINDS
            .iter()
            .position(|k| *k == kind.trim())
            .with_context(|| format!("--mix: unknown kind {kind:?} (kinds: {})", KINDS.join(", ")))?;
        weights[i] = weight.trim().parse().with_context(|| format!("--mix: bad weight in {part:?}"))?;
    }
    anyhow::ensure!(weights.iter().any(|w| *w > 0.0), "--mix: every weight is 0");
    Ok(weights)
}

/// A churn change, chosen and applied to the model, waiting to be written.
pub(super) struct Change {
    pub(super) kind: &'static str,
    pub(super) delta: Delta,
    pub(super) write: Write,
}

pub(super) enum Write {
    Create(Vec<(ApiResource, String, Value)>),
    Patch(Vec<(ApiResource, String, String, Value)>),
    Delete(Vec<(ApiResource, String, String)>),
}

impl Session {
    /// `rate` changes per second for `duration` seconds, then waits for them to complete.
    pub async fn churn(
        &mut self,
        name: &str,
        rate: f64,
        duration: f64,
        progress: bool,
    ) -> anyhow::Result<PhaseResult> {
        anyhow::ensure!(rate > 0.0 && duration > 0.0, "--rate and --duration must be positive");
        let meter = self.meter().await;
        let mut result = PhaseResult { phase: name.into(), ..Default::default() };
        let started = Instant::now();
        let end = started + Duration::from_secs_f64(duration);
        let interval = Duration::from_secs_f64(1.0 / rate);
        let bar = bar(progress, (duration * 10.0) as u64, "churn");
        let mut necessary = 0;
        let mut issued = 0u64;
        let failures = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut writes = tokio::task::JoinSet::new();
        let mut next = started;
        let epoch_offset = self.tracker.lock().since_epoch(started);
        while Instant::now() < end {
            tokio::time::sleep_until(next.into()).await;
            next += interval;
            let (kind, n) = self.issue_change(&mut writes, &failures, None);
            necessary += n;
            *result.changes.entry(kind.to_owned()).or_default() += 1;
            issued += 1;
            while writes.try_join_next().is_some() {}
            self.sample_replicas()?;
            bar.set_position((started.elapsed().as_secs_f64() * 10.0).min(duration * 10.0) as u64);
            let pending = self.tracker.lock().pending();
            bar.set_message(format!("churn at {rate:.1}/s: {issued} changes, {pending} pending"));
        }
        let achieved = issued as f64 / started.elapsed().as_secs_f64();
        while writes.join_next().await.is_some() {}
        // Drain: every change registered must complete, or it counts as unfinished.
        let drain_until = Instant::now() + Duration::from_secs_f64(self.opts.drain);
        while self.tracker.lock().pending() > 0 && Instant::now() < drain_until {
            self.sample_replicas()?;
            bar.set_message(format!("churn: draining, {} pending", self.tracker.lock().pending()));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bar.finish_and_clear();
        let awaited = self.tracker.lock().awaited_keys(4);
        if !awaited.is_empty() {
            result.notes.extend(self.diagnose(&awaited).await);
        }
        let (mut done, superseded, unfinished) = {
            let mut t = self.tracker.lock();
            if t.pending() > 0 {
                result.notes.push(format!(
                    "unfinished after the drain, still awaiting e.g. {:?}",
                    t.sample_awaited(6)
                ));
            }
            let unfinished = t.abandon_pending();
            let superseded = std::mem::take(&mut t.superseded);
            (t.take_completed(), superseded, unfinished)
        };
        for c in &mut done {
            c.at_s -= epoch_offset;
            c.registered_s -= epoch_offset;
        }
        let failures = failures.lock().clone();
        if !failures.is_empty() {
            result.notes.push(format!("{} harness writes failed, first: {}", failures.len(), failures[0]));
        }
        result.notes.push(format!("achieved rate {achieved:.1}/s of {rate:.1}/s"));
        result.latency = Some(LatencyStats::of(&done, superseded, unfinished));
        result.samples = done;
        let idle_deadline = Instant::now() + Duration::from_secs_f64(self.opts.drain);
        if let Err(e) = self.wait_idle(self.opts.idle, idle_deadline).await {
            result.notes.push(format!("after the churn: {e:#}"));
        }
        self.finish(&meter, &mut result, necessary).await;
        Ok(result)
    }

    /// Picks a change, applies it to the model, registers it with the tracker and spawns its write into
    /// `writes` (acknowledged or failed there). With `retry`, a write refused by an unavailable or throttling
    /// API server (or cut off on the way) is tried again until that deadline. Returns the change's kind and the
    /// writes it makes necessary.
    pub(super) fn issue_change(
        &mut self,
        writes: &mut tokio::task::JoinSet<()>,
        failures: &Arc<Mutex<Vec<String>>>,
        retry: Option<Duration>,
    ) -> (&'static str, usize) {
        let change = self.pick_change();
        let necessary = change.delta.necessary();
        let kind = change.kind;
        let id = self.tracker.lock().register(change.kind, &change.delta);
        if change.kind == "subns-create"
            && let Some(last) = self.created_subns.last_mut()
        {
            last.2 = id;
        }
        let (client, tracker, failures) = (self.client.clone(), self.tracker.clone(), failures.clone());
        writes.spawn(async move {
            let outcome = match retry {
                Some(patience) => perform_retrying(&client, change.write, patience).await,
                None => perform(&client, change.write).await,
            };
            match outcome {
                Ok(()) => tracker.lock().ack(id),
                Err(e) => {
                    tracker.lock().fail(id);
                    failures.lock().push(format!("{e:#}"));
                }
            }
        });
        (kind, necessary)
    }

    // --- changes ---------------------------------------------------------------------------------------

    fn pick_change(&mut self) -> Change {
        let total: f64 = self.mix.iter().sum();
        let mut x = self.rng.random::<f64>() * total;
        let mut kind = 0;
        for (i, w) in self.mix.iter().enumerate() {
            if x < *w {
                kind = i;
                break;
            }
            x -= w;
        }
        let change = match KINDS[kind] {
            "update" => self.update_source(),
            "delete" => self.delete_source(),
            "subns-create" => Some(self.create_subnamespace()),
            "subns-delete" => self.delete_subnamespace(),
            "reparent" => self.reparent(),
            _ => None,
        };
        // A kind with no candidate right now (nothing to delete, nowhere to move) becomes a new source.
        change.unwrap_or_else(|| {
            let ns = self.original[self.rng.random_range(0..self.original.len())].clone();
            self.create_source(&ns)
        })
    }

    pub(super) fn create_source(&mut self, ns: &str) -> Change {
        self.counter += 1;
        let name = source_name("ltc", self.counter, ns);
        let objects: Vec<Value> = self.types.iter().map(|t| t.source(ns, &name, 1)).collect();
        let source = Source {
            name: name.clone(),
            fingerprints: objects.iter().map(fingerprint_json).collect(),
            generation: 1,
        };
        let scope = self.model.source_scope(ns);
        let delta =
            self.model.apply(&scope, |m| m.nodes.get_mut(ns).expect("known namespace").sources.push(source));
        self.pool.push((ns.to_owned(), name));
        let writes =
            self.types.iter().zip(objects).map(|(t, o)| (t.resource.clone(), ns.to_owned(), o)).collect();
        Change { kind: "create", delta, write: Write::Create(writes) }
    }

    fn update_source(&mut self) -> Option<Change> {
        if self.pool.is_empty() {
            return None;
        }
        let (ns, name) = self.pool[self.rng.random_range(0..self.pool.len())].clone();
        self.update_source_named(&ns, &name)
    }

    pub(super) fn update_source_named(&mut self, ns: &str, name: &str) -> Option<Change> {
        let (ns, name) = (ns.to_owned(), name.to_owned());
        let generation = self.model.nodes[&ns].sources.iter().find(|s| s.name == name)?.generation + 1;
        let objects: Vec<Value> = self.types.iter().map(|t| t.source(&ns, &name, generation)).collect();
        let fingerprints: Vec<u64> = objects.iter().map(fingerprint_json).collect();
        let scope = self.model.source_scope(&ns);
        let delta = self.model.apply(&scope, |m| {
            let s = m
                .nodes
                .get_mut(&ns)
                .and_then(|n| n.sources.iter_mut().find(|s| s.name == name))
                .expect("in pool");
            s.generation = generation;
            s.fingerprints = fingerprints;
        });
        let writes = self
            .types
            .iter()
            .zip(objects)
            .map(|(t, o)| (t.resource.clone(), ns.clone(), name.clone(), o))
            .collect();
        Some(Change { kind: "update", delta, write: Write::Patch(writes) })
    }

    fn delete_source(&mut self) -> Option<Change> {
        if self.pool.is_empty() {
            return None;
        }
        let (ns, name) = self.pool[self.rng.random_range(0..self.pool.len())].clone();
        Some(self.delete_source_named(&ns, &name))
    }

    pub(super) fn delete_source_named(&mut self, ns: &str, name: &str) -> Change {
        self.pool.retain(|(n, s)| (n.as_str(), s.as_str()) != (ns, name));
        let (ns, name) = (ns.to_owned(), name.to_owned());
        let scope = self.model.source_scope(&ns);
        let delta = self.model.apply(&scope, |m| {
            if let Some(n) = m.nodes.get_mut(&ns) {
                n.sources.retain(|s| s.name != name);
            }
        });
        let writes = self.types.iter().map(|t| (t.resource.clone(), ns.clone(), name.clone())).collect();
        Change { kind: "delete", delta, write: Write::Delete(writes) }
    }

    fn create_subnamespace(&mut self) -> Change {
        self.counter += 1;
        let parent = self.original[self.rng.random_range(0..self.original.len())].clone();
        let child = format!("{NS_PREFIX}c{}", self.counter);
        let scope = self.model.move_scope(&child, None, Some(&parent));
        let delta = self.model.apply(&scope, |m| m.add_namespace(&child, &parent, true));
        let anchor = json!({
            "apiVersion": format!("{}/v1alpha2", hnc_api::GROUP), "kind": "SubnamespaceAnchor",
            "metadata": {"name": child, "namespace": parent},
            // Without a spec the controller's typed anchor watch cannot decode the object (see the report).
            "spec": {},
        });
        // The change id is filled in once registered; deletable once complete.
        self.created_subns.push((parent.clone(), child, u64::MAX));
        Change { kind: "subns-create", delta, write: Write::Create(vec![(anchors(), parent, anchor)]) }
    }

    fn delete_subnamespace(&mut self) -> Option<Change> {
        let tracker = self.tracker.lock();
        let ready: Vec<usize> = (0..self.created_subns.len())
            .filter(|&i| {
                let (_, child, id) = &self.created_subns[i];
                *id != u64::MAX
                    && tracker.is_finished(*id)
                    && self.model.nodes.get(child).is_some_and(|n| n.children.is_empty())
            })
            .collect();
        drop(tracker);
        if ready.is_empty() {
            return None;
        }
        let (parent, child, _) = self.created_subns.swap_remove(ready[self.rng.random_range(0..ready.len())]);
        // Its parent may have moved since: the anchor stays where it was created, in `parent`.
        let current_parent = self.model.nodes.get(&child).and_then(|n| n.parent.clone());
        let scope = self.model.move_scope(&child, current_parent.as_deref(), None);
        let delta = self.model.apply(&scope, |m| m.remove_namespace(&child));
        Some(Change { kind: "subns-delete", delta, write: Write::Delete(vec![(anchors(), parent, child)]) })
    }

    fn reparent(&mut self) -> Option<Change> {
        if self.movable.is_empty() {
            return None;
        }
        for _ in 0..20 {
            let ns = self.movable[self.rng.random_range(0..self.movable.len())].clone();
            let new = self.original[self.rng.random_range(0..self.original.len())].clone();
            let old = self.model.nodes.get(&ns)?.parent.clone();
            if new == ns
                || old.as_deref() == Some(new.as_str())
                || self.model.ancestors(&new).contains(&ns.as_str())
            {
                continue;
            }
            // Keep trees within the loaded depth (at least 2), so churn does not grow chains without bound.
            let depth = self.model.depth(&ns);
            let height =
                self.model.descendants(&ns).iter().map(|d| self.model.depth(d) - depth).max().unwrap_or(0);
            if self.model.depth(&new) + 1 + height > self.max_depth {
                continue;
            }
            self.moved.push(ns.clone());
            self.moved.extend(self.model.descendants(&ns));
            let scope = self.model.move_scope(&ns, old.as_deref(), Some(&new));
            let delta = self.model.apply(&scope, |m| m.set_parent(&ns, Some(&new)));
            let patch = json!({"spec": {"parent": new}});
            let write =
                Write::Patch(vec![(hierarchies(), ns, hnc_api::keys::names::HIERARCHY.to_owned(), patch)]);
            return Some(Change { kind: "reparent", delta, write });
        }
        None
    }
}

/// Performs one change's writes as the harness (admin).
pub(super) async fn perform(client: &kube::Client, write: Write) -> anyhow::Result<()> {
    match write {
        Write::Create(items) => {
            for (ar, ns, obj) in items {
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
                let obj: DynamicObject = serde_json::from_value(obj)?;
                api.create(&PostParams::default(), &obj)
                    .await
                    .with_context(|| format!("creating a {} in {ns}", ar.kind))?;
            }
        }
        Write::Patch(items) => {
            for (ar, ns, name, patch) in items {
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .with_context(|| format!("patching {} {ns}/{name}", ar.kind))?;
            }
        }
        Write::Delete(items) => {
            for (ar, ns, name) in items {
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
                api.delete(&name, &DeleteParams::default())
                    .await
                    .with_context(|| format!("deleting {} {ns}/{name}", ar.kind))?;
            }
        }
    }
    Ok(())
}

/// [`perform`], each request tried again while the API server is unreachable, answers 429 or 5xx, for up to
/// `patience`. A create that finds its object already there after a retry, or a delete that finds it gone, was
/// applied by an attempt whose answer was lost.
pub(super) async fn perform_retrying(
    client: &kube::Client,
    write: Write,
    patience: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + patience;
    let items: Vec<Write> = match write {
        Write::Create(items) => items.into_iter().map(|i| Write::Create(vec![i])).collect(),
        Write::Patch(items) => items.into_iter().map(|i| Write::Patch(vec![i])).collect(),
        Write::Delete(items) => items.into_iter().map(|i| Write::Delete(vec![i])).collect(),
    };
    for item in items {
        let mut attempt = 0u32;
        loop {
            let again = match &item {
                Write::Create(i) => Write::Create(i.clone()),
                Write::Patch(i) => Write::Patch(i.clone()),
                Write::Delete(i) => Write::Delete(i.clone()),
            };
            let tolerated = match &item {
                Write::Create(_) => 409,
                Write::Delete(_) => 404,
                Write::Patch(_) => 0,
            };
            let error = match perform(client, again).await {
                Ok(()) => break,
                Err(e) => e,
            };
            let code = error.chain().find_map(|c| match c.downcast_ref::<kube::Error>() {
                Some(kube::Error::Api(s)) => Some(s.code),
                _ => None,
            });
            match code {
                Some(code) if attempt > 0 && code == tolerated => break,
                Some(code) if code != 429 && code < 500 => return Err(error),
                _ if Instant::now() >= deadline => return Err(error),
                _ => {}
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(())
}
