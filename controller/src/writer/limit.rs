//! Adaptive concurrency limit: how many writes may be outstanding at the API server at once.
//!
//! The API server's capacity is not configured anywhere the controller can read, so the writer measures it, the
//! way TCP Vegas and Netflix's concurrency-limits do. Little's law ties the three numbers together: throughput =
//! concurrency / latency. While the server has spare seats, more concurrency brings more throughput at the same
//! latency; past that point the extra requests only wait in the server's queues (API Priority and Fairness),
//! latency grows and throughput does not. So:
//!
//! * every window of about one round trip (as many completions as the limit), the average latency of the window
//!   is compared with the lowest window average seen so far (the latency of an unloaded server):
//!   `queued ≈ limit × (1 − best / average)` estimates how many of our requests are waiting rather than being
//!   served. Below `alpha` the limit grows, above `beta` it shrinks (both ∝ log10 of the limit, as in
//!   concurrency-limits' Vegas), so the writer keeps only a few requests queued at the server and its latency
//!   stays near the unloaded latency;
//! * it starts with slow start — doubling per window until the first sign of congestion — so a cold start
//!   reaches the server's capacity within a few round trips;
//! * a 429, a 5xx or a failed connection halves the limit, once per round trip: a congestion signal about a
//!   request sent before the last decrease does not decrease it again (as TCP reacts once per window). The limit
//!   at which it happened becomes a plateau: growing back to it waits `plateau_hold` after the decrease, twice as
//!   long each time it is hit again (up to a minute), and a window passed at or above it without congestion
//!   clears it — with `Retry-After` pausing every write for a second, a writer that walked into the server's
//!   queue limit every few round trips would spend most of its time paused;
//! * the limit only grows while it is actually used (at least half of it in flight), so a quiet period does not
//!   inflate it;
//! * the unloaded latency can only be seen while nothing queues, and a writer that started above the server's
//!   seats (or settled a little above them) never sees it: its estimate of the queue is then short by the
//!   difference. So, as BBR's ProbeRTT does, about every `probe_interval` (first shortly after slow start) the
//!   limit is halved for one window — counting only writes sent after the halving — to measure the latency with
//!   less queued, then restored. The best latency only ever goes down: a server that became slower for good
//!   leaves the writer with a lower limit than it could have, never with an overloaded server.
//!
//! Averages over a window rather than single samples, and the best *window average* rather than the fastest
//! single answer: a fast 404 or 409 (no etcd commit) must not read as "the unloaded latency" and make every
//! ordinary write look queued.

use std::time::{Duration, Instant};

/// Tuning of the concurrency limit.
#[derive(Debug, Clone)]
pub struct LimitConfig {
    /// Limit at start.
    pub initial: usize,
    /// Lowest limit.
    pub min: usize,
    /// Highest limit.
    pub max: usize,
    /// Grow while fewer than `alpha × max(1, log10 limit)` requests are estimated queued at the server.
    pub alpha: f64,
    /// Shrink while more than `beta × max(1, log10 limit)` are.
    pub beta: f64,
    /// Factor applied on a 429, 5xx or connection failure.
    pub backoff: f64,
    /// Fewest completions in a window.
    pub min_window: usize,
    /// Time between two probes of the unloaded latency (jittered ±25%).
    pub probe_interval: Duration,
    /// Time after a decrease before the limit may grow back to where congestion happened.
    pub plateau_hold: Duration,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            initial: 16,
            min: 1,
            // kube-apiserver serves at most 200 mutating requests at once without API Priority and Fairness
            // (--max-mutating-requests-inflight) and ~245 seats for all service accounts with it (workload-low);
            // a controller holding more than that only queues.
            max: 256,
            alpha: 3.0,
            beta: 6.0,
            backoff: 0.5,
            min_window: 8,
            probe_interval: Duration::from_secs(10),
            plateau_hold: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Default)]
struct Window {
    count: usize,
    total: Duration,
    max_in_flight: usize,
}

/// The concurrency limit and what it has learnt.
#[derive(Debug)]
pub struct ConcurrencyLimit {
    config: LimitConfig,
    limit: f64,
    slow_start: bool,
    /// Lowest window-average latency seen: the server's latency when our requests do not queue.
    best: Option<Duration>,
    /// Latest window average.
    latest: Option<Duration>,
    window: Window,
    last_decrease: Option<Instant>,
    /// When the next probe starts (set when slow start ends).
    next_probe: Option<Instant>,
    /// While probing: when it started and the limit to restore.
    probing: Option<(Instant, f64)>,
    /// The limit at the last congestion, and how long after a decrease the limit may reach it again.
    plateau: Option<(f64, Duration)>,
}

impl ConcurrencyLimit {
    /// Starts at `config.initial`, in slow start.
    pub fn new(config: LimitConfig) -> Self {
        let limit = (config.initial.clamp(config.min.max(1), config.max.max(1))) as f64;
        ConcurrencyLimit {
            config,
            limit,
            slow_start: true,
            best: None,
            latest: None,
            window: Window::default(),
            last_decrease: None,
            next_probe: None,
            probing: None,
            plateau: None,
        }
    }

    /// Writes that may be outstanding now.
    pub fn limit(&self) -> usize {
        (self.limit as usize).max(1)
    }

    /// The latest window's average latency.
    pub fn latency(&self) -> Option<Duration> {
        self.latest
    }

    /// A write sent at `sent` was answered without a congestion signal after `latency`, with `in_flight` writes
    /// outstanding (itself included) when it was sent.
    pub fn on_success(&mut self, sent: Instant, latency: Duration, in_flight: usize, now: Instant) {
        if self.probing.is_some_and(|(started, _)| sent < started) {
            return; // queued before the probe halved the limit: says nothing about the halved limit
        }
        let w = &mut self.window;
        w.count += 1;
        w.total += latency;
        w.max_in_flight = w.max_in_flight.max(in_flight);
        if w.count < self.limit().max(self.config.min_window) {
            return;
        }
        let window = std::mem::take(&mut self.window);
        let average = window.total / window.count as u32;
        self.latest = Some(average);
        let best = self.best.map_or(average, |best| best.min(average));
        self.best = Some(best);
        if let Some((_, restore)) = self.probing.take() {
            self.limit = restore;
            self.schedule_probe(now);
            return;
        }
        if self.next_probe.is_some_and(|at| now >= at) {
            self.probing = Some((now, self.limit));
            self.limit = (self.limit / 2.0).max(self.config.min.max(1) as f64);
            return;
        }
        if let Some((plateau, _)) = self.plateau
            && self.limit >= plateau
        {
            self.plateau = None; // a whole window at the old congestion point without congestion
        }
        let queued = self.limit * (1.0 - best.as_secs_f64() / average.as_secs_f64().max(f64::MIN_POSITIVE));
        let scale = self.limit.log10().max(1.0);
        if queued > self.config.beta * scale {
            self.end_slow_start(now);
            self.limit -= scale;
        } else if queued < self.config.alpha * scale && window.max_in_flight * 2 >= self.limit() {
            // Grow only while the limit is what holds the writer back.
            let grown = if self.slow_start { self.limit * 2.0 } else { self.limit + scale };
            self.limit = match self.plateau {
                Some((plateau, hold))
                    if self.last_decrease.is_some_and(|t| now.saturating_duration_since(t) < hold) =>
                {
                    grown.min(plateau - 1.0).max(self.limit)
                }
                _ => grown,
            };
        }
        self.clamp();
    }

    /// A write sent at `sent` was throttled (429), failed with a server error or did not get an answer.
    pub fn on_congestion(&mut self, sent: Instant, now: Instant) {
        if self.last_decrease.is_some_and(|t| sent < t) {
            return;
        }
        self.end_slow_start(now);
        // Congestion during a probe: back off from the limit the probe would have restored.
        let limit = self.probing.take().map_or(self.limit, |(_, restore)| restore);
        let hold = match self.plateau {
            Some((plateau, hold)) if limit >= plateau - 1.0 => (hold * 2).min(Duration::from_secs(60)),
            _ => self.config.plateau_hold,
        };
        self.plateau = Some((limit, hold));
        self.limit = limit * self.config.backoff;
        self.clamp();
        self.last_decrease = Some(now);
        self.window = Window::default();
    }

    fn end_slow_start(&mut self, now: Instant) {
        if self.slow_start {
            self.slow_start = false;
            // Soon: the first limits were set from latencies measured while connections were being opened and
            // perhaps while already queued.
            self.next_probe = Some(now + self.config.probe_interval / 10);
        }
    }

    fn schedule_probe(&mut self, now: Instant) {
        let jitter = 0.75 + rand::random::<f64>() / 2.0;
        self.next_probe = Some(now + self.config.probe_interval.mul_f64(jitter));
    }

    fn clamp(&mut self) {
        self.limit = self.limit.clamp(self.config.min.max(1) as f64, self.config.max.max(1) as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A server with `seats` seats and `service` time per request: requests beyond the seats queue, so a
    /// window's average latency is `service × max(1, limit / seats)`. Simulated time advances one latency per
    /// window, from `clock`.
    fn run(
        limit: &mut ConcurrencyLimit,
        seats: usize,
        service: Duration,
        windows: usize,
        clock: &mut Instant,
    ) {
        for _ in 0..windows {
            let n = limit.limit();
            let latency = service.mul_f64((n as f64 / seats as f64).max(1.0));
            let sent = *clock;
            *clock += latency;
            for _ in 0..n.max(8) {
                limit.on_success(sent, latency, n, *clock);
            }
        }
    }

    fn no_probes() -> LimitConfig {
        LimitConfig { probe_interval: Duration::from_secs(1_000_000), ..LimitConfig::default() }
    }

    #[test]
    fn slow_start_doubles_until_the_server_queues_then_settles_near_its_seats() {
        let clock = &mut Instant::now();
        let mut l = ConcurrencyLimit::new(LimitConfig::default());
        run(&mut l, 1000, ms(5), 3, clock);
        assert_eq!(l.limit(), 128, "16 → 32 → 64 → 128 while nothing queues");
        let mut l = ConcurrencyLimit::new(no_probes());
        run(&mut l, 40, ms(5), 200, clock);
        let settled = l.limit();
        assert!((40..=60).contains(&settled), "a few requests beyond 40 seats, got {settled}");
    }

    /// Started above the server's 8 seats, the writer never sees the unloaded latency without probing and keeps
    /// more requests queued than it means to; a probe finds it.
    #[test]
    fn probing_finds_the_unloaded_latency_it_started_above() {
        let start_above = LimitConfig { initial: 16, ..LimitConfig::default() };
        let clock = &mut Instant::now();
        let mut blind = ConcurrencyLimit::new(LimitConfig {
            probe_interval: Duration::from_secs(1_000_000),
            ..start_above.clone()
        });
        run(&mut blind, 8, ms(5), 2_000, clock);
        let mut probing = ConcurrencyLimit::new(start_above);
        run(&mut probing, 8, ms(5), 2_000, clock);
        assert!(blind.limit() > 8 + 8, "queued beyond its target without probing: {}", blind.limit());
        assert!(probing.limit() <= 8 + 8, "near the seats after probing: {}", probing.limit());
        assert!(probing.best < blind.best, "{:?} measured, {:?} without probing", probing.best, blind.best);
    }

    #[test]
    fn congestion_halves_once_per_round_trip() {
        let t0 = Instant::now();
        let mut l = ConcurrencyLimit::new(LimitConfig::default());
        l.on_congestion(t0, t0 + ms(10));
        assert_eq!(l.limit(), 8);
        l.on_congestion(t0 + ms(5), t0 + ms(11));
        assert_eq!(l.limit(), 8, "sent before the decrease: already accounted for");
        l.on_congestion(t0 + ms(12), t0 + ms(20));
        assert_eq!(l.limit(), 4);
        for i in 0..10 {
            l.on_congestion(t0 + ms(100 + 10 * i), t0 + ms(105 + 10 * i));
        }
        assert_eq!(l.limit(), 1, "never below the floor");
    }

    #[test]
    fn after_congestion_it_grows_additively_and_only_while_used() {
        let t0 = Instant::now();
        let mut l = ConcurrencyLimit::new(LimitConfig::default());
        l.on_congestion(t0, t0);
        assert_eq!(l.limit(), 8);
        for _ in 0..8 {
            l.on_success(t0, ms(5), 1, t0 + ms(5));
        }
        assert_eq!(l.limit(), 8, "one write at a time says nothing about eight");
        for _ in 0..8 {
            l.on_success(t0, ms(5), 8, t0 + ms(10));
        }
        assert_eq!(l.limit(), 9, "additive, not slow start, after congestion");
    }

    /// 4 seats and 2 queued: 7 outstanding requests get a 429 (and a second's pause). The writer must not keep
    /// walking into it every few round trips.
    #[test]
    fn congestion_leaves_a_plateau_that_is_approached_ever_more_cautiously() {
        let t0 = Instant::now();
        let mut l = ConcurrencyLimit::new(LimitConfig { initial: 7, ..no_probes() });
        let mut now = t0;
        let mut congestions = Vec::new();
        for _ in 0..20_000 {
            let n = l.limit();
            now += ms(5);
            if n > 6 {
                congestions.push(now);
                l.on_congestion(now - ms(5), now);
                continue;
            }
            for _ in 0..n.max(8) {
                l.on_success(now - ms(5), ms(5), n, now);
            }
        }
        // 100 s simulated: 2 + 4 + 8 + 16 + 32 + 60 s between hits, so at most 6 or 7 of them.
        assert!(congestions.len() <= 7, "{} congestions", congestions.len());
        assert_eq!(l.limit(), 6, "holds just below the plateau");
    }

    #[test]
    fn a_slower_server_means_a_lower_limit() {
        let clock = &mut Instant::now();
        let mut l = ConcurrencyLimit::new(LimitConfig::default());
        run(&mut l, 100, ms(5), 100, clock);
        let before = l.limit();
        run(&mut l, 20, ms(5), 300, clock);
        assert!(l.limit() < before / 2, "{before} → {}", l.limit());
    }
}
