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
//!   request sent before the last decrease does not decrease it again (as TCP reacts once per window);
//! * the limit only grows while it is actually used (at least half of it in flight), so a quiet period does not
//!   inflate it.
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

    /// A write answered without a congestion signal after `latency`, with `in_flight` writes outstanding
    /// (itself included) when it was sent.
    pub fn on_success(&mut self, latency: Duration, in_flight: usize) {
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
        let best = *self.best.get_or_insert(average);
        if average < best {
            self.best = Some(average);
        }
        let best = best.min(average).as_secs_f64();
        let queued = self.limit * (1.0 - best / average.as_secs_f64().max(f64::MIN_POSITIVE));
        let scale = self.limit.log10().max(1.0);
        if queued > self.config.beta * scale {
            self.slow_start = false;
            self.limit -= scale;
        } else if queued < self.config.alpha * scale && window.max_in_flight * 2 >= self.limit() {
            // Grow only while the limit is what holds the writer back.
            if self.slow_start {
                self.limit *= 2.0;
            } else {
                self.limit += scale;
            }
        }
        self.clamp();
    }

    /// A write sent at `sent` was throttled (429), failed with a server error or did not get an answer.
    pub fn on_congestion(&mut self, sent: Instant, now: Instant) {
        if self.last_decrease.is_some_and(|t| sent < t) {
            return;
        }
        self.slow_start = false;
        self.limit *= self.config.backoff;
        self.clamp();
        self.last_decrease = Some(now);
        self.window = Window::default();
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
    /// window's average latency is `service × max(1, limit / seats)`.
    fn run(limit: &mut ConcurrencyLimit, seats: usize, service: Duration, windows: usize) {
        for _ in 0..windows {
            let n = limit.limit();
            let latency = service.mul_f64((n as f64 / seats as f64).max(1.0));
            for _ in 0..n.max(8) {
                limit.on_success(latency, n);
            }
        }
    }

    #[test]
    fn slow_start_doubles_until_the_server_queues_then_settles_near_its_seats() {
        let mut l = ConcurrencyLimit::new(LimitConfig::default());
        run(&mut l, 1000, ms(5), 3);
        assert_eq!(l.limit(), 128, "16 → 32 → 64 → 128 while nothing queues");
        let mut l = ConcurrencyLimit::new(LimitConfig::default());
        run(&mut l, 40, ms(5), 200);
        let settled = l.limit();
        assert!((40..=60).contains(&settled), "a few requests beyond 40 seats, got {settled}");
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
            l.on_success(ms(5), 1);
        }
        assert_eq!(l.limit(), 8, "one write at a time says nothing about eight");
        for _ in 0..8 {
            l.on_success(ms(5), 8);
        }
        assert_eq!(l.limit(), 9, "additive, not slow start, after congestion");
    }

    #[test]
    fn a_slower_server_means_a_lower_limit() {
        let mut l = ConcurrencyLimit::new(LimitConfig::default());
        run(&mut l, 100, ms(5), 100);
        let before = l.limit();
        run(&mut l, 20, ms(5), 300);
        assert!(l.limit() < before / 2, "{before} → {}", l.limit());
    }
}
