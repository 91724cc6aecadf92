//! Settings, parsed once into typed values. `config/default.toml` is the only source of
//! defaults; a builder layers a file, `FRANCHISE_*` variables (only when asked) and explicit
//! values over it, and every value is checked once, naming the key and the allowed range.

mod raw;

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};

use crate::producer::ImportOptions;
use crate::queue::RunOptions;
use crate::upstream::{BudgetConfig, ClientConfig, WalkDepth};
use raw::RawSettings;

/// The documented defaults, compiled in so the binary runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// A config file larger than this is not a config file.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Environment variables with the `FRANCHISE_` prefix that are not settings.
const NOT_SETTINGS: [&str; 2] = ["log", "failpoints"];

/// Everything `franchise` can be told, checked and typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) database_url: Option<String>,
    /// Connections one process opens to PostgreSQL at most.
    pub(crate) database_pool_size: u32,
    pub(crate) workers: usize,
    pub(crate) batch_window: Duration,
    pub(crate) max_depth: u32,
    pub(crate) max_items: u32,
    pub(crate) basic_ttl: Duration,
    pub(crate) detailed_ttl: Duration,
    pub(crate) franchise_ttl: Duration,
    pub(crate) max_attempts: usize,
    pub(crate) heartbeat: Duration,
    /// How long the queue keeps a finished job before pruning it.
    pub(crate) retention: Duration,
    pub(crate) cache_entries: u64,
    pub(crate) listen: SocketAddr,
    pub(crate) token: Option<String>,
    pub(crate) anilist_url: String,
    pub(crate) referer: String,
    pub(crate) timeout: Duration,
    pub(crate) budget_per_minute: u32,
    pub(crate) min_spacing: Duration,
    pub(crate) max_retries: usize,
    /// Levels of relations one request walks.
    pub(crate) walk_depth: WalkDepth,
    pub(crate) retry_min_delay: Duration,
    pub(crate) retry_max_delay: Duration,
    pub(crate) outage_pause_min: Duration,
    pub(crate) outage_pause_max: Duration,
    /// The longest any park may last: a longer `Retry-After` is cut to it, and so is an
    /// outage's pause.
    pub(crate) max_park: Duration,
}

/// A setting that cannot be used, with the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("config error: {0}")]
    Parse(String),
    #[error("config file {path} cannot be read: {reason}")]
    File { path: PathBuf, reason: String },
    #[error(
        "invalid setting `{key}` = {value} (env {}): expected {expected}",
        env_name(key)
    )]
    Invalid {
        key: &'static str,
        value: String,
        expected: String,
    },
}

/// The environment variable that sets `key`: `anilist.url` is `FRANCHISE_ANILIST__URL`.
fn env_name(key: &str) -> String {
    format!("FRANCHISE_{}", key.replace('.', "__").to_ascii_uppercase())
}

static DEFAULTS: LazyLock<Settings> = LazyLock::new(|| match SettingsBuilder::new().build() {
    Ok(settings) => settings,
    // Only a broken build could get here: the file is compiled in, and a unit test parses it.
    Err(e) => panic!("config/default.toml, compiled into franchise, does not parse: {e}"),
});

impl Default for Settings {
    /// The defaults `config/default.toml` documents; reads nothing from the environment.
    fn default() -> Self {
        DEFAULTS.clone()
    }
}

impl Settings {
    /// Starts from the documented defaults. Nothing is read from the environment unless
    /// [`SettingsBuilder::env`] asks for it.
    pub fn builder() -> SettingsBuilder {
        SettingsBuilder::new()
    }

    /// Where the store and queue live: the configured folder, or the platform's data
    /// directory (`~/.local/share/franchise` on Linux).
    pub fn data_dir(&self) -> PathBuf {
        match &self.data_dir {
            Some(dir) => dir.clone(),
            None => dirs::data_local_dir()
                .map(|d| d.join("franchise"))
                .unwrap_or_else(|| PathBuf::from(".franchise")),
        }
    }

    /// The PostgreSQL database holding the store and queue, if one is configured; `None`
    /// means the embedded store under the data dir.
    pub fn database_url(&self) -> Option<&str> {
        self.database_url.as_deref()
    }

    /// Connections one process opens to PostgreSQL at most.
    pub fn database_pool_size(&self) -> u32 {
        self.database_pool_size
    }

    pub fn anilist_url(&self) -> &str {
        &self.anilist_url
    }

    /// The `Referer` every AniList request carries (AniList's edge refuses requests without
    /// one since September 2026).
    pub fn referer(&self) -> &str {
        &self.referer
    }

    /// Whether the Referer is the documented default, not one the user or app chose.
    pub fn referer_is_default(&self) -> bool {
        self.referer == DEFAULTS.referer
    }

    /// Fetch jobs in flight at once.
    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn budget_per_minute(&self) -> u32 {
        self.budget_per_minute
    }

    /// Where `franchise serve` listens.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// Whether `franchise serve` asks for a bearer token.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The bearer token `franchise serve` asks for, and its clients send.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub(crate) fn store_path(&self) -> PathBuf {
        self.data_dir().join("franchise.sqlite")
    }

    pub(crate) fn queue_path(&self) -> PathBuf {
        self.data_dir().join("queue.redb")
    }

    /// The walk's default caps and followed types, before any flag.
    pub fn import_options(&self) -> ImportOptions {
        ImportOptions::default()
            .with_max_depth(self.max_depth)
            .with_max_items(self.max_items)
    }

    /// How the queue's workers run: one worker per lane, `workers` jobs in flight.
    pub(crate) fn run_options(&self) -> RunOptions {
        RunOptions {
            workers: 1,
            interactive_workers: 1,
            concurrency: self.workers,
            heartbeat: self.heartbeat,
            max_attempts: self.max_attempts,
            grace: crate::queue::GRACE,
        }
    }

    pub(crate) fn budget(&self) -> BudgetConfig {
        BudgetConfig {
            requests: self.budget_per_minute,
            window: Duration::from_secs(60),
            min_spacing: self.min_spacing,
            retry_after_margin: Duration::from_secs(1),
            outage_pause_min: self.outage_pause_min,
            outage_pause_max: self.outage_pause_max,
            max_park: self.max_park,
            probe_hold: self.timeout + Duration::from_secs(2),
        }
    }

    pub(crate) fn client(&self) -> ClientConfig {
        ClientConfig {
            endpoint: self.anilist_url.clone(),
            referer: self.referer.clone(),
            referer_is_default: self.referer_is_default(),
            timeout: self.timeout,
            max_retries: self.max_retries,
            walk_depth: self.walk_depth,
            retry_min_delay: self.retry_min_delay,
            retry_max_delay: self.retry_max_delay,
            max_parks: 10,
        }
    }
}

/// Layers over the defaults, later winning: a TOML file, `FRANCHISE_*` variables (only if
/// [`env`](Self::env) is called), then explicit values.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct SettingsBuilder {
    file: Option<PathBuf>,
    env: bool,
    values: Vec<(&'static str, figment::value::Value)>,
}

impl SettingsBuilder {
    fn new() -> Self {
        Self::default()
    }

    /// Layers a TOML settings file (it must exist) over the defaults.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Reads `FRANCHISE_*` environment variables (nested keys joined with `__`, e.g.
    /// `FRANCHISE_ANILIST__URL`) over the file.
    pub fn env(mut self) -> Self {
        self.env = true;
        self
    }

    fn set(mut self, key: &'static str, value: impl Into<figment::value::Value>) -> Self {
        self.values.push((key, value.into()));
        self
    }

    pub fn data_dir(self, dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref().to_string_lossy().into_owned();
        self.set("data_dir", dir)
    }

    pub fn database_url(self, url: impl Into<String>) -> Self {
        self.set("database_url", url.into())
    }

    /// Connections one process opens to PostgreSQL at most (4 to 1000).
    pub fn database_pool_size(self, connections: i64) -> Self {
        self.set("database_pool_size", connections)
    }

    pub fn anilist_url(self, url: impl Into<String>) -> Self {
        self.set("anilist.url", url.into())
    }

    /// The `Referer` header sent to AniList: an app names its own site here.
    pub fn referer(self, referer: impl Into<String>) -> Self {
        self.set("anilist.referer", referer.into())
    }

    pub fn workers(self, workers: i64) -> Self {
        self.set("workers", workers)
    }

    pub fn budget_per_minute(self, budget: i64) -> Self {
        self.set("anilist.budget_per_minute", budget)
    }

    pub fn min_spacing_ms(self, ms: i64) -> Self {
        self.set("anilist.min_spacing_ms", ms)
    }

    pub fn retry_delays_ms(self, min: i64, max: i64) -> Self {
        self.set("anilist.retry_min_delay_ms", min)
            .set("anilist.retry_max_delay_ms", max)
    }

    /// The first pause after a 403 and the longest, in seconds.
    pub fn outage_pause_secs(self, min: f64, max: f64) -> Self {
        self.set("anilist.outage_pause_min_secs", min)
            .set("anilist.outage_pause_max_secs", max)
    }

    /// Levels of relations one request walks (`anilist.walk_levels`, 1 to 4); without it,
    /// the default `"auto"` picks the depth per request.
    pub fn walk_levels(self, levels: i64) -> Self {
        self.set("anilist.walk_levels", levels)
    }

    /// Each request walks the deepest its predicted answer allows (`anilist.walk_levels =
    /// "auto"`, the default).
    pub fn walk_levels_auto(self) -> Self {
        self.set("anilist.walk_levels", "auto")
    }

    pub fn timeout_secs(self, secs: f64) -> Self {
        self.set("anilist.timeout_secs", secs)
    }

    pub fn heartbeat_ms(self, ms: i64) -> Self {
        self.set("queue.heartbeat_ms", ms)
    }

    pub fn retention_secs(self, secs: i64) -> Self {
        self.set("queue.retention_secs", secs)
    }

    pub fn max_attempts(self, attempts: i64) -> Self {
        self.set("queue.max_attempts", attempts)
    }

    pub fn batch_window_ms(self, ms: i64) -> Self {
        self.set("batch_window_ms", ms)
    }

    /// Freshness tiers in seconds: basic (a plain look-up), detailed (an anime with its
    /// relations) and franchise (an import walks through anime this fresh).
    pub fn freshness_secs(self, basic: i64, detailed: i64, franchise: i64) -> Self {
        self.set("freshness.basic_secs", basic)
            .set("freshness.detailed_secs", detailed)
            .set("freshness.franchise_secs", franchise)
    }

    /// Entries the read cache keeps at most (0 turns it off).
    pub fn cache_entries(self, entries: i64) -> Self {
        self.set("cache.max_entries", entries)
    }

    pub fn listen(self, addr: impl Into<String>) -> Self {
        self.set("serve.listen", addr.into())
    }

    pub fn token(self, token: impl Into<String>) -> Self {
        self.set("serve.token", token.into())
    }

    /// Reads every layer and checks every value once.
    pub fn build(self) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = &self.file {
            // Checked first (a folder, a device, a huge file are refused without reading);
            // then read by name, so an error names the file and the line.
            read_config_file(path)?;
            figment = figment.merge(Toml::file_exact(path));
        }
        if self.env {
            figment = figment.merge(
                Env::prefixed("FRANCHISE_")
                    .ignore(&NOT_SETTINGS)
                    .split("__"),
            );
        }
        for (key, value) in self.values {
            figment = figment.merge(Serialized::default(key, value));
        }
        let raw: RawSettings = figment.extract().map_err(describe)?;
        raw.validate()
    }
}

/// Reads a config file, refusing what cannot be one (a device, a folder, a huge file)
/// before reading it.
fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    let fail = |reason: String| ConfigError::File {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail(
            "it is not a regular file; expected a TOML file".into(),
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(fail(format!(
            "it is {} bytes; a settings file is at most {MAX_FILE_BYTES} bytes",
            meta.len()
        )));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| fail(e.to_string()))?;
    Ok(text)
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
                match &meta.source {
                    // The path itself: figment prints it relative to the working directory.
                    Some(figment::Source::File(path)) => {
                        line.push_str(&format!(" {}", path.display()))
                    }
                    Some(source) => line.push_str(&format!(" {source}")),
                    None => {}
                }
            }
            line
        })
        .collect();
    ConfigError::Parse(lines.join("; "))
}

#[cfg(test)]
mod tests;
