//! Sticky "bad day" modes a test switches on and off at run time (outage, HTML error pages,
//! a stalled body, a closed port), so one client can be driven through every way AniList fails.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// How every GraphQL request is answered while the mode lasts. Admin endpoints (`/stats`,
/// `/admin/*`) keep working in every mode except `Offline`, so a test can always end one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// HTTP 403 with AniList's "temporarily disabled due to severe stability issues" body,
    /// the outage AniList announces (the same body its edge gives requests without a Referer).
    Disabled,
    /// HTTP 520 with Cloudflare's HTML error page: the edge is up, AniList's origin is not.
    #[serde(rename = "html_5xx")]
    Html5xx,
    /// HTTP 404 with an HTML page, as a wrong URL or a captive portal answers.
    #[serde(rename = "html_404")]
    Html404,
    /// HTTP 404 with an empty body and no content type: not JSON, not HTML.
    #[serde(rename = "bare_404")]
    Bare404,
    /// HTTP 200, headers and the first bytes of a JSON body, then nothing until the mode ends
    /// or the server stops (the connection is then cut), so the client's timeout must fire.
    Stall,
    /// Connection refused: the listening socket is closed and open connections are dropped;
    /// the same port is bound again when the mode ends.
    Offline,
}

impl Mode {
    pub const ALL: [Mode; 6] = [
        Mode::Disabled,
        Mode::Html5xx,
        Mode::Html404,
        Mode::Bare404,
        Mode::Stall,
        Mode::Offline,
    ];

    /// The name used by `POST /admin/mode?kind=…` and in stats.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Disabled => "disabled",
            Mode::Html5xx => "html_5xx",
            Mode::Html404 => "html_404",
            Mode::Bare404 => "bare_404",
            Mode::Stall => "stall",
            Mode::Offline => "offline",
        }
    }

    /// Whether it answers in front of AniList's edge (so before the Referer gate): a wrong
    /// host or a captive portal does not know AniList's rules.
    pub fn before_gate(self) -> bool {
        matches!(self, Mode::Html404 | Mode::Bare404)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown mode {0:?}: expected ok, disabled, html_5xx, html_404, bare_404, stall or offline"
)]
pub struct UnknownMode(pub String);

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMode(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for mode in Mode::ALL {
            assert_eq!(mode.as_str().parse::<Mode>(), Ok(mode));
            let json = serde_json::to_string(&mode).unwrap_or_default();
            assert_eq!(json, format!("\"{mode}\""));
        }
        assert!("ok".parse::<Mode>().is_err());
    }
}
