//! AniList's response bodies: GraphQL results re-shaped to `{"errors":[{message,status,
//! locations}],"data":…}` with the HTTP status AniList uses, plus its canned error bodies.

use serde::Serialize;

/// Byte-for-byte the body of the recorded 429 (tests/fixtures/anilist/anilist_429.json).
pub const TOO_MANY_REQUESTS: &str =
    r#"{"data": null,"errors": [{"message": "Too Many Requests.","status": 429}]}"#;
/// AniList's 403 as its edge has sent it since September 2026, both during announced outages
/// and to every request without a `Referer` (rakuyomi issue #346, animego PR #170).
pub const API_DISABLED: &str = r#"{"errors":[{"message":"The AniList API has been temporarily disabled due to severe stability issues.","status":403,"locations":[{"line":1,"column":1}]}],"data":null}"#;
pub const INTERNAL_ERROR: &str =
    r#"{"data":null,"errors":[{"message":"Internal Server Error","status":500}]}"#;
/// What Cloudflare sends when AniList's origin is unreachable.
pub const BAD_GATEWAY: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n";
/// Cloudflare's page when AniList's origin answers something it cannot use (`html_5xx` mode).
pub const CLOUDFLARE_520: &str = "<!DOCTYPE html>\n<html lang=\"en-US\">\n<head><title>graphql.anilist.co | 520: Web server is returning an unknown error</title></head>\n<body>\n<h1>Web server is returning an unknown error</h1>\n<p>Error code 520</p>\n<p>Cloudflare Ray ID: 8f0c0ffee0000000 &bull; Performance &amp; security by Cloudflare</p>\n</body>\n</html>\n";
/// What a wrong host, a reverse proxy or a captive portal sends for an unknown path.
pub const NOT_FOUND_HTML: &str = "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
/// The first bytes of a `Page` answer; a stalled response sends these and then nothing.
pub const STALL_PREFIX: &str =
    r#"{"data":{"Page":{"pageInfo":{"total":50,"perPage":50},"media":[{"id":1,"#;
pub const GATEWAY_TIMEOUT: &str = "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n";
/// A 200 whose body is not JSON at all (a maintenance page served by a misbehaving edge).
pub const MALFORMED: &str = "<!DOCTYPE html><html><body><h1>AniList</h1><p>Something went wrong \u{2014} please refresh.</p></body></html>";

#[derive(Serialize)]
struct Body {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<ErrorItem>,
    data: serde_json::Value,
}

#[derive(Serialize)]
struct ErrorItem {
    message: String,
    status: u16,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    locations: Vec<Location>,
}

#[derive(Serialize)]
struct Location {
    line: usize,
    column: usize,
}

/// Resolver errors carry their status as an extension; errors without one come from
/// parsing, validation or the complexity cap, which AniList answers with 400.
pub fn render(response: async_graphql::Response) -> (u16, String) {
    let mut data = response.data.into_json().unwrap_or(serde_json::Value::Null);
    for e in &response.errors {
        null_at(&mut data, &e.path);
    }
    let errors: Vec<ErrorItem> = response
        .errors
        .into_iter()
        .map(|e| {
            let status = e
                .extensions
                .as_ref()
                .and_then(|x| x.get("status"))
                .and_then(|v| match v {
                    async_graphql::Value::Number(n) => n.as_u64(),
                    _ => None,
                })
                .and_then(|n| u16::try_from(n).ok())
                .unwrap_or(if e.path.is_empty() { 400 } else { 500 });
            ErrorItem {
                message: e.message,
                status,
                locations: e
                    .locations
                    .iter()
                    .map(|p| Location {
                        line: p.line,
                        column: p.column,
                    })
                    .collect(),
            }
        })
        .collect();
    let status = errors.first().map_or(200, |e| e.status);
    (status, to_json(&Body { errors, data }))
}

/// async-graphql drops a failed nullable field from `data`; AniList shows it as null
/// (`{"data":{"Media":null}}`), so put it back.
fn null_at(data: &mut serde_json::Value, path: &[async_graphql::PathSegment]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    if data.is_null() {
        *data = serde_json::Value::Object(serde_json::Map::new());
    }
    let mut node = data;
    for segment in parents {
        let next = match segment {
            async_graphql::PathSegment::Field(name) => node.get_mut(name.as_str()),
            async_graphql::PathSegment::Index(i) => node.get_mut(*i),
        };
        match next {
            Some(n) => node = n,
            None => return,
        }
    }
    if let (async_graphql::PathSegment::Field(name), Some(object)) = (last, node.as_object_mut()) {
        object
            .entry(name.clone())
            .or_insert(serde_json::Value::Null);
    }
}

/// A request that is not a GraphQL request at all (bad JSON, no `query`).
pub fn bad_request(message: &str) -> String {
    to_json(&Body {
        errors: vec![ErrorItem {
            message: message.to_string(),
            status: 400,
            locations: Vec::new(),
        }],
        data: serde_json::Value::Null,
    })
}

fn to_json(body: &Body) -> String {
    serde_json::to_string(body).unwrap_or_else(|_| INTERNAL_ERROR.to_string())
}
