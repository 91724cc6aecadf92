//! Injected latency and failures: per-request delay (fixed ± jitter) and fault kinds drawn
//! from one seeded rng, so a run with the same arrival order gets the same faults.

use std::sync::Mutex;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latency {
    pub fixed: Duration,
    /// Uniform in `fixed - jitter ..= fixed + jitter` (never below zero).
    pub jitter: Duration,
}

impl Latency {
    pub fn new(fixed: Duration, jitter: Duration) -> Self {
        Latency { fixed, jitter }
    }
}

/// Probabilities are per request and checked in field order; their sum should be ≤ 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    pub seed: u64,
    pub fail_500: f64,
    pub fail_502: f64,
    /// Hold the response for `timeout_hold`, then answer 504, so the client's timeout fires.
    pub timeout: f64,
    /// Cut a valid 200 body in half.
    pub truncate: f64,
    /// A 200 whose body is not JSON.
    pub malformed: f64,
    /// A 400 validation error in AniList's shape: a permanent failure the client must not retry.
    pub reject: f64,
    pub timeout_hold: Duration,
    /// A 403 outage starting this long after the server starts...
    pub outage_at: Option<Duration>,
    /// ...and lasting this long.
    pub outage_for: Duration,
    /// Ignore `media(type: …)` filters: a query for ANIME may get MANGA records back, as a
    /// misbehaving upstream might answer.
    pub ignore_type_filter: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            seed: 0,
            fail_500: 0.0,
            fail_502: 0.0,
            timeout: 0.0,
            truncate: 0.0,
            malformed: 0.0,
            reject: 0.0,
            timeout_hold: Duration::from_secs(30),
            outage_at: None,
            outage_for: Duration::from_secs(60),
            ignore_type_filter: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Status500,
    Status502,
    Timeout,
    Truncated,
    Malformed,
    Rejected,
}

/// The seeded source of delays and faults.
#[derive(Debug)]
pub struct Dice {
    rng: Mutex<ChaCha8Rng>,
    latency: Latency,
    faults: Faults,
}

impl Dice {
    pub fn new(latency: Latency, faults: Faults) -> Self {
        Dice {
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(faults.seed)),
            latency,
            faults,
        }
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Always draws the same number of values, so one request's outcome does not shift
    /// the next one's.
    pub fn roll(&self) -> (Duration, Option<FaultKind>) {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let spread: f64 = rng.random_range(-1.0..=1.0);
        let fault_roll: f64 = rng.random();
        drop(rng);
        let l = &self.latency;
        let delay = (l.fixed.as_secs_f64() + spread * l.jitter.as_secs_f64()).max(0.0);
        let f = &self.faults;
        let kinds = [
            (f.fail_500, FaultKind::Status500),
            (f.fail_502, FaultKind::Status502),
            (f.timeout, FaultKind::Timeout),
            (f.truncate, FaultKind::Truncated),
            (f.malformed, FaultKind::Malformed),
            (f.reject, FaultKind::Rejected),
        ];
        let mut acc = 0.0;
        let mut fault = None;
        for (p, kind) in kinds {
            acc += p.max(0.0);
            if fault_roll < acc {
                fault = Some(kind);
                break;
            }
        }
        (
            Duration::try_from_secs_f64(delay).unwrap_or_default(),
            fault,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_faults_and_rates_roughly_hold() {
        let faults = Faults {
            seed: 3,
            fail_500: 0.25,
            malformed: 0.25,
            ..Faults::default()
        };
        let a = Dice::new(Latency::default(), faults.clone());
        let b = Dice::new(Latency::default(), faults);
        let rolls_a: Vec<_> = (0..400).map(|_| a.roll().1).collect();
        let rolls_b: Vec<_> = (0..400).map(|_| b.roll().1).collect();
        assert_eq!(rolls_a, rolls_b);
        let n500 = rolls_a
            .iter()
            .filter(|f| **f == Some(FaultKind::Status500))
            .count();
        assert!((60..140).contains(&n500), "{n500}");
        assert!(rolls_a.iter().all(|f| f != &Some(FaultKind::Timeout)));
    }

    #[test]
    fn jitter_stays_in_bounds() {
        let d = Dice::new(
            Latency::new(Duration::from_millis(100), Duration::from_millis(30)),
            Faults::default(),
        );
        for _ in 0..200 {
            let (delay, _) = d.roll();
            assert!(delay >= Duration::from_millis(70) && delay <= Duration::from_millis(130));
        }
    }
}
