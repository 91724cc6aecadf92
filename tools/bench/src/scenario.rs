//! The realistic scenario: a world with giant franchises of the measured sizes, the fake
//! AniList answering in 1 s ± 0.3 s under the degraded 30/min limit, and the physical limit
//! `T_min` a walk of each franchise cannot beat.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use fake_anilist::{FakeAniList, FakeConfig, Faults, Latency, RateModel, World, WorldSpec};

/// AniList's `Page` holds at most this many ids, so a level costs ⌈size / 50⌉ requests.
pub const PAGE: usize = 50;
/// Requests AniList allows per window while degraded.
pub const LIMIT_PER_WINDOW: usize = 30;

/// `--time-scale K`: divides latencies, the fake's windows and its ban by K (1 = real time).
#[derive(Debug, Clone, Copy)]
pub struct TimeScale(pub f64);

impl TimeScale {
    pub fn new(k: f64) -> anyhow::Result<Self> {
        if !(k.is_finite() && k >= 1.0) {
            bail!("--time-scale must be a number ≥ 1, got {k}");
        }
        Ok(Self(k))
    }

    pub fn is_real(self) -> bool {
        self.0 == 1.0
    }

    pub fn apply(self, d: Duration) -> Duration {
        d.div_f64(self.0)
    }

    /// The round trip the fake is configured for (its mean latency).
    pub fn rtt(self) -> Duration {
        self.apply(Duration::from_secs(1))
    }

    pub fn jitter(self) -> Duration {
        self.apply(Duration::from_millis(300))
    }

    pub fn window(self) -> Duration {
        self.apply(Duration::from_secs(60))
    }

    /// The ban in whole seconds (the fake sends `Retry-After` in seconds), at least 1.
    pub fn ban_secs(self) -> u64 {
        (60.0 / self.0).ceil().max(1.0) as u64
    }

    pub fn latency(self) -> Latency {
        Latency::new(self.rtt(), self.jitter())
    }

    /// AniList degraded: 30 per fixed window behind headers saying 90, a burst limit of 6 per
    /// 1/60 window, a ban on the first 429.
    pub fn rate(self) -> RateModel {
        RateModel::degraded()
            .window(self.window())
            .ban_secs(self.ban_secs())
    }
}

/// The realistic world and the roots of its giants by size.
pub struct Realistic {
    pub world: World,
    pub roots: BTreeMap<usize, i32>,
}

/// A world of 50 ordinary franchises plus one giant per requested size, with realistic depth.
pub fn realistic_world(seed: u64, sizes: &[usize]) -> anyhow::Result<Realistic> {
    let mut spec = WorldSpec::default().seed(seed).franchises(50).clean();
    for &size in sizes {
        spec = spec.giant(size, depth_for(size));
    }
    let world = spec.build();
    let giants: Vec<_> = world.giants().collect();
    if giants.len() != sizes.len() {
        bail!(
            "the world has {} giants, expected {}",
            giants.len(),
            sizes.len()
        );
    }
    let mut roots = BTreeMap::new();
    for (&size, giant) in sizes.iter().zip(giants) {
        let reach = world.walk(giant.root).len();
        if reach != size {
            bail!(
                "the {size}-anime giant (root {}) reaches {reach} anime",
                giant.root
            );
        }
        roots.insert(size, giant.root);
    }
    Ok(Realistic { world, roots })
}

/// Walk depth of a generated franchise of `size` anime: 10 → 2, 60 → 4, 300 → 12.
pub fn depth_for(size: usize) -> usize {
    match size {
        0..=1 => 0,
        2..=15 => 2,
        16..=100 => 4,
        101..=500 => 12,
        _ => 25,
    }
}

/// The shape of one walk and the time it cannot beat.
#[derive(Debug, Clone)]
pub struct Bound {
    pub anime: usize,
    /// Anime per level, depth 0 first.
    pub levels: Vec<usize>,
    /// Σ ⌈level / 50⌉: requests a batched walk needs.
    pub requests: usize,
    /// R · RTT.
    pub latency_bound: Duration,
    /// 0 if R ≤ 30; else (⌈R/30⌉ − 1) windows + one RTT (the last window's first answer).
    pub rate_bound: Duration,
    pub t_min: Duration,
}

pub fn bound(world: &World, root: i32, scale: TimeScale) -> Bound {
    let walk = world.walk(root);
    let mut by_depth: BTreeMap<usize, usize> = BTreeMap::new();
    for depth in walk.values() {
        *by_depth.entry(*depth).or_default() += 1;
    }
    let levels: Vec<usize> = by_depth.into_values().collect();
    let requests: usize = levels.iter().map(|n| n.div_ceil(PAGE)).sum();
    let latency_bound = scale.rtt() * requests as u32;
    let rate_bound = if requests <= LIMIT_PER_WINDOW {
        Duration::ZERO
    } else {
        let windows = requests.div_ceil(LIMIT_PER_WINDOW) - 1;
        scale.window() * windows as u32 + scale.rtt()
    };
    Bound {
        anime: walk.len(),
        levels,
        requests,
        latency_bound,
        rate_bound,
        t_min: latency_bound.max(rate_bound),
    }
}

/// A fresh in-process fake (fresh stats, fresh rate window, no ban) serving `world`.
pub async fn start_fake(world: &World, scale: TimeScale) -> anyhow::Result<FakeAniList> {
    FakeAniList::start(FakeConfig {
        world: world.clone(),
        rate: scale.rate(),
        latency: scale.latency(),
        faults: Faults::default(),
        ..FakeConfig::default()
    })
    .await
    .context("starting the fake AniList")
}
