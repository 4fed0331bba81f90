//! Adaptive write rate: additive increase, multiplicative decrease.
//!
//! The writer starts at the configured ceiling (upstream's `--apiserver-qps-throttle`). Throttling (429), server
//! errors (5xx) and slow responses halve the rate (at most once per cool-down, so one burst of errors does not
//! collapse it to the floor); each run of successes probes upward by a step until the ceiling.

use std::time::{Duration, Instant};

/// Tuning of the rate controller.
#[derive(Debug, Clone)]
pub struct RateConfig {
    /// Highest rate, writes per second.
    pub max_rate: f64,
    /// Lowest rate the controller backs off to.
    pub min_rate: f64,
    /// Burst allowance as a multiple of the current rate.
    pub burst_factor: f64,
    /// A response slower than this counts as a congestion signal.
    pub slow_response: Duration,
    /// Minimum time between two decreases.
    pub cool_down: Duration,
    /// Successes needed for one increase step.
    pub successes_per_step: u32,
    /// Increase per step, as a fraction of `max_rate`.
    pub step_fraction: f64,
}

impl RateConfig {
    /// Defaults around a ceiling of `max_rate` writes per second.
    pub fn with_max(max_rate: f64) -> Self {
        RateConfig {
            max_rate,
            min_rate: (max_rate / 50.0).max(1.0),
            burst_factor: 1.5,
            slow_response: Duration::from_secs(1),
            cool_down: Duration::from_millis(500),
            successes_per_step: 20,
            step_fraction: 0.05,
        }
    }
}

/// How one write went, as far as the rate is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Succeeded (or failed for a reason unrelated to load) in the given time.
    Ok(Duration),
    /// 429, 5xx, or a timeout / connection failure.
    Congested,
}

/// Token bucket whose refill rate adapts to congestion signals.
#[derive(Debug)]
pub struct AdaptiveRate {
    config: RateConfig,
    rate: f64,
    tokens: f64,
    last_refill: Instant,
    last_decrease: Option<Instant>,
    successes: u32,
}

impl AdaptiveRate {
    /// Starts at the ceiling with a full burst.
    pub fn new(config: RateConfig, now: Instant) -> Self {
        let rate = config.max_rate;
        AdaptiveRate {
            tokens: rate * config.burst_factor,
            rate,
            config,
            last_refill: now,
            last_decrease: None,
            successes: 0,
        }
    }

    /// Current rate, writes per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Takes a token if one is available; otherwise says how long until one is.
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }

    /// Feeds back the outcome of one write.
    pub fn observe(&mut self, signal: Signal, now: Instant) {
        let congested = match signal {
            Signal::Congested => true,
            Signal::Ok(latency) => latency >= self.config.slow_response,
        };
        if congested {
            self.successes = 0;
            let cooled = self.last_decrease.is_none_or(|t| now.duration_since(t) >= self.config.cool_down);
            if cooled {
                self.refill(now);
                self.rate = (self.rate / 2.0).max(self.config.min_rate);
                self.tokens = self.tokens.min(self.rate * self.config.burst_factor);
                self.last_decrease = Some(now);
            }
        } else {
            self.successes += 1;
            if self.successes >= self.config.successes_per_step {
                self.successes = 0;
                self.refill(now);
                self.rate =
                    (self.rate + self.config.max_rate * self.config.step_fraction).min(self.config.max_rate);
            }
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last_refill).as_secs_f64();
        self.last_refill = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate * self.config.burst_factor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn burst_then_steady_rate() {
        let t0 = Instant::now();
        let mut r = AdaptiveRate::new(RateConfig::with_max(10.0), t0);
        for _ in 0..15 {
            r.try_acquire(t0).unwrap();
        }
        let wait = r.try_acquire(t0).unwrap_err();
        assert_eq!(wait, ms(100));
        r.try_acquire(t0 + ms(100)).unwrap();
    }

    #[test]
    fn congestion_halves_once_per_cool_down_and_floors() {
        let t0 = Instant::now();
        let mut r = AdaptiveRate::new(RateConfig::with_max(100.0), t0);
        r.observe(Signal::Congested, t0);
        r.observe(Signal::Congested, t0 + ms(10));
        assert_eq!(r.rate(), 50.0, "a burst of errors counts once");
        r.observe(Signal::Congested, t0 + ms(600));
        assert_eq!(r.rate(), 25.0);
        for i in 0..20 {
            r.observe(Signal::Congested, t0 + ms(1200 + 600 * i));
        }
        assert_eq!(r.rate(), 2.0, "never below the floor");
    }

    #[test]
    fn slow_responses_are_congestion() {
        let t0 = Instant::now();
        let mut r = AdaptiveRate::new(RateConfig::with_max(100.0), t0);
        r.observe(Signal::Ok(Duration::from_secs(2)), t0);
        assert_eq!(r.rate(), 50.0);
    }

    #[test]
    fn successes_probe_back_up_to_the_ceiling() {
        let t0 = Instant::now();
        let mut r = AdaptiveRate::new(RateConfig::with_max(100.0), t0);
        r.observe(Signal::Congested, t0);
        assert_eq!(r.rate(), 50.0);
        for _ in 0..20 {
            r.observe(Signal::Ok(ms(5)), t0);
        }
        assert_eq!(r.rate(), 55.0);
        for _ in 0..20 * 100 {
            r.observe(Signal::Ok(ms(5)), t0);
        }
        assert_eq!(r.rate(), 100.0);
    }
}
