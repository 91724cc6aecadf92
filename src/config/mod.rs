//! Settings, layered: built-in `config/default.toml`, then a user file, then `FRANCHISE_*`
//! environment variables, then flags. Validation names the bad value and what would be right.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::upstream::{BudgetConfig, ClientConfig};

/// The documented defaults, compiled in so the binary runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub workers: i64,
    pub batch_window_ms: u64,
    pub anilist: AniListSettings,
    pub import: ImportSettings,
    pub freshness: FreshnessSettings,
    pub queue: QueueSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportSettings {
    pub max_depth: i64,
    pub max_items: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreshnessSettings {
    pub basic_secs: u64,
    pub detailed_secs: u64,
    pub franchise_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    pub max_attempts: i64,
    pub heartbeat_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AniListSettings {
    pub url: String,
    pub timeout_secs: f64,
    pub budget_per_minute: i64,
    pub min_spacing_ms: u64,
    pub max_retries: usize,
    pub retry_min_delay_ms: u64,
    pub retry_max_delay_ms: u64,
    pub outage_pause_min_secs: f64,
    pub outage_pause_max_secs: f64,
}

/// Flag values that override everything else; `None` leaves the layer below in force.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub anilist_url: Option<String>,
    pub workers: Option<i64>,
    pub budget_per_minute: Option<i64>,
}

/// A setting that cannot be used, with the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config error: {0}")]
    Parse(String),
    #[error("config file {path} cannot be read: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("invalid setting `{key}` = {value}: {expected}")]
    Invalid {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// One line per problem: what is wrong, with which key, from which layer. (figment's own
/// text repeats itself when printed with its source, and prefixes keys with its profile.)
fn describe(error: figment::Error) -> ConfigError {
    let lines: Vec<String> = error
        .into_iter()
        .map(|e| {
            let mut line = e.kind.to_string();
            if !e.path.is_empty() {
                line.push_str(&format!(" for `{}`", e.path.join(".")));
            }
            if let Some(meta) = &e.metadata {
                line.push_str(&format!(" in {}", meta.name));
                if let Some(source) = &meta.source {
                    line.push_str(&format!(" {source}"));
                }
            }
            line
        })
        .collect();
    ConfigError::Parse(lines.join("; "))
}

impl Settings {
    /// Reads every layer. `file` is the `--config` path, if given; it must exist.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_with_env(file, overrides, Env::prefixed("FRANCHISE_").split("__"))
    }

    /// As [`Settings::load`], with the environment layer supplied (tests use their own).
    pub fn load_with_env(
        file: Option<&Path>,
        overrides: &Overrides,
        env: Env,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            // figment treats a missing file as empty; a user who named one means it.
            if let Err(e) = std::fs::metadata(path) {
                return Err(ConfigError::File {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(env);
        if let Some(dir) = &overrides.data_dir {
            figment = figment.merge(Serialized::default("data_dir", dir));
        }
        if let Some(url) = &overrides.anilist_url {
            figment = figment.merge(Serialized::default("anilist.url", url));
        }
        if let Some(workers) = overrides.workers {
            figment = figment.merge(Serialized::default("workers", workers));
        }
        if let Some(budget) = overrides.budget_per_minute {
            figment = figment.merge(Serialized::default("anilist.budget_per_minute", budget));
        }
        let settings: Settings = figment.extract().map_err(describe)?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, value: String, expected| ConfigError::Invalid {
            key,
            value,
            expected,
        };
        if !(1..=1000).contains(&self.workers) {
            return Err(invalid(
                "workers",
                self.workers.to_string(),
                "expected a whole number from 1 to 1000",
            ));
        }
        if !(0..=10_000).contains(&self.batch_window_ms) {
            return Err(invalid(
                "batch_window_ms",
                self.batch_window_ms.to_string(),
                "expected milliseconds from 0 to 10000",
            ));
        }
        if !(0..=1000).contains(&self.import.max_depth) {
            return Err(invalid(
                "import.max_depth",
                self.import.max_depth.to_string(),
                "expected relation hops from 0 to 1000",
            ));
        }
        if !(1..=1_000_000).contains(&self.import.max_items) {
            return Err(invalid(
                "import.max_items",
                self.import.max_items.to_string(),
                "expected a whole number of anime from 1 to 1000000",
            ));
        }
        if !(1..=100).contains(&self.queue.max_attempts) {
            return Err(invalid(
                "queue.max_attempts",
                self.queue.max_attempts.to_string(),
                "expected a whole number from 1 to 100",
            ));
        }
        if !(1000..=60_000).contains(&self.queue.heartbeat_ms) {
            return Err(invalid(
                "queue.heartbeat_ms",
                self.queue.heartbeat_ms.to_string(),
                "expected milliseconds from 1000 to 60000 (the queue keeps time in whole seconds)",
            ));
        }
        let a = &self.anilist;
        if !(1..=1_000_000).contains(&a.budget_per_minute) {
            return Err(invalid(
                "anilist.budget_per_minute",
                a.budget_per_minute.to_string(),
                "expected requests per minute from 1 to 1000000 (AniList allows 30 now, 90 normally)",
            ));
        }
        if !(a.timeout_secs.is_finite() && a.timeout_secs > 0.0 && a.timeout_secs <= 600.0) {
            return Err(invalid(
                "anilist.timeout_secs",
                a.timeout_secs.to_string(),
                "expected seconds, more than 0 and at most 600",
            ));
        }
        if reqwest::Url::parse(&a.url).is_err() || !a.url.starts_with("http") {
            return Err(invalid(
                "anilist.url",
                format!("{:?}", a.url),
                "expected an http(s) URL such as https://graphql.anilist.co",
            ));
        }
        if a.retry_min_delay_ms > a.retry_max_delay_ms {
            return Err(invalid(
                "anilist.retry_min_delay_ms",
                a.retry_min_delay_ms.to_string(),
                "expected no more than anilist.retry_max_delay_ms",
            ));
        }
        for (key, secs) in [
            ("anilist.outage_pause_min_secs", a.outage_pause_min_secs),
            ("anilist.outage_pause_max_secs", a.outage_pause_max_secs),
        ] {
            if !(secs.is_finite() && (0.0..=3600.0).contains(&secs)) {
                return Err(invalid(
                    key,
                    secs.to_string(),
                    "expected seconds from 0 to 3600",
                ));
            }
        }
        if a.outage_pause_min_secs > a.outage_pause_max_secs {
            return Err(invalid(
                "anilist.outage_pause_min_secs",
                a.outage_pause_min_secs.to_string(),
                "expected no more than anilist.outage_pause_max_secs",
            ));
        }
        Ok(())
    }

    /// The data directory, with "" meaning the platform's data directory.
    pub fn resolved_data_dir(&self) -> PathBuf {
        if !self.data_dir.as_os_str().is_empty() {
            return self.data_dir.clone();
        }
        dirs::data_local_dir()
            .map(|d| d.join("franchise"))
            .unwrap_or_else(|| PathBuf::from(".franchise"))
    }

    pub fn worker_count(&self) -> usize {
        // validate() keeps it within 1..=1000.
        self.workers.clamp(1, 1000) as usize
    }

    /// How long an anime stays fresh for a franchise import (and for the flusher's walk).
    pub fn franchise_ttl(&self) -> Duration {
        Duration::from_secs(self.freshness.franchise_secs)
    }

    /// How long an anime stays fresh for open-on-click.
    pub fn detailed_ttl(&self) -> Duration {
        Duration::from_secs(self.freshness.detailed_secs)
    }

    pub fn batch_window(&self) -> Duration {
        Duration::from_millis(self.batch_window_ms)
    }

    /// The walk's default caps and followed types, before any flag.
    pub fn import_options(&self) -> crate::producer::ImportOptions {
        crate::producer::ImportOptions {
            max_depth: self.import.max_depth.clamp(0, 1000) as u32,
            max_items: self.import.max_items.clamp(1, 1_000_000) as u32,
            ..crate::producer::ImportOptions::default()
        }
    }

    pub fn max_attempts(&self) -> usize {
        self.queue.max_attempts.clamp(1, 100) as usize
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.queue.heartbeat_ms)
    }

    pub fn store_path(&self) -> PathBuf {
        self.resolved_data_dir().join("franchise.sqlite")
    }

    pub fn queue_path(&self) -> PathBuf {
        self.resolved_data_dir().join("queue.redb")
    }

    pub fn budget(&self) -> BudgetConfig {
        let a = &self.anilist;
        BudgetConfig {
            requests: a.budget_per_minute.clamp(1, 1_000_000) as u32,
            window: Duration::from_secs(60),
            min_spacing: Duration::from_millis(a.min_spacing_ms),
            retry_after_margin: Duration::from_secs(1),
            outage_pause_min: Duration::from_secs_f64(a.outage_pause_min_secs),
            outage_pause_max: Duration::from_secs_f64(a.outage_pause_max_secs),
        }
    }

    pub fn client(&self) -> ClientConfig {
        let a = &self.anilist;
        ClientConfig {
            endpoint: a.url.clone(),
            timeout: Duration::from_secs_f64(a.timeout_secs),
            max_retries: a.max_retries,
            retry_min_delay: Duration::from_millis(a.retry_min_delay_ms),
            retry_max_delay: Duration::from_millis(a.retry_max_delay_ms),
            ..ClientConfig::default()
        }
    }
}

#[cfg(test)]
// figment's Jail hands back its own (large) error type; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn load_in(jail: &Jail, toml: Option<&str>, overrides: &Overrides) -> Result<Settings, String> {
        let file = toml.map(|body| {
            jail.create_file("franchise.toml", body).unwrap();
            jail.directory().join("franchise.toml")
        });
        Settings::load(file.as_deref(), overrides).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        Jail::expect_with(|jail| {
            let s = load_in(jail, None, &Overrides::default()).unwrap();
            assert_eq!(s.worker_count(), 100);
            assert_eq!(s.import.max_depth, 50);
            assert_eq!(s.freshness.franchise_secs, 86_400);
            assert_eq!(s.max_attempts(), 5);
            assert_eq!(s.anilist.url, "https://graphql.anilist.co");
            assert_eq!(s.budget().requests, 30);
            assert_eq!(s.budget().min_spacing, Duration::from_millis(500));
            assert_eq!(s.client().timeout, Duration::from_secs(20));
            Ok(())
        });
    }

    #[test]
    fn layers_apply_in_order_file_then_env_then_flags() {
        Jail::expect_with(|jail| {
            let file =
                "workers = 3\n[anilist]\nurl = \"http://127.0.0.1:1/\"\nbudget_per_minute = 20\n";
            let s = load_in(jail, Some(file), &Overrides::default()).unwrap();
            assert_eq!((s.workers, s.anilist.budget_per_minute), (3, 20));

            jail.set_env("FRANCHISE_WORKERS", "5");
            jail.set_env("FRANCHISE_ANILIST__URL", "http://127.0.0.1:2/");
            let s = load_in(jail, Some(file), &Overrides::default()).unwrap();
            assert_eq!(s.workers, 5);
            assert_eq!(s.anilist.url, "http://127.0.0.1:2/");
            assert_eq!(s.anilist.budget_per_minute, 20, "the file still applies");

            let flags = Overrides {
                workers: Some(2),
                anilist_url: Some("http://127.0.0.1:3/".into()),
                budget_per_minute: Some(10),
                data_dir: Some("/tmp/x".into()),
            };
            let s = load_in(jail, Some(file), &flags).unwrap();
            assert_eq!(s.workers, 2);
            assert_eq!(s.anilist.url, "http://127.0.0.1:3/");
            assert_eq!(s.anilist.budget_per_minute, 10);
            assert_eq!(s.resolved_data_dir(), PathBuf::from("/tmp/x"));
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_named_with_what_would_be_right() {
        Jail::expect_with(|jail| {
            let cases = [
                ("wrokers = 3\n", "wrokers"),
                ("[anilist]\nbudget = 3\n", "budget"),
                ("workers = \"many\"\n", "workers"),
                ("workers = 0\n", "from 1 to 1000"),
                ("[import]\nmax_items = 0\n", "`import.max_items` = 0"),
                ("[queue]\nmax_attempts = -1\n", "queue.max_attempts"),
                ("[freshness]\nfranchise_secs = -5\n", "franchise_secs"),
                ("workers = -2\n", "`workers` = -2"),
                (
                    "[anilist]\nbudget_per_minute = 0\n",
                    "`anilist.budget_per_minute` = 0",
                ),
                ("[anilist]\ntimeout_secs = 0\n", "anilist.timeout_secs"),
                ("[anilist]\nurl = \"graphql.anilist.co\"\n", "http(s) URL"),
            ];
            for (body, needle) in cases {
                let err = load_in(jail, Some(body), &Overrides::default()).unwrap_err();
                assert!(err.contains(needle), "{body:?} gave {err}");
            }
            jail.set_env("FRANCHISE_WORKERS", "abc");
            let err = load_in(jail, None, &Overrides::default()).unwrap_err();
            assert!(
                err.contains("`workers`") && err.contains("\"abc\""),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_named_config_file_must_exist() {
        let err = Settings::load(
            Some(Path::new("/nonexistent/franchise.toml")),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/franchise.toml"),
            "{err}"
        );
    }
}
