//! Per-destination gates: a concurrency limit, a token-bucket rate limit and a circuit
//! breaker, so one slow or dead destination cannot take the workers of the others.

use std::time::{Duration, Instant};

use crate::config::{BreakerConfig, Rate};

/// The admission state of one destination.
#[derive(Debug, Clone)]
pub struct Gate {
    concurrency: usize,
    in_flight: usize,
    bucket: Option<TokenBucket>,
    breaker: Breaker,
}

/// Whether a destination can take an attempt now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Start it.
    Go,
    /// Not now; look again at this instant (or when an attempt finishes, if `None`).
    Wait(Option<Instant>),
}

impl Gate {
    /// A gate with these limits.
    pub fn new(concurrency: usize, rate: Option<Rate>, breaker: BreakerConfig) -> Gate {
        Gate {
            concurrency: concurrency.max(1),
            in_flight: 0,
            bucket: rate.map(TokenBucket::new),
            breaker: Breaker::new(breaker),
        }
    }

    /// Whether an attempt may start at `now`, without taking anything.
    pub fn check(&mut self, now: Instant) -> Admission {
        if self.in_flight >= self.concurrency {
            return Admission::Wait(None);
        }
        if let Some(until) = self.breaker.blocked_until(now, self.in_flight) {
            return Admission::Wait(until);
        }
        if let Some(bucket) = &mut self.bucket
            && let Some(at) = bucket.next_token(now)
        {
            return Admission::Wait(Some(at));
        }
        Admission::Go
    }

    /// Takes a slot for an attempt; call only after [`Gate::check`] said `Go`.
    pub fn start(&mut self, now: Instant) {
        self.in_flight += 1;
        if let Some(bucket) = &mut self.bucket {
            bucket.take(now);
        }
        self.breaker.started();
    }

    /// Records the end of an attempt and whether it succeeded.
    pub fn finish(&mut self, ok: bool, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.breaker.record(ok, now);
    }

    /// Whether the breaker is open (for logs and the admin view).
    pub fn is_open(&self, now: Instant) -> bool {
        self.breaker.open_until.is_some_and(|t| t > now)
    }
}

#[derive(Debug, Clone)]
struct TokenBucket {
    capacity: f64,
    tokens: f64,
    per_token: Duration,
    refilled: Option<Instant>,
}

impl TokenBucket {
    fn new(rate: Rate) -> TokenBucket {
        TokenBucket {
            capacity: rate.count as f64,
            tokens: rate.count as f64,
            per_token: rate.per / rate.count,
            refilled: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(last) = self.refilled {
            let gained =
                now.saturating_duration_since(last).as_secs_f64() / self.per_token.as_secs_f64();
            self.tokens = (self.tokens + gained).min(self.capacity);
        }
        self.refilled = Some(now);
    }

    /// `None` if a token is available now, else when the next one will be.
    fn next_token(&mut self, now: Instant) -> Option<Instant> {
        self.refill(now);
        if self.tokens >= 1.0 {
            None
        } else {
            Some(now + self.per_token.mul_f64(1.0 - self.tokens))
        }
    }

    fn take(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens - 1.0).max(0.0);
    }
}

/// Closed -> (N consecutive failures) -> open for `cooldown` -> half-open: one probe;
/// its success closes the circuit, its failure opens it again.
#[derive(Debug, Clone)]
struct Breaker {
    config: BreakerConfig,
    consecutive_failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

impl Breaker {
    fn new(config: BreakerConfig) -> Breaker {
        Breaker {
            config,
            consecutive_failures: 0,
            open_until: None,
            probing: false,
        }
    }

    /// `Some(wake)` while attempts must wait: open until `wake`, or half-open with the probe
    /// in flight (`None`: wake when it finishes).
    fn blocked_until(&self, now: Instant, in_flight: usize) -> Option<Option<Instant>> {
        match self.open_until {
            Some(until) if until > now => Some(Some(until)),
            Some(_) if self.probing || in_flight > 0 => Some(None),
            _ => None,
        }
    }

    fn started(&mut self) {
        if self.open_until.is_some() {
            self.probing = true;
        }
    }

    fn record(&mut self, ok: bool, now: Instant) {
        if ok {
            self.consecutive_failures = 0;
            self.open_until = None;
            self.probing = false;
            return;
        }
        self.consecutive_failures += 1;
        let tripped = self.config.failures > 0 && self.consecutive_failures >= self.config.failures;
        if tripped || self.probing {
            self.open_until = Some(now + self.config.cooldown.0);
            self.probing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;

    fn breaker(failures: u32) -> BreakerConfig {
        BreakerConfig {
            failures,
            cooldown: Dur(Duration::from_secs(30)),
        }
    }

    #[test]
    fn concurrency_limit_holds_attempts_until_one_finishes() {
        let now = Instant::now();
        let mut g = Gate::new(2, None, breaker(0));
        g.start(now);
        g.start(now);
        assert_eq!(g.check(now), Admission::Wait(None));
        g.finish(true, now);
        assert_eq!(g.check(now), Admission::Go);
    }

    #[test]
    fn rate_limit_spaces_attempts_after_the_burst() {
        let now = Instant::now();
        let mut g = Gate::new(
            100,
            Some(Rate {
                count: 2,
                per: Duration::from_secs(1),
            }),
            breaker(0),
        );
        for _ in 0..2 {
            assert_eq!(g.check(now), Admission::Go);
            g.start(now);
        }
        assert_eq!(
            g.check(now),
            Admission::Wait(Some(now + Duration::from_millis(500)))
        );
        assert_eq!(g.check(now + Duration::from_millis(500)), Admission::Go);
    }

    #[test]
    fn breaker_opens_then_lets_one_probe_through() {
        let t0 = Instant::now();
        let mut g = Gate::new(10, None, breaker(3));
        for _ in 0..3 {
            g.start(t0);
            g.finish(false, t0);
        }
        assert!(g.is_open(t0));
        assert_eq!(
            g.check(t0),
            Admission::Wait(Some(t0 + Duration::from_secs(30)))
        );
        let t1 = t0 + Duration::from_secs(31);
        assert_eq!(g.check(t1), Admission::Go, "half-open: one probe");
        g.start(t1);
        assert_eq!(
            g.check(t1),
            Admission::Wait(None),
            "only one probe at a time"
        );
        g.finish(false, t1);
        assert_eq!(
            g.check(t1),
            Admission::Wait(Some(t1 + Duration::from_secs(30))),
            "failed probe reopens"
        );
        let t2 = t1 + Duration::from_secs(31);
        g.start(t2);
        g.finish(true, t2);
        assert!(!g.is_open(t2));
        assert_eq!(g.check(t2), Admission::Go);
        g.start(t2);
        assert_eq!(g.check(t2), Admission::Go, "closed again: no probe limit");
    }
}
