//! Lease primitives: acquire, renew and release one `coordination.k8s.io/v1` Lease, always with optimistic
//! concurrency (the resourceVersion of what we read; a 409 means someone else won the race).
//!
//! Expiry is judged as client-go judges it: by *our* monotonic clock. A lease is expired when its record
//! (holder, times, duration, transitions) has not changed for `leaseDurationSeconds` since we first saw that
//! record. The remote `renewTime` is never compared to the local wall clock, so clock skew cannot make a live
//! holder look dead; at worst a new observer waits one full duration. A lease with no holder was released and
//! may be taken at once.
//!
//! ```text
//!   GET ─▶ Observations (record, first seen at) ─▶ free, expired or ours? ─PUT with resourceVersion─▶ Held
//!                                                         │ no                          │ 409
//!                                                         ▼                             ▼
//!                                                    HeldByOther                     LostRace
//! ```
//!
//! The holder's own fence uses the instant *before* the winning write was sent: every other observer saw that
//! write later, so `sent + renew deadline < sent + duration ≤ their expiry` — the holder stops first.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use parking_lot::Mutex;
use tokio::time::Instant;

/// Label on every Lease this crate writes; its value says which kind (`leader`, `replica`, `shard`).
pub const LEASE_KIND_LABEL: &str = "hnc.x-k8s.io/lease";

/// A failed call for a Lease (or for the assignment ConfigMap).
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The API server answered with an error, or could not be reached.
    #[error("{name}: {source}")]
    Api {
        /// Object name.
        name: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// No answer in time.
    #[error("{name}: no answer within {timeout:?}")]
    Timeout {
        /// Object name.
        name: String,
        /// How long we waited.
        timeout: Duration,
    },
}

impl LeaseError {
    /// True when the API server answered meaningfully (not found, conflict, invalid): it is reachable and
    /// working. Throttling, 5xx, auth failures, transport errors and timeouts are not.
    pub fn reached_api(&self) -> bool {
        match self {
            LeaseError::Api { source: kube::Error::Api(status), .. } => {
                matches!(status.code, 400 | 404 | 409 | 410 | 422)
            }
            _ => false,
        }
    }
}

/// True for a 409 (Conflict or AlreadyExists).
fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// One lease as we last saw it, and when its record last changed in our eyes.
#[derive(Clone, Debug)]
pub struct Observed {
    /// `holderIdentity`; None or empty = released.
    pub holder: Option<String>,
    /// `leaseDurationSeconds` as the holder wrote it.
    pub duration: Duration,
    /// When we first saw the current record (local monotonic clock).
    pub changed_at: Instant,
    /// The value of [`LEASE_KIND_LABEL`].
    pub kind: Option<String>,
    /// The annotations on the lease (replicas publish facts there).
    pub annotations: BTreeMap<String, String>,
    record: LeaseSpec,
}

impl Observed {
    /// The holder, if there is one and its lease has not expired by our observation.
    pub fn live_holder(&self, now: Instant) -> Option<&str> {
        let holder = self.holder.as_deref().filter(|h| !h.is_empty())?;
        (now < self.changed_at + self.duration).then_some(holder)
    }
}

/// Every lease we have seen, by name: the memory that expiry is judged from. Shared by all lease locks of a
/// replica and fed by their reads and writes and by periodic lists.
#[derive(Debug, Default)]
pub struct Observations {
    leases: Mutex<HashMap<String, Observed>>,
}

impl Observations {
    /// Records `lease` as seen at `now`; the change time moves only when the record differs from last time.
    pub fn observe(&self, lease: &Lease, now: Instant) -> Observed {
        let name = lease.metadata.name.clone().unwrap_or_default();
        let record = lease.spec.clone().unwrap_or_default();
        let annotations = lease.metadata.annotations.clone().unwrap_or_default();
        let kind = lease.metadata.labels.as_ref().and_then(|l| l.get(LEASE_KIND_LABEL)).cloned();
        let mut leases = self.leases.lock();
        match leases.get_mut(&name) {
            Some(seen) if seen.record == record => {
                seen.annotations = annotations;
                seen.kind = kind;
                seen.clone()
            }
            _ => {
                let seen = Observed {
                    holder: record.holder_identity.clone(),
                    duration: Duration::from_secs(record.lease_duration_seconds.unwrap_or(0).max(0) as u64),
                    changed_at: now,
                    kind,
                    annotations,
                    record,
                };
                leases.insert(name, seen.clone());
                seen
            }
        }
    }

    /// Records a full list of every lease carrying [`LEASE_KIND_LABEL`]: labelled ones it lacks were deleted.
    pub fn observe_list<'a>(&self, leases: impl IntoIterator<Item = &'a Lease>, now: Instant) {
        let mut present = HashSet::new();
        for lease in leases {
            present.insert(lease.metadata.name.clone().unwrap_or_default());
            self.observe(lease, now);
        }
        self.leases.lock().retain(|name, seen| present.contains(name) || seen.kind.is_none());
    }

    /// Forgets a lease that does not exist.
    pub fn forget(&self, name: &str) {
        self.leases.lock().remove(name);
    }

    /// The last observation of `name`.
    pub fn get(&self, name: &str) -> Option<Observed> {
        self.leases.lock().get(name).cloned()
    }

    /// Every observation whose lease carries `LEASE_KIND_LABEL = kind`, by name.
    pub fn of_kind(&self, kind: &str) -> BTreeMap<String, Observed> {
        self.leases
            .lock()
            .iter()
            .filter(|(_, seen)| seen.kind.as_deref() == Some(kind))
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect()
    }
}

/// What one acquire-or-renew attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// We hold the lease; `sent` is when the winning write was sent (the fence counts from here).
    Held {
        /// Instant before the successful write.
        sent: Instant,
        /// True when we took the lease over (it was free, expired or missing), false for a renewal.
        acquired: bool,
    },
    /// Someone else holds it and has not let it expire.
    HeldByOther {
        /// Their identity.
        holder: String,
        /// When their lease expires by our observation unless they renew it: the earliest a new attempt
        /// can succeed.
        expires: Instant,
    },
    /// Someone else wrote the lease between our read and our write (409).
    LostRace,
}

/// One named Lease that this replica tries to hold.
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    kind: String,
    identity: String,
    duration_seconds: i32,
    timeout: Duration,
    annotations: BTreeMap<String, String>,
    observations: std::sync::Arc<Observations>,
    /// The lease as our last successful write left it: renewals PUT it straight back without a GET.
    ours: Option<Lease>,
}

impl std::fmt::Debug for LeaseLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseLock").field("name", &self.name).field("held", &self.ours.is_some()).finish()
    }
}

impl LeaseLock {
    /// A lock on lease `name` of kind `kind` (the value of [`LEASE_KIND_LABEL`]) for `identity`. `duration`
    /// is written as whole seconds, rounded up; every request gives up after `timeout`.
    pub fn new(
        api: Api<Lease>,
        name: impl Into<String>,
        kind: impl Into<String>,
        identity: impl Into<String>,
        duration: Duration,
        timeout: Duration,
        observations: std::sync::Arc<Observations>,
    ) -> Self {
        let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
        LeaseLock {
            api,
            name: name.into(),
            kind: kind.into(),
            identity: identity.into(),
            duration_seconds: seconds.clamp(1, i32::MAX as u64) as i32,
            timeout,
            annotations: BTreeMap::new(),
            observations,
            ours: None,
        }
    }

    /// The lease name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Annotations to write with every acquisition and renewal (replaces the previous set; keys once set and
    /// later dropped are removed on the next write).
    pub fn set_annotations(&mut self, annotations: BTreeMap<String, String>) {
        if let Some(ours) = &mut self.ours {
            let current = ours.metadata.annotations.get_or_insert_default();
            for key in self.annotations.keys() {
                current.remove(key);
            }
        }
        self.annotations = annotations;
    }

    /// True when our last write left us the holder (the server may know better: see [`Self::try_acquire`]).
    pub fn believes_held(&self) -> bool {
        self.ours.is_some()
    }

    /// Acquires the lease if it is missing, released, expired or already ours; renews it if ours.
    pub async fn try_acquire(&mut self) -> Result<Attempt, LeaseError> {
        if let Some(ours) = self.ours.take() {
            // Renewal: PUT our own last version back. A 409 means someone wrote it since — fall through to a
            // fresh read, which decides whether it is still ours.
            let sent = Instant::now();
            match self.write(self.stamped(ours, false)).await {
                Ok(()) => return Ok(Attempt::Held { sent, acquired: false }),
                Err(LeaseError::Api { source, .. }) if is_conflict(&source) => {}
                Err(e) => return Err(e),
            }
        }
        let current = self.call(self.api.get_opt(&self.name)).await?;
        let now = Instant::now();
        let Some(current) = current else {
            self.observations.forget(&self.name);
            let fresh = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..Default::default() },
                spec: Some(LeaseSpec { lease_transitions: Some(0), ..Default::default() }),
            };
            let sent = Instant::now();
            let lease = self.stamped(fresh, true);
            return match self.call(self.api.create(&PostParams::default(), &lease)).await {
                Ok(created) => {
                    self.remember(created);
                    Ok(Attempt::Held { sent, acquired: true })
                }
                Err(LeaseError::Api { source, .. }) if is_conflict(&source) => Ok(Attempt::LostRace),
                Err(e) => Err(e),
            };
        };
        let seen = self.observe(&current, now);
        let holder = seen.holder.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.identity.as_str());
        if let Some(holder) = holder.filter(|_| !ours)
            && seen.live_holder(now).is_some()
        {
            return Ok(Attempt::HeldByOther { holder, expires: seen.changed_at + seen.duration });
        }
        let sent = Instant::now();
        match self.write(self.stamped(current, !ours)).await {
            Ok(()) => Ok(Attempt::Held { sent, acquired: !ours }),
            Err(LeaseError::Api { source, .. }) if is_conflict(&source) => Ok(Attempt::LostRace),
            Err(e) => Err(e),
        }
    }

    /// Releases the lease if we hold it: clears `holderIdentity`, so the next holder may take it at once.
    /// Returns true when a release was written.
    pub async fn release(&mut self) -> Result<bool, LeaseError> {
        let mut lease = match self.ours.clone() {
            Some(ours) => ours,
            None => match self.call(self.api.get_opt(&self.name)).await? {
                Some(l)
                    if l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(&self.identity) =>
                {
                    l
                }
                _ => return Ok(false),
            },
        };
        let spec = lease.spec.get_or_insert_default();
        spec.holder_identity = None;
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        match self.call(self.api.replace(&self.name, &PostParams::default(), &lease)).await {
            Ok(released) => {
                self.ours = None;
                self.observe(&released, Instant::now());
                Ok(true)
            }
            // Someone wrote it since our last renewal: it is not ours to release any more.
            Err(LeaseError::Api { source, .. }) if is_conflict(&source) => {
                self.ours = None;
                Ok(false)
            }
            // Still ours as far as we know: the next call tries again.
            Err(e) => Err(e),
        }
    }

    /// Forgets that we hold the lease without writing (after a failed renewal we cannot be sure).
    pub fn forget_held(&mut self) {
        self.ours = None;
    }

    /// `lease` with us as holder, renewed now, our labels and annotations; a takeover also stamps
    /// `acquireTime` and counts a transition.
    fn stamped(&self, mut lease: Lease, takeover: bool) -> Lease {
        let now = MicroTime(jiff::Timestamp::now());
        let labels = lease.metadata.labels.get_or_insert_default();
        labels.insert(LEASE_KIND_LABEL.to_owned(), self.kind.clone());
        let annotations = lease.metadata.annotations.get_or_insert_default();
        annotations.extend(self.annotations.iter().map(|(k, v)| (k.clone(), v.clone())));
        let spec = lease.spec.get_or_insert_default();
        if takeover {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(self.duration_seconds);
        spec.renew_time = Some(now);
        lease
    }

    /// PUTs `lease` (carrying the resourceVersion it was read with); on success we hold it.
    async fn write(&mut self, lease: Lease) -> Result<(), LeaseError> {
        let written = self.call(self.api.replace(&self.name, &PostParams::default(), &lease)).await?;
        self.remember(written);
        Ok(())
    }

    fn remember(&mut self, lease: Lease) {
        self.observe(&lease, Instant::now());
        self.ours = Some(lease);
    }

    fn observe(&self, lease: &Lease, now: Instant) -> Observed {
        self.observations.observe(lease, now)
    }

    async fn call<T>(&self, request: impl Future<Output = Result<T, kube::Error>>) -> Result<T, LeaseError> {
        call(&self.name, self.timeout, request).await
    }
}

/// Runs one API request for object `name`, giving up after `timeout`.
pub(crate) async fn call<T>(
    name: &str,
    timeout: Duration,
    request: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, LeaseError> {
    match tokio::time::timeout(timeout, request).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(LeaseError::Api { name: name.to_owned(), source }),
        Err(_) => Err(LeaseError::Timeout { name: name.to_owned(), timeout }),
    }
}
