//! AniList's edge rule since September 2026: a GraphQL request without a `Referer` header is
//! refused with the 403 "temporarily disabled" body, whatever else it carries.

use axum::http::{HeaderMap, header};

use crate::stats::Caller;

/// Whether the edge turns this request away. Reported (animego PR #170, aiometadata issue
/// #712, Animite PR #765): any value passes, even `Referer: abc`; the `User-Agent` makes no
/// difference; `Origin` alone is refused. Inferred, not reported: an empty `Referer` is
/// refused too, since Cloudflare's rules read a missing header as the empty string.
pub fn refuses(headers: &HeaderMap) -> bool {
    headers
        .get(header::REFERER)
        .is_none_or(|v| v.as_bytes().iter().all(u8::is_ascii_whitespace))
}

/// The headers the stats keep for every request.
pub fn caller(headers: &HeaderMap) -> Caller {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    Caller {
        referer: text(header::REFERER),
        user_agent: text(header::USER_AGENT),
        anonymous: !headers.contains_key(header::AUTHORIZATION),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_a_non_empty_referer_opens_the_gate() {
        let mut h = HeaderMap::new();
        assert!(refuses(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://anilist.co"),
        );
        h.insert(header::USER_AGENT, HeaderValue::from_static("Mozilla/5.0"));
        assert!(refuses(&h));
        h.insert(header::REFERER, HeaderValue::from_static(""));
        assert!(refuses(&h));
        h.insert(header::REFERER, HeaderValue::from_static("abc"));
        assert!(!refuses(&h));
        let c = caller(&h);
        assert_eq!(c.referer.as_deref(), Some("abc"));
        assert_eq!(c.user_agent.as_deref(), Some("Mozilla/5.0"));
        assert!(c.anonymous);
    }
}
