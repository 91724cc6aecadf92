//! Named failure points: places in the pipeline where a test can make a commit fail, a task
//! panic or a step stall, deterministically, instead of guessing at timings. Unarmed points
//! cost one relaxed atomic load.
//!
//! Points: `flusher.commit` (the flush's transaction fails), `flusher.committed` (right after
//! the commit, before the next level is pushed and the jobs acknowledged), `flusher.panic`,
//! `batcher.panic`, `handler.panic`, `fetch.stall` (a sent request's answer is held until
//! shutdown), `fetch.crash` (the process aborts once a request is sent), `store.enqueue`
//! (PostgreSQL: the flush's in-transaction push of its next jobs fails).
//! The CLI arms them from `FRANCHISE_FAILPOINTS`, e.g. `flusher.commit=error*3;handler.panic=panic*1`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A failure-point spec that does not parse, saying which part and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FailPointSpecError(String);

/// What an armed point does when it is hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailAction {
    /// The operation fails as if the backend had refused it.
    Error,
    /// The task panics.
    Panic,
    /// The operation never completes (until shutdown).
    Stall,
    /// The whole process aborts, as a crash (or the OOM killer) would end it.
    Crash,
}

#[derive(Debug, Clone, Copy)]
struct Arm {
    action: FailAction,
    /// Hits left before it disarms; None = every hit.
    remaining: Option<u32>,
}

/// A set of failure points, shared by every task of one `Importer`. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct FailPoints {
    any: Arc<AtomicBool>,
    arms: Arc<Mutex<HashMap<String, Arm>>>,
    hits: Arc<Mutex<HashMap<String, u64>>>,
}

impl FailPoints {
    pub fn new() -> Self {
        Self::default()
    }

    /// Arms `name` to do `action` on its next `times` hits (None: every hit).
    pub fn arm(&self, name: &str, action: FailAction, times: Option<u32>) {
        self.lock_arms().insert(
            name.to_string(),
            Arm {
                action,
                remaining: times,
            },
        );
        self.any.store(true, Ordering::Relaxed);
    }

    pub fn disarm(&self, name: &str) {
        self.lock_arms().remove(name);
    }

    /// How many times `name` fired.
    pub fn fired(&self, name: &str) -> u64 {
        self.hits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Parses `name=action[*times];…`, where action is `error`, `panic`, `stall` or `crash`.
    pub fn parse(spec: &str) -> Result<Self, FailPointSpecError> {
        let points = Self::new();
        for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, rest) = part.split_once('=').ok_or_else(|| {
                FailPointSpecError(format!(
                    "failure point {part:?}: expected name=action[*times]"
                ))
            })?;
            let (action, times) = match rest.split_once('*') {
                Some((a, t)) => {
                    let times = t.parse::<u32>().map_err(|_| {
                        FailPointSpecError(format!(
                            "failure point {part:?}: {t:?} is not a whole number of hits"
                        ))
                    })?;
                    (a, Some(times))
                }
                None => (rest, None),
            };
            let action = match action {
                "error" => FailAction::Error,
                "panic" => FailAction::Panic,
                "stall" => FailAction::Stall,
                "crash" => FailAction::Crash,
                other => {
                    return Err(FailPointSpecError(format!(
                        "failure point {part:?}: unknown action {other:?} (expected error, \
                         panic, stall or crash)"
                    )));
                }
            };
            points.arm(name.trim(), action, times);
        }
        Ok(points)
    }

    fn lock_arms(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arm>> {
        self.arms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `name` fires now, and how.
    pub(crate) fn hit(&self, name: &str) -> Option<FailAction> {
        if !self.any.load(Ordering::Relaxed) {
            return None;
        }
        let mut arms = self.lock_arms();
        let arm = arms.get_mut(name)?;
        let action = arm.action;
        match arm.remaining.as_mut() {
            Some(0) => return None,
            Some(n) => *n -= 1,
            None => {}
        }
        drop(arms);
        *self
            .hits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_string())
            .or_default() += 1;
        Some(action)
    }

    /// Panics (or aborts the process) if `name` is armed to; otherwise says whether it is
    /// armed to fail.
    pub(crate) fn check(&self, name: &str) -> Option<FailAction> {
        match self.hit(name) {
            Some(FailAction::Panic) => panic!("failure point {name} fired"),
            Some(FailAction::Crash) => {
                eprintln!("failure point {name} fired: aborting the process");
                std::process::abort()
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armed_points_fire_the_given_number_of_times() {
        let points = FailPoints::parse("a=error*2; b=panic").unwrap();
        assert_eq!(points.hit("a"), Some(FailAction::Error));
        assert_eq!(points.hit("a"), Some(FailAction::Error));
        assert_eq!(points.hit("a"), None);
        assert_eq!(points.fired("a"), 2);
        assert_eq!(points.hit("b"), Some(FailAction::Panic));
        assert_eq!(points.hit("b"), Some(FailAction::Panic));
        assert_eq!(points.hit("c"), None);
    }

    #[test]
    fn bad_specs_name_the_bad_part() {
        for (spec, needle) in [
            ("a", "expected name=action"),
            ("a=boom", "unknown action \"boom\""),
            ("a=error*x", "\"x\" is not a whole number"),
        ] {
            let err = FailPoints::parse(spec).unwrap_err().to_string();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }
}
