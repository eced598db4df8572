//! When to try a failed delivery again: a schedule of delays or exponential backoff, with
//! +-20% jitter, a `Retry-After` floor, and an optional maximum age.

use std::time::Duration;

use rand::Rng;

use crate::config::{DEFAULT_SCHEDULE, RetryConfig};

/// The decision after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Wait this long, then try again.
    RetryIn(Duration),
    /// Stop: the delivery becomes a dead letter for this reason.
    GiveUp(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Delays {
    /// The delay before retry k is `schedule[k-1]`.
    Schedule(Vec<Duration>),
    /// `backoff * 2^(k-1)`, capped at `max`, for `attempts` attempts in all.
    Exponential {
        attempts: u32,
        backoff: Duration,
        max: Duration,
    },
}

/// A destination's retry policy, built from its `retry` table.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    delays: Delays,
    max_age: Option<Duration>,
    max_retry_after: Duration,
}

const JITTER: f64 = 0.2;

impl RetryPolicy {
    /// The policy a `retry` table describes (already validated).
    pub fn new(config: &RetryConfig) -> RetryPolicy {
        let delays = match (&config.schedule, config.backoff) {
            (Some(schedule), _) => Delays::Schedule(schedule.iter().map(|d| d.0).collect()),
            (None, Some(backoff)) => Delays::Exponential {
                attempts: config.attempts.unwrap_or(12),
                backoff: backoff.0,
                max: config
                    .max_backoff
                    .map_or(Duration::from_secs(3600), |d| d.0),
            },
            (None, None) => Delays::Schedule(
                DEFAULT_SCHEDULE
                    .iter()
                    .map(|s| Duration::from_secs(*s))
                    .collect(),
            ),
        };
        RetryPolicy {
            delays,
            max_age: config.max_age.map(|d| d.0),
            max_retry_after: config
                .max_retry_after
                .map_or(Duration::from_secs(3600), |d| d.0),
        }
    }

    /// Attempts in all, the first included.
    pub fn attempts(&self) -> u32 {
        match &self.delays {
            Delays::Schedule(s) => s.len() as u32 + 1,
            Delays::Exponential { attempts, .. } => *attempts,
        }
    }

    /// What to do after failed attempt `attempt` (1-based) of a delivery that is `age` old;
    /// `retry_after` is the destination's `Retry-After`, if it sent one.
    pub fn after_failure(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        age: Duration,
        rng: &mut impl Rng,
    ) -> Next {
        if attempt >= self.attempts() {
            return Next::GiveUp(format!("gave up after {attempt} attempts"));
        }
        let nominal = match &self.delays {
            Delays::Schedule(s) => s[(attempt as usize - 1).min(s.len() - 1)],
            Delays::Exponential { backoff, max, .. } => {
                let exp =
                    backoff.as_secs_f64() * 2f64.powi(attempt.saturating_sub(1).min(62) as i32);
                Duration::from_secs_f64(exp.min(max.as_secs_f64()))
            }
        };
        let jittered = nominal.mul_f64(rng.random_range(1.0 - JITTER..=1.0 + JITTER));
        let delay = match retry_after {
            Some(ra) => jittered.max(ra.min(self.max_retry_after)),
            None => jittered,
        };
        if let Some(max_age) = self.max_age
            && age + delay > max_age
        {
            return Next::GiveUp(format!(
                "gave up after {attempt} attempts: older than max_age {max_age:?}"
            ));
        }
        Next::RetryIn(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;
    use rand::SeedableRng;

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    fn secs(next: Next) -> f64 {
        match next {
            Next::RetryIn(d) => d.as_secs_f64(),
            Next::GiveUp(r) => panic!("gave up: {r}"),
        }
    }

    fn within_jitter(got: f64, nominal: f64) -> bool {
        got >= nominal * 0.8 - 1e-9 && got <= nominal * 1.2 + 1e-9
    }

    #[test]
    fn default_is_the_standard_webhooks_schedule() {
        let p = RetryPolicy::new(&RetryConfig::default());
        assert_eq!(p.attempts(), 8);
        for (attempt, nominal) in [
            (1, 5.0),
            (2, 300.0),
            (3, 1800.0),
            (4, 7200.0),
            (5, 18000.0),
            (6, 36000.0),
            (7, 36000.0),
        ] {
            let got = secs(p.after_failure(attempt, None, Duration::ZERO, &mut rng()));
            assert!(within_jitter(got, nominal), "attempt {attempt}: {got}");
        }
        assert_eq!(
            p.after_failure(8, None, Duration::ZERO, &mut rng()),
            Next::GiveUp("gave up after 8 attempts".into())
        );
    }

    #[test]
    fn exponential_doubles_and_is_capped() {
        let p = RetryPolicy::new(&RetryConfig {
            attempts: Some(20),
            backoff: Some(Dur(Duration::from_secs(2))),
            max_backoff: Some(Dur(Duration::from_secs(60))),
            ..Default::default()
        });
        for (attempt, nominal) in [(1, 2.0), (2, 4.0), (3, 8.0), (5, 32.0), (9, 60.0)] {
            let got = secs(p.after_failure(attempt, None, Duration::ZERO, &mut rng()));
            assert!(within_jitter(got, nominal), "attempt {attempt}: {got}");
        }
    }

    #[test]
    fn retry_after_is_a_floor_within_bounds() {
        let p = RetryPolicy::new(&RetryConfig {
            schedule: Some(vec![Dur(Duration::from_secs(1)); 3]),
            max_retry_after: Some(Dur(Duration::from_secs(120))),
            ..Default::default()
        });
        assert_eq!(
            secs(p.after_failure(1, Some(Duration::from_secs(30)), Duration::ZERO, &mut rng())),
            30.0
        );
        assert_eq!(
            secs(p.after_failure(
                1,
                Some(Duration::from_secs(86400)),
                Duration::ZERO,
                &mut rng()
            )),
            120.0
        );
    }

    #[test]
    fn max_age_gives_up_early() {
        let p = RetryPolicy::new(&RetryConfig {
            max_age: Some(Dur(Duration::from_secs(3600))),
            ..Default::default()
        });
        let next = p.after_failure(4, None, Duration::from_secs(1800), &mut rng());
        assert!(
            matches!(next, Next::GiveUp(ref r) if r.contains("max_age")),
            "{next:?}"
        );
        assert!(matches!(
            p.after_failure(1, None, Duration::from_secs(10), &mut rng()),
            Next::RetryIn(_)
        ));
    }
}
