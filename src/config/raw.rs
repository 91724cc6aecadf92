//! The settings as TOML spells them (every number signed, so `-2` gets a message naming the
//! key rather than a type error), and their one validation into typed values.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Settings};
use crate::store::redact_url;
use crate::upstream::{MAX_WALK_LEVELS, WalkDepth};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSettings {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub database_pool_size: Num<i64>,
    pub workers: Num<i64>,
    pub batch_window_ms: Num<i64>,
    pub anilist: RawAniList,
    pub import: RawImport,
    pub freshness: RawFreshness,
    pub queue: RawQueue,
    pub cache: RawCache,
    pub serve: RawServe,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawImport {
    pub max_depth: Num<i64>,
    pub max_items: Num<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFreshness {
    pub basic_secs: Num<i64>,
    pub detailed_secs: Num<i64>,
    pub franchise_secs: Num<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQueue {
    pub max_attempts: Num<i64>,
    pub heartbeat_ms: Num<i64>,
    pub retention_secs: Num<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
    pub max_entries: Num<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServe {
    pub listen: String,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAniList {
    pub url: String,
    pub referer: String,
    pub timeout_secs: Num<f64>,
    pub budget_per_minute: Num<i64>,
    pub min_spacing_ms: Num<i64>,
    pub max_retries: Num<i64>,
    pub walk_levels: Num<i64>,
    pub retry_min_delay_ms: Num<i64>,
    pub retry_max_delay_ms: Num<i64>,
    pub outage_pause_min_secs: Num<f64>,
    pub outage_pause_max_secs: Num<f64>,
    pub max_park_secs: Num<f64>,
}

/// Checks one whole number against its range, naming the key and the range when it is out.
fn whole(
    key: &'static str,
    value: &Num<i64>,
    min: i64,
    max: i64,
    unit: &str,
) -> Result<i64, ConfigError> {
    match value.get() {
        Some(value) if (min..=max).contains(&value) => Ok(value),
        _ => Err(ConfigError::Invalid {
            key,
            value: value.to_string(),
            expected: format!("{unit} from {min} to {max}"),
        }),
    }
}

fn millis(
    key: &'static str,
    value: &Num<i64>,
    min: i64,
    max: i64,
) -> Result<Duration, ConfigError> {
    whole(key, value, min, max, "milliseconds").map(|v| Duration::from_millis(v as u64))
}

fn secs(key: &'static str, value: &Num<i64>, min: i64, max: i64) -> Result<Duration, ConfigError> {
    whole(key, value, min, max, "seconds").map(|v| Duration::from_secs(v as u64))
}

fn fractional_secs(
    key: &'static str,
    value: &Num<f64>,
    min_exclusive: bool,
    min: f64,
    max: f64,
) -> Result<Duration, ConfigError> {
    let number = value.get().unwrap_or(f64::NAN);
    let above_min = if min_exclusive {
        number > min
    } else {
        number >= min
    };
    if number.is_finite() && above_min && number <= max {
        Ok(Duration::from_secs_f64(number))
    } else {
        let from = if min_exclusive {
            format!("more than {min}")
        } else {
            format!("from {min}")
        };
        Err(ConfigError::Invalid {
            key,
            value: value.to_string(),
            expected: format!("seconds {from} to {max}"),
        })
    }
}

/// A number as a layer spelled it. TOML and flags give numbers; an environment variable may
/// give text. Text is kept as it came, so validation names the key, the value and the allowed
/// range instead of a deserializer's "invalid type".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum Num<T> {
    Value(T),
    Text(String),
}

impl<T: Copy + std::str::FromStr> Num<T> {
    /// The number, if it is one (text that parses as one counts).
    fn get(&self) -> Option<T> {
        match self {
            Num::Value(v) => Some(*v),
            Num::Text(text) => text.trim().parse().ok(),
        }
    }
}

impl<T: std::fmt::Display> std::fmt::Display for Num<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Num::Value(v) => write!(f, "{v}"),
            Num::Text(text) => write!(f, "{text:?}"),
        }
    }
}

/// `anilist.walk_levels`: `"auto"`, or a fixed number of levels of relations per request.
fn walk_depth(value: &Num<i64>) -> Result<WalkDepth, ConfigError> {
    if let Num::Text(text) = value
        && text.trim().eq_ignore_ascii_case("auto")
    {
        return Ok(WalkDepth::Auto);
    }
    match value.get() {
        Some(levels) if (1..=MAX_WALK_LEVELS as i64).contains(&levels) => {
            Ok(WalkDepth::Fixed(levels as usize))
        }
        _ => Err(ConfigError::Invalid {
            key: "anilist.walk_levels",
            value: value.to_string(),
            expected: format!(
                "\"auto\" (the deepest walk whose answer is predicted under 1 MB) or levels of \
                 relations per request from 1 to {MAX_WALK_LEVELS}"
            ),
        }),
    }
}

/// The longest Referer accepted: a header, not a document.
const MAX_REFERER: usize = 2048;

/// A year: longer freshness than this is a mistake, not a policy.
const YEAR_SECS: i64 = 366 * 24 * 3600;

impl RawSettings {
    pub(super) fn validate(self) -> Result<Settings, ConfigError> {
        let a = &self.anilist;
        let url = a.url.trim();
        if reqwest::Url::parse(url).is_err()
            || !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                key: "anilist.url",
                value: format!("{:?}", a.url),
                expected: "an http(s) URL such as https://graphql.anilist.co".into(),
            });
        }
        let referer = a.referer.trim();
        if referer.is_empty()
            || referer.len() > MAX_REFERER
            || !referer.bytes().all(|b| (0x20..0x7f).contains(&b))
        {
            return Err(ConfigError::Invalid {
                key: "anilist.referer",
                value: format!("{:?}", a.referer),
                expected: format!(
                    "a non-empty header value of printable ASCII, at most {MAX_REFERER} \
                     characters, such as https://example.org/ (AniList refuses requests \
                     without a Referer since September 2026)"
                ),
            });
        }
        let retry_min = millis(
            "anilist.retry_min_delay_ms",
            &a.retry_min_delay_ms,
            0,
            300_000,
        )?;
        let retry_max = millis(
            "anilist.retry_max_delay_ms",
            &a.retry_max_delay_ms,
            0,
            300_000,
        )?;
        if retry_min > retry_max {
            return Err(ConfigError::Invalid {
                key: "anilist.retry_min_delay_ms",
                value: a.retry_min_delay_ms.to_string(),
                expected: format!(
                    "no more than anilist.retry_max_delay_ms ({})",
                    a.retry_max_delay_ms
                ),
            });
        }
        let pause_min = fractional_secs(
            "anilist.outage_pause_min_secs",
            &a.outage_pause_min_secs,
            false,
            0.0,
            3600.0,
        )?;
        let pause_max = fractional_secs(
            "anilist.outage_pause_max_secs",
            &a.outage_pause_max_secs,
            false,
            0.0,
            3600.0,
        )?;
        if pause_min > pause_max {
            return Err(ConfigError::Invalid {
                key: "anilist.outage_pause_min_secs",
                value: a.outage_pause_min_secs.to_string(),
                expected: format!(
                    "no more than anilist.outage_pause_max_secs ({})",
                    a.outage_pause_max_secs
                ),
            });
        }
        let database_url = self.database_url.trim();
        let database_url = if database_url.is_empty() {
            None
        } else if database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://")
        {
            // Its syntax now, as a usage error; whether the server answers is for later.
            if let Err(e) =
                <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(database_url)
            {
                return Err(ConfigError::Invalid {
                    key: "database_url",
                    value: format!("{:?}", redact_url(database_url)),
                    expected: format!(
                        "a well-formed PostgreSQL URL such as postgres://user@host:5432/franchise \
                         ({e})"
                    ),
                });
            }
            Some(database_url.to_string())
        } else {
            return Err(ConfigError::Invalid {
                key: "database_url",
                value: format!("{:?}", redact_url(database_url)),
                expected: "empty (the embedded store under the data dir) or a PostgreSQL URL \
                           such as postgres://user@host:5432/franchise"
                    .into(),
            });
        };
        let listen: SocketAddr =
            self.serve
                .listen
                .trim()
                .parse()
                .map_err(|_| ConfigError::Invalid {
                    key: "serve.listen",
                    value: format!("{:?}", self.serve.listen),
                    expected: "an address and port such as 127.0.0.1:7878".into(),
                })?;
        let token = self.serve.token.trim();
        let token = if token.is_empty() {
            None
        } else if token.len() < 16 || token.chars().any(char::is_whitespace) {
            return Err(ConfigError::Invalid {
                key: "serve.token",
                value: "(hidden)".into(),
                expected: "at least 16 characters without spaces, or empty for no token".into(),
            });
        } else {
            Some(token.to_string())
        };
        Ok(Settings {
            data_dir: (!self.data_dir.as_os_str().is_empty()).then(|| self.data_dir.clone()),
            database_url,
            database_pool_size: whole(
                "database_pool_size",
                &self.database_pool_size,
                4,
                1000,
                "connections (3 of them listen for new jobs and rewrites)",
            )? as u32,
            workers: whole("workers", &self.workers, 1, 1000, "a whole number")? as usize,
            batch_window: millis("batch_window_ms", &self.batch_window_ms, 0, 10_000)?,
            max_depth: whole(
                "import.max_depth",
                &self.import.max_depth,
                0,
                i64::from(crate::producer::MAX_DEPTH_LIMIT),
                "relation hops",
            )? as u32,
            max_items: whole(
                "import.max_items",
                &self.import.max_items,
                1,
                1_000_000,
                "a whole number of anime",
            )? as u32,
            basic_ttl: secs(
                "freshness.basic_secs",
                &self.freshness.basic_secs,
                0,
                YEAR_SECS,
            )?,
            detailed_ttl: secs(
                "freshness.detailed_secs",
                &self.freshness.detailed_secs,
                0,
                YEAR_SECS,
            )?,
            franchise_ttl: secs(
                "freshness.franchise_secs",
                &self.freshness.franchise_secs,
                0,
                YEAR_SECS,
            )?,
            max_attempts: whole(
                "queue.max_attempts",
                &self.queue.max_attempts,
                1,
                100,
                "a whole number",
            )? as usize,
            heartbeat: millis("queue.heartbeat_ms", &self.queue.heartbeat_ms, 1000, 60_000)?,
            retention: secs(
                "queue.retention_secs",
                &self.queue.retention_secs,
                60,
                YEAR_SECS,
            )?,
            cache_entries: whole(
                "cache.max_entries",
                &self.cache.max_entries,
                0,
                1_000_000,
                "entries",
            )? as u64,
            listen,
            token,
            anilist_url: url.to_string(),
            referer: referer.to_string(),
            timeout: fractional_secs("anilist.timeout_secs", &a.timeout_secs, true, 0.0, 600.0)?,
            budget_per_minute: budget(&a.budget_per_minute, url)?,
            min_spacing: millis("anilist.min_spacing_ms", &a.min_spacing_ms, 0, 60_000)?,
            max_retries: whole("anilist.max_retries", &a.max_retries, 0, 20, "retries")? as usize,
            walk_depth: walk_depth(&a.walk_levels)?,
            retry_min_delay: retry_min,
            retry_max_delay: retry_max,
            outage_pause_min: pause_min,
            outage_pause_max: pause_max,
            max_park: fractional_secs(
                "anilist.max_park_secs",
                &a.max_park_secs,
                false,
                1.0,
                86_400.0,
            )?,
        })
    }
}

/// AniList's published limit: more is allowed (for a fake, a proxy with its own quota) but
/// said to be a bad idea.
const ANILIST_PUBLISHED_PER_MINUTE: u32 = 90;

/// The budget, with a warning when it exceeds what the real AniList allows (a local fake or a
/// proxy with its own quota may take more).
fn budget(value: &Num<i64>, url: &str) -> Result<u32, ConfigError> {
    let per_minute = whole(
        "anilist.budget_per_minute",
        value,
        1,
        1_000_000,
        "requests per minute (AniList allows 30 now, 90 normally)",
    )? as u32;
    let real_anilist = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| h.eq_ignore_ascii_case("graphql.anilist.co"))
        })
        .unwrap_or(false);
    if real_anilist && per_minute > ANILIST_PUBLISHED_PER_MINUTE {
        tracing::warn!(
            "anilist.budget_per_minute = {per_minute} is above AniList's published \
             {ANILIST_PUBLISHED_PER_MINUTE} requests a minute (it enforces 30 now): against the \
             real AniList expect 429s and minute-long bans"
        );
    }
    Ok(per_minute)
}
