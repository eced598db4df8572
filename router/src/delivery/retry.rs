//! When to try a failed delivery again: exponential backoff, capped, with +-20% jitter.

use std::time::Duration;

use rand::Rng;

use crate::config::RetryConfig;

/// The decision after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait this long, then try again.
    RetryIn(Duration),
    /// The attempt budget is spent.
    GiveUp,
}

/// What to do after failed attempt number `attempt` (1-based) under `policy`.
pub fn after_failure(policy: &RetryConfig, attempt: u32, rng: &mut impl Rng) -> Next {
    if attempt >= policy.attempts {
        return Next::GiveUp;
    }
    let base = policy.backoff.0.as_secs_f64();
    let exp = base * 2f64.powi(attempt.saturating_sub(1).min(62) as i32);
    let capped = exp.min(policy.max_backoff.0.as_secs_f64());
    let jitter = rng.random_range(0.8..=1.2);
    Next::RetryIn(Duration::from_secs_f64(capped * jitter))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;
    use rand::SeedableRng;

    fn policy(attempts: u32) -> RetryConfig {
        RetryConfig {
            attempts,
            backoff: Dur(Duration::from_secs(2)),
            max_backoff: Dur(Duration::from_secs(60)),
        }
    }

    #[test]
    fn delay_doubles_within_jitter_and_is_capped() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (attempt, nominal) in [(1, 2.0), (2, 4.0), (3, 8.0), (5, 32.0), (9, 60.0)] {
            let Next::RetryIn(d) = after_failure(&policy(20), attempt, &mut rng) else {
                panic!("attempt {attempt} should retry");
            };
            let d = d.as_secs_f64();
            assert!(
                d >= nominal * 0.8 - 1e-9 && d <= nominal * 1.2 + 1e-9,
                "attempt {attempt}: {d}"
            );
        }
    }

    #[test]
    fn last_attempt_gives_up() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        assert_eq!(after_failure(&policy(3), 3, &mut rng), Next::GiveUp);
        assert_ne!(after_failure(&policy(3), 2, &mut rng), Next::GiveUp);
        assert_eq!(after_failure(&policy(1), 1, &mut rng), Next::GiveUp);
    }
}
