//! AniList's rate limiter as observed: a fixed window counted from its first request, a
//! burst limit, and a ban announced by `Retry-After` during which every request gets 429.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the limiter enforces. `advertised_limit` is what the headers claim; in degraded mode
/// the real limit is lower, as on AniList since 2025 (headers say 90, 429 at Remaining 60).
#[derive(Debug, Clone, PartialEq)]
pub struct RateModel {
    /// `false` turns limiting off entirely (no headers, no 429s except forced ones).
    pub enabled: bool,
    pub advertised_limit: u32,
    pub real_limit: u32,
    /// Fixed window, starting at the window's first request.
    pub window: Duration,
    /// More than `burst` requests within `burst_window` is a 429.
    pub burst: u32,
    pub burst_window: Duration,
    /// Ban length; also the `Retry-After` value sent when the ban starts.
    pub ban_secs: u64,
    /// A `Retry-After` that lies: sent when a ban starts instead of `ban_secs`, as a broken
    /// proxy or a hostile answer might (`86400` for a ban of a second).
    pub announced_secs: Option<u64>,
}

impl Default for RateModel {
    fn default() -> Self {
        RateModel::normal()
    }
}

impl RateModel {
    /// The documented limit: 90 a minute, headers truthful.
    pub fn normal() -> Self {
        RateModel {
            enabled: true,
            advertised_limit: 90,
            real_limit: 90,
            window: Duration::from_secs(60),
            burst: 6,
            burst_window: Duration::from_secs(1),
            ban_secs: 60,
            announced_secs: None,
        }
    }

    /// Headers say 90 while only 30 a window are allowed.
    pub fn degraded() -> Self {
        RateModel {
            real_limit: 30,
            ..RateModel::normal()
        }
    }

    pub fn disabled() -> Self {
        RateModel {
            enabled: false,
            ..RateModel::normal()
        }
    }

    /// Scales time down for tests: the burst window stays 1/60 of the window.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self.burst_window = window / 60;
        self
    }

    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = burst;
        self
    }

    /// Announce `secs` in the `Retry-After` of a ban's first 429, whatever the ban's length.
    pub fn announce_secs(mut self, secs: u64) -> Self {
        self.announced_secs = Some(secs);
        self
    }

    pub fn ban_secs(mut self, secs: u64) -> Self {
        self.ban_secs = secs;
        self
    }

    pub fn real_limit(mut self, limit: u32) -> Self {
        self.real_limit = limit;
        self
    }
}

/// `t + d`, saturating at a century ahead instead of panicking on absurd configured lengths.
pub fn after(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(t)
}

/// The verdict for one arriving request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Serve it, with these `X-RateLimit-*` header values.
    Allow { limit: u32, remaining: u32 },
    /// Serve it without rate-limit headers (limiting disabled).
    Unlimited,
    /// Answer 429 with `Retry-After: retry_after`.
    Limited { retry_after: u64, during_ban: bool },
}

#[derive(Debug, Default)]
struct State {
    window_start: Option<Instant>,
    used: u32,
    recent: std::collections::VecDeque<Instant>,
    ban_until: Option<Instant>,
    forced: bool,
}

#[derive(Debug)]
pub struct RateLimiter {
    model: RateModel,
    state: Mutex<State>,
}

impl RateLimiter {
    pub fn new(model: RateModel) -> Self {
        RateLimiter {
            model,
            state: Mutex::new(State::default()),
        }
    }

    pub fn model(&self) -> &RateModel {
        &self.model
    }

    /// The next request gets a 429 and starts a ban, whatever the counts.
    pub fn force(&self) {
        self.lock().forced = true;
    }

    /// Forgets the window, burst history and any ban.
    pub fn reset(&self) {
        *self.lock() = State::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn check(&self, now: Instant) -> Decision {
        let m = &self.model;
        let mut s = self.lock();
        if let Some(until) = s.ban_until {
            if now < until {
                let left = until.duration_since(now).as_secs_f64().ceil() as u64;
                return Decision::Limited {
                    retry_after: left.max(1),
                    during_ban: true,
                };
            }
            // The ban is over: start afresh, as AniList does.
            *s = State::default();
        }
        let ban = |s: &mut State| {
            s.ban_until = Some(after(now, Duration::from_secs(m.ban_secs)));
            s.forced = false;
            Decision::Limited {
                retry_after: m.announced_secs.unwrap_or(m.ban_secs),
                during_ban: false,
            }
        };
        if s.forced {
            return ban(&mut s);
        }
        if !m.enabled {
            return Decision::Unlimited;
        }
        if s.window_start
            .is_none_or(|start| now >= after(start, m.window))
        {
            s.window_start = Some(now);
            s.used = 0;
        }
        while s
            .recent
            .front()
            .is_some_and(|&t| now.duration_since(t) >= m.burst_window)
        {
            s.recent.pop_front();
        }
        s.recent.push_back(now);
        s.used += 1;
        if s.recent.len() > m.burst as usize || s.used > m.real_limit {
            return ban(&mut s);
        }
        Decision::Allow {
            limit: m.advertised_limit,
            remaining: m.advertised_limit.saturating_sub(s.used),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degraded_window_bans_the_31st_and_recovers() {
        let limiter = RateLimiter::new(RateModel::degraded().burst(1000));
        let t0 = Instant::now();
        for i in 1..=30u32 {
            let d = limiter.check(t0 + Duration::from_millis(u64::from(i) * 100));
            assert_eq!(
                d,
                Decision::Allow {
                    limit: 90,
                    remaining: 90 - i
                }
            );
        }
        let at = t0 + Duration::from_millis(3100);
        assert_eq!(
            limiter.check(at),
            Decision::Limited {
                retry_after: 60,
                during_ban: false
            }
        );
        assert!(matches!(
            limiter.check(at + Duration::from_secs(30)),
            Decision::Limited {
                retry_after: 30,
                during_ban: true
            }
        ));
        assert_eq!(
            limiter.check(at + Duration::from_secs(60)),
            Decision::Allow {
                limit: 90,
                remaining: 89
            }
        );
    }

    #[test]
    fn burst_over_limit_within_a_second_is_banned() {
        let limiter = RateLimiter::new(RateModel::normal().burst(3));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(matches!(
                limiter.check(t0 + Duration::from_millis(i * 10)),
                Decision::Allow { .. }
            ));
        }
        assert!(matches!(
            limiter.check(t0 + Duration::from_millis(40)),
            Decision::Limited {
                during_ban: false,
                ..
            }
        ));
    }
}
