//! Measurements, medians and the markdown the program prints.

use std::fmt::Write as _;
use std::time::Duration;

use fake_anilist::FakeAniList;

/// One run of one variant.
#[derive(Debug, Clone)]
pub struct Measured {
    pub wall: Duration,
    /// Anime rows in the variant's store afterwards.
    pub anime: usize,
    /// Upstream requests the fake received (every status).
    pub requests: u64,
    /// 429s the fake served.
    pub rate_limited: u64,
    /// The import's estimate as `status` gave it during the run (franchise only).
    pub eta: Vec<EtaSample>,
}

/// What the estimate said at one moment of a run.
#[derive(Debug, Clone, Copy)]
pub struct EtaSample {
    /// Since the import call.
    pub at: Duration,
    pub eta_secs: f64,
    /// The floor: what the known part of the walk alone takes.
    pub at_least_secs: Option<f64>,
}

/// The estimate nearest before `fraction` of the run, against the time the run really had
/// left then: (the sample, the seconds really left).
pub fn eta_at(samples: &[EtaSample], wall: Duration, fraction: f64) -> Option<(EtaSample, f64)> {
    let at = wall.as_secs_f64() * fraction;
    samples
        .iter()
        .rev()
        .find(|s| s.at.as_secs_f64() <= at)
        .map(|s| (*s, wall.as_secs_f64() - s.at.as_secs_f64()))
}

impl Measured {
    pub fn from_fake(wall: Duration, anime: usize, fake: &FakeAniList) -> Self {
        let stats = fake.stats();
        Self {
            wall,
            anime,
            requests: stats.requests,
            rate_limited: stats.rate_limited,
            eta: Vec::new(),
        }
    }
}

/// Every run of one variant at one size.
#[derive(Debug, Default, Clone)]
pub struct Runs {
    pub ok: Vec<Measured>,
    pub errors: Vec<String>,
}

impl Runs {
    pub fn wall(&self) -> Option<Duration> {
        median(self.ok.iter().map(|m| m.wall).collect())
    }
    pub fn requests(&self) -> Option<u64> {
        median(self.ok.iter().map(|m| m.requests).collect())
    }
    pub fn rate_limited(&self) -> Option<u64> {
        median(self.ok.iter().map(|m| m.rate_limited).collect())
    }
    pub fn max_rate_limited(&self) -> Option<u64> {
        self.ok.iter().map(|m| m.rate_limited).max()
    }
    pub fn range(&self) -> Option<(Duration, Duration)> {
        let min = self.ok.iter().map(|m| m.wall).min()?;
        let max = self.ok.iter().map(|m| m.wall).max()?;
        Some((min, max))
    }
    pub fn anime(&self) -> String {
        let mut counts: Vec<usize> = self.ok.iter().map(|m| m.anime).collect();
        counts.dedup();
        counts
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// The middle value (the lower middle of an even count, so it is a measured value).
pub fn median<T: Ord + Copy>(mut values: Vec<T>) -> Option<T> {
    if values.is_empty() {
        return None;
    }
    values.sort();
    Some(values[(values.len() - 1) / 2])
}

pub fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 100.0 {
        format!("{s:.0} s")
    } else if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.0} ms", s * 1000.0)
    }
}

pub fn ratio(numerator: Duration, denominator: Duration) -> f64 {
    numerator.as_secs_f64() / denominator.as_secs_f64().max(f64::MIN_POSITIVE)
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A target of the issue and whether this run met it.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    /// `None`: not measured in this run.
    pub pass: Option<bool>,
    pub detail: String,
}

/// Everything printed: a header, sections in run order, then the targets.
#[derive(Debug, Default)]
pub struct Report {
    pub header: String,
    pub sections: Vec<String>,
    pub targets: Vec<Target>,
}

impl Report {
    pub fn target(&mut self, name: &str, pass: Option<bool>, detail: String) {
        self.targets.push(Target {
            name: name.to_string(),
            pass,
            detail,
        });
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&self.header);
        for section in &self.sections {
            out.push('\n');
            out.push_str(section);
        }
        if !self.targets.is_empty() {
            out.push_str("\n## Targets\n\n| target | result | measured |\n|---|---|---|\n");
            for t in &self.targets {
                let verdict = match t.pass {
                    Some(true) => "PASS",
                    Some(false) => "MISS",
                    None => "not measured",
                };
                let _ = writeln!(out, "| {} | {} | {} |", t.name, verdict, t.detail);
            }
        }
        out
    }
}
