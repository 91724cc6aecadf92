//! Who may call: with `serve.token` every request carries `Authorization: Bearer TOKEN` (or
//! the page's cookie); without one only loopback names reach us, and no other site's page
//! may post to us (a browser's cross-origin POST or a DNS-rebound name is refused).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::error::ApiError;

/// The cookie the status page stores the token in, so its own requests and the event
/// stream (which cannot send headers) are let in.
pub(crate) const TOKEN_COOKIE: &str = "franchise_token";

/// The most header bytes (names and values) a request may carry. A browser sends one or two
/// KiB to this server; far more is an attack or a broken client, answered 431 before any
/// handler runs.
pub(crate) const MAX_HEADER_BYTES: usize = 16 * 1024;

pub(crate) async fn guard(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if let Err(e) = check(&state, request.method(), request.headers()) {
        if e.status == 401 && wants_html(request.headers()) {
            return super::page::login(request.uri().path()).into_response();
        }
        return e.into_response();
    }
    let response = next.run(request).await;
    // A body past the limit is refused by the extractor in axum's plain text; the API speaks
    // JSON, with the limit named.
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE
        && response.headers().get(header::CONTENT_TYPE)
            != Some(&header::HeaderValue::from_static("application/json"))
    {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the request's body is larger than {} bytes, the most this API reads",
                super::BODY_LIMIT
            ),
        )
        .into_response();
    }
    response
}

fn check(state: &ApiState, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    let size: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if size > MAX_HEADER_BYTES {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("the request's headers take {size} bytes: at most {MAX_HEADER_BYTES} are read"),
        ));
    }
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next().and_then(|h| h.to_str().ok()).unwrap_or("");
    if hosts.next().is_some() {
        return Err(ApiError::bad_request(
            "the request has more than one Host header: send exactly one",
        ));
    }
    match &state.token {
        Some(token) => {
            if !presented(headers).is_some_and(|given| same(given.as_bytes(), token.as_bytes())) {
                return Err(ApiError::unauthorized());
            }
        }
        None => {
            // Without a token we listen on loopback only; a browser sent here by a DNS
            // name that now points at 127.0.0.1 carries that name as its Host.
            let Some(name) = host_name(host) else {
                return Err(ApiError::bad_request(format!(
                    "Host {host:?} is not a host name with an optional numeric port \
                     (RFC 9110): send e.g. 127.0.0.1:7878"
                )));
            };
            if !is_loopback_name(name) {
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

/// The host of a `Host` value, if it is `host [":" port]` with a numeric port (RFC 9110
/// §7.2): a bracketed IPv6 address, or a name or IPv4 address without `:`. `None` for
/// anything else (`localhost:1@evil.example`, `127.0.0.1:80.evil.example`, an empty value).
fn host_name(value: &str) -> Option<&str> {
    let (name, port) = match value.strip_prefix('[') {
        Some(rest) => {
            let (inside, after) = rest.split_once(']')?;
            inside.parse::<std::net::Ipv6Addr>().ok()?;
            let port = match after {
                "" => None,
                more => Some(more.strip_prefix(':')?),
            };
            (inside, port)
        }
        None => match value.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (value, None),
        },
    };
    if let Some(port) = port
        && (port.is_empty()
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u16>().is_err())
    {
        return None;
    }
    let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':';
    (!name.is_empty() && name.bytes().all(plain)).then_some(name)
}

fn is_loopback_name(name: &str) -> bool {
    name.eq_ignore_ascii_case("localhost")
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

    fn loopback(host: &str) -> bool {
        host_name(host).is_some_and(is_loopback_name)
    }

    #[test]
    fn loopback_names_are_told_from_others() {
        for host in [
            "127.0.0.1:7878",
            "localhost:1",
            "[::1]:7878",
            "127.0.0.2",
            "[::1]",
        ] {
            assert!(loopback(host), "{host}");
        }
        for host in ["evil.example:7878", "10.0.0.1:7878", "", "[::2]:1"] {
            assert!(!loopback(host), "{host}");
        }
    }

    #[test]
    fn a_host_is_a_name_and_an_optional_numeric_port() {
        for bad in [
            "localhost:1@evil.example",
            "127.0.0.1:7878.evil.example",
            "127.0.0.1:",
            "127.0.0.1:99999",
            "127.0.0.1:78:78",
            "[::1]x",
            "[::1]:",
            "[evil.example]:80",
            "local host",
            "",
        ] {
            assert_eq!(host_name(bad), None, "{bad}");
        }
        assert_eq!(host_name("127.0.0.1:7878"), Some("127.0.0.1"));
        assert_eq!(host_name("[::1]:7878"), Some("::1"));
        assert_eq!(host_name("LOCALHOST"), Some("LOCALHOST"));
        assert!(is_loopback_name("LOCALHOST"));
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
