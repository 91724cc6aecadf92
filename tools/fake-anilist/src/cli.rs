//! Command-line flags of `fake-anilist`, each mapped onto the library's configuration.
//! Doc comments here are the `--help` text.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use fake_anilist::{FakeConfig, Faults, Latency, RateModel, World, WorldSpec};

/// A faithful fake of the AniList GraphQL API (https://graphql.anilist.co) on 127.0.0.1.
///
/// POST GraphQL to / or /graphql, with a Referer header (any non-empty value) as AniList needs;
/// introspection (__schema, __type) is served too. Control: GET /stats,
/// POST /admin/rate-limit, POST /admin/outage?secs=N, POST /admin/reset,
/// POST /admin/mode?kind=KIND[&secs=N] where KIND is disabled, html_5xx, html_404, bare_404,
/// stall, offline (needs secs: nothing can reach a closed port to end it) or ok (clears).
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Seed for the generated world and for fault/latency draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Ordinary franchises, sizes following the real AniList histogram.
    #[arg(long, default_value_t = 200)]
    franchises: usize,
    /// A giant franchise of SIZE anime, walk depth DEPTH (e.g. 300:12). Repeatable.
    #[arg(long, value_name = "SIZE:DEPTH", value_parser = parse_giant)]
    giant: Vec<(usize, usize)>,
    /// A fan-out franchise whose root has at least N relation edges. Repeatable.
    #[arg(long, value_name = "N")]
    fan_out: Vec<usize>,
    /// Chance per franchise of a CHARACTER/OTHER link to another franchise.
    #[arg(long, default_value_t = 0.3)]
    cross_links: f64,
    /// Chance per leaf anime of being deleted upstream (dead id).
    #[arg(long, default_value_t = 0.02)]
    dead_rate: f64,
    /// Chance per leaf anime of being adult (hidden from anonymous requests).
    #[arg(long, default_value_t = 0.02)]
    adult_rate: f64,
    /// Serve recorded responses (media-*.json in DIR) instead of a generated world.
    #[arg(long, value_name = "DIR")]
    fixtures: Option<std::path::PathBuf>,
    /// Degraded AniList: headers advertise --limit while only --degraded-limit per window are
    /// allowed (a 429 arrives at X-RateLimit-Remaining 60, as on AniList since 2025).
    #[arg(long)]
    degraded: bool,
    /// Turn rate limiting off entirely (no X-RateLimit headers, no 429s).
    #[arg(long)]
    no_rate_limit: bool,
    /// Advertised (and, unless --degraded, real) requests per window.
    #[arg(long, default_value_t = 90)]
    limit: u32,
    /// Real requests per window in degraded mode.
    #[arg(long, default_value_t = 30)]
    degraded_limit: u32,
    /// Rate-limit window in seconds (the burst window is 1/60 of it).
    #[arg(long, default_value_t = 60.0)]
    window_secs: f64,
    /// More than this many requests within the burst window is a 429.
    #[arg(long, default_value_t = 6)]
    burst: u32,
    /// Ban length after a 429, sent as Retry-After.
    #[arg(long, default_value_t = 60)]
    ban_secs: u64,
    /// Say this in a ban's first Retry-After instead of --ban-secs (a lying proxy: 86400).
    #[arg(long, value_name = "SECS")]
    announce_retry_after: Option<u64>,
    /// Fixed latency added to every served request, in ms.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Uniform jitter around --latency-ms (±), in ms.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Probability of an HTTP 500.
    #[arg(long, default_value_t = 0.0)]
    fail_500: f64,
    /// Probability of an HTTP 502 (Cloudflare HTML page).
    #[arg(long, default_value_t = 0.0)]
    fail_502: f64,
    /// Probability of holding the response for --timeout-hold-secs, then 504.
    #[arg(long, default_value_t = 0.0)]
    timeout_rate: f64,
    /// How long a "timeout" fault holds the response, in seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout_hold_secs: f64,
    /// Probability of a 200 whose JSON body is cut in half.
    #[arg(long, default_value_t = 0.0)]
    truncate_rate: f64,
    /// Probability of a 200 whose body is not JSON.
    #[arg(long, default_value_t = 0.0)]
    malformed_rate: f64,
    /// Probability of a 400 validation error (a permanent failure clients must not retry).
    #[arg(long, default_value_t = 0.0)]
    reject_rate: f64,
    /// Start a 403 "API temporarily disabled" outage this many seconds after start.
    #[arg(long)]
    outage_at_secs: Option<f64>,
    /// Length of the --outage-at-secs outage, in seconds.
    #[arg(long, default_value_t = 60.0)]
    outage_secs: f64,
    /// Ignore `media(type: …)` filters, so an ANIME query may get MANGA records back.
    #[arg(long)]
    ignore_type_filter: bool,
    /// Serve requests without a Referer header. By default they get AniList's 403
    /// "temporarily disabled", as AniList's edge answers them since September 2026.
    #[arg(long)]
    no_referer_gate: bool,
    /// Answer HTTP 500 to queries nesting `relations` more than N deep (franchise's own
    /// query uses 1; AniList has been reported to 500 on deeper nested connections).
    #[arg(long, value_name = "N", default_value_t = fake_anilist::graphql::DEFAULT_MAX_RELATION_HOPS)]
    max_relation_hops: usize,
    /// Leave Type.field (or Type.field(argument)) out of introspection answers only, e.g.
    /// MediaEdge.relationType; queries using it still run. Repeatable.
    #[arg(long, value_name = "TYPE.FIELD")]
    hide_schema_field: Vec<String>,
    /// Spoil one record on purpose wherever it appears: ID=KIND, KIND one of
    /// negative_relation, number_title, relations_null, partial_error, data_null. Repeatable.
    #[arg(long, value_name = "ID=KIND", value_parser = fake_anilist::poison::parse_poison)]
    poison: Vec<(i32, fake_anilist::Poison)>,
}

fn parse_giant(s: &str) -> Result<(usize, usize), String> {
    let (size, depth) = s.split_once(':').ok_or("expected SIZE:DEPTH")?;
    let size = size.parse().map_err(|e| format!("size: {e}"))?;
    let depth = depth.parse().map_err(|e| format!("depth: {e}"))?;
    Ok((size, depth))
}

fn secs(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).with_context(|| format!("{flag} must be ≥ 0"))
}

impl Args {
    pub fn config(&self) -> anyhow::Result<FakeConfig> {
        let world = match &self.fixtures {
            Some(dir) => World::from_fixture_dir(dir)
                .with_context(|| format!("loading fixtures from {}", dir.display()))?,
            None => {
                let mut spec = WorldSpec::default()
                    .seed(self.seed)
                    .franchises(self.franchises)
                    .cross_link_rate(self.cross_links)
                    .dead_rate(self.dead_rate)
                    .adult_rate(self.adult_rate);
                for &(size, depth) in &self.giant {
                    spec = spec.giant(size, depth);
                }
                for &n in &self.fan_out {
                    spec = spec.fan_out(n);
                }
                spec.build()
            }
        };
        if self.window_secs <= 0.0 {
            bail!("--window-secs must be > 0");
        }
        let mut rate = RateModel::normal()
            .window(secs(self.window_secs, "--window-secs")?)
            .burst(self.burst)
            .ban_secs(self.ban_secs);
        rate.announced_secs = self.announce_retry_after;
        rate.advertised_limit = self.limit;
        rate.real_limit = if self.degraded {
            self.degraded_limit
        } else {
            self.limit
        };
        rate.enabled = !self.no_rate_limit;
        let faults = Faults {
            seed: self.seed,
            fail_500: self.fail_500,
            fail_502: self.fail_502,
            timeout: self.timeout_rate,
            truncate: self.truncate_rate,
            malformed: self.malformed_rate,
            reject: self.reject_rate,
            timeout_hold: secs(self.timeout_hold_secs, "--timeout-hold-secs")?,
            outage_at: self
                .outage_at_secs
                .map(|s| secs(s, "--outage-at-secs"))
                .transpose()?,
            outage_for: secs(self.outage_secs, "--outage-secs")?,
            ignore_type_filter: self.ignore_type_filter,
        };
        Ok(FakeConfig {
            world,
            rate,
            latency: Latency::new(
                Duration::from_millis(self.latency_ms),
                Duration::from_millis(self.jitter_ms),
            ),
            faults,
            port: self.port,
            referer_gate: !self.no_referer_gate,
            max_relation_hops: self.max_relation_hops,
            hide_schema_fields: self.hide_schema_field.clone(),
            poison: self.poison.iter().copied().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> FakeConfig {
        let all = [&["fake-anilist", "--franchises", "1"], args].concat();
        let parsed = Args::try_parse_from(all).unwrap_or_else(|e| panic!("{e}"));
        parsed.config().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn gate_hops_and_hidden_fields_map_onto_the_config() {
        let plain = config(&[]);
        assert!(plain.referer_gate);
        assert_eq!(
            plain.max_relation_hops,
            fake_anilist::graphql::DEFAULT_MAX_RELATION_HOPS
        );
        assert!(plain.hide_schema_fields.is_empty());
        let set = config(&[
            "--no-referer-gate",
            "--max-relation-hops",
            "3",
            "--hide-schema-field",
            "MediaEdge.relationType",
            "--hide-schema-field",
            "Media.relations",
        ]);
        assert!(!set.referer_gate);
        assert_eq!(set.max_relation_hops, 3);
        assert_eq!(
            set.hide_schema_fields,
            vec!["MediaEdge.relationType", "Media.relations"]
        );
    }
}
