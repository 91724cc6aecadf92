//! Who may call: with `serve.token` every request carries `Authorization: Bearer TOKEN` (or
//! the page's cookie); without one only loopback names reach us, and no other site's page
//! may post to us (a browser's cross-origin POST or a DNS-rebound name is refused).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::error::ApiError;

/// The cookie the status page stores the token in, so its own requests and the event
/// stream (which cannot send headers) are let in.
pub(crate) const TOKEN_COOKIE: &str = "franchise_token";

pub(crate) async fn guard(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if let Err(e) = check(&state, request.method(), request.headers()) {
        if e.status == 401 && wants_html(request.headers()) {
            return super::page::login(request.uri().path()).into_response();
        }
        return e.into_response();
    }
    next.run(request).await
}

fn check(state: &ApiState, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    match &state.token {
        Some(token) => {
            if !presented(headers).is_some_and(|given| same(given.as_bytes(), token.as_bytes())) {
                return Err(ApiError::unauthorized());
            }
        }
        None => {
            // Without a token we listen on loopback only; a browser sent here by a DNS
            // name that now points at 127.0.0.1 carries that name as its Host.
            if !is_loopback_host(host) {
                return Err(ApiError::forbidden(format!(
                    "host {host:?} is not a loopback name: without serve.token this server \
                     answers only 127.0.0.1, [::1] and localhost"
                )));
            }
        }
    }
    let changes = method != Method::GET && method != Method::HEAD;
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok())
        && changes
        && origin.split("://").nth(1).unwrap_or("") != host
    {
        return Err(ApiError::forbidden(format!(
            "a page from {origin} may not change anything here: only this server's own \
             pages (or a client without an Origin) may"
        )));
    }
    Ok(())
}

/// The token from `Authorization: Bearer …` or the page's cookie.
/// The page stores the cookie percent-encoded (`encodeURIComponent`).
fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return auth.strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(TOKEN_COOKIE)?.strip_prefix('='))
        .and_then(|raw| super::input::decode(raw).ok())
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_are_told_from_others() {
        for host in ["127.0.0.1:7878", "localhost:1", "[::1]:7878", "127.0.0.2"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["evil.example:7878", "10.0.0.1:7878", "", "[::2]:1"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn the_token_is_read_from_the_header_or_the_cookie() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(presented(&h).as_deref(), Some("abc"));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; franchise_token=xyz".parse().unwrap());
        assert_eq!(presented(&h).as_deref(), Some("xyz"));
        // As the page's encodeURIComponent wrote it.
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "franchise_token=a%2Bb%2F%3D%25%3Bc".parse().unwrap(),
        );
        assert_eq!(presented(&h).as_deref(), Some("a+b/=%;c"));
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
