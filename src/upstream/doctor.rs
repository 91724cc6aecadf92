//! `franchise doctor`'s checks, one after another: the name, the connection, one minimal
//! request with the configured headers through the shared budget (status, the Referer gate,
//! the rate-limit headers, the round trip), and whether AniList's schema still has every type,
//! field and argument the import query uses (by introspection).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use super::client::{AniListClient, RawAnswer, USER_AGENT};
use super::query::batch_query;
use super::response::parse_page;

/// How a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    /// Not run: an earlier check failed, or it does not apply (TLS on plain http).
    Skip,
}

/// One check, with what it found in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub detail: String,
}

/// Everything `franchise doctor` found. `healthy` only when every check passed or was
/// skipped for not applying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkup {
    pub endpoint: String,
    pub referer: String,
    pub user_agent: String,
    pub checks: Vec<Check>,
    pub healthy: bool,
    /// One line: all is well, or the first thing to fix.
    pub verdict: String,
}

/// The sentence AniList (and its edge's Referer gate) answers a refused request with.
const DISABLED: &str = "temporarily disabled";

/// Runs every check against the client's endpoint. Two requests go through the shared
/// budget: the minimal import request and the introspection.
pub(crate) async fn checkup(client: &AniListClient) -> Checkup {
    let endpoint = client.endpoint().to_string();
    let mut checks = Vec::new();
    let url = reqwest::Url::parse(&endpoint).ok();
    let host = url.as_ref().and_then(|u| u.host_str().map(str::to_string));
    let port = url.as_ref().and_then(|u| u.port_or_known_default());
    let tls = url.as_ref().is_some_and(|u| u.scheme() == "https");

    let reachable = match (host, port) {
        (Some(host), Some(port)) => name_and_connection(&host, port, &mut checks).await,
        _ => {
            checks.push(fail("dns", format!("{endpoint:?} names no host and port")));
            false
        }
    };

    let answer = if reachable {
        // The query imports send, at the configured walk depth.
        let query = batch_query(client.deepest_walk());
        let body = json!({"query": query, "variables": {"ids": [1], "perPage": 1}});
        Some(client.send_raw(&body).await)
    } else {
        None
    };
    match &answer {
        None => checks.push(skip("tls", "not tried: no connection")),
        Some(_) if !tls => checks.push(skip("tls", "plain http: no TLS (a local fake?)")),
        Some(Err(e)) if looks_like_tls(e) => checks.push(fail("tls", e.clone())),
        Some(Err(_)) => checks.push(skip("tls", "not reached: the request failed first")),
        Some(Ok(_)) => checks.push(pass("tls", "the handshake and the certificate are good")),
    }
    let request_ok = request_checks(answer.as_ref(), client.referer(), &mut checks);

    if request_ok {
        schema_check(client, &mut checks).await;
    } else {
        checks.push(skip("schema", "not tried: the request above failed"));
    }

    let healthy = checks.iter().all(|c| c.verdict != Verdict::Fail);
    let verdict = match checks.iter().find(|c| c.verdict == Verdict::Fail) {
        None => "healthy: AniList answers franchise's import query".to_string(),
        Some(first) => format!("not healthy: {} failed: {}", first.name, first.detail),
    };
    Checkup {
        endpoint,
        referer: client.referer().to_string(),
        user_agent: USER_AGENT.to_string(),
        checks,
        healthy,
        verdict,
    }
}

fn pass(name: &'static str, detail: impl Into<String>) -> Check {
    check(name, Verdict::Pass, detail)
}

fn fail(name: &'static str, detail: impl Into<String>) -> Check {
    check(name, Verdict::Fail, detail)
}

fn skip(name: &'static str, detail: impl Into<String>) -> Check {
    check(name, Verdict::Skip, detail)
}

fn check(name: &'static str, verdict: Verdict, detail: impl Into<String>) -> Check {
    Check {
        name,
        verdict,
        detail: detail.into(),
    }
}

/// DNS, then a TCP connection to the first address: whether AniList can be reached at all.
async fn name_and_connection(host: &str, port: u16, checks: &mut Vec<Check>) -> bool {
    let started = Instant::now();
    let addrs: Vec<std::net::SocketAddr> = match tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::lookup_host((host, port)),
    )
    .await
    {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(e)) => {
            checks.push(fail(
                "dns",
                format!("cannot resolve {host}: {e}. Check the network and the DNS settings"),
            ));
            return false;
        }
        Err(_) => {
            checks.push(fail(
                "dns",
                format!("no answer resolving {host} within 10 s"),
            ));
            return false;
        }
    };
    let Some(first) = addrs.first().copied() else {
        checks.push(fail("dns", format!("{host} resolves to no address")));
        return false;
    };
    let shown: Vec<String> = addrs.iter().take(3).map(|a| a.ip().to_string()).collect();
    checks.push(pass(
        "dns",
        format!(
            "{host} is {} ({} ms)",
            shown.join(", "),
            started.elapsed().as_millis()
        ),
    ));
    let started = Instant::now();
    match tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(first),
    )
    .await
    {
        Ok(Ok(_)) => {
            checks.push(pass(
                "connect",
                format!(
                    "{first} accepts connections ({} ms)",
                    started.elapsed().as_millis()
                ),
            ));
            true
        }
        Ok(Err(e)) => {
            checks.push(fail(
                "connect",
                format!("{first}: {e}. A firewall, a proxy or no network in between?"),
            ));
            false
        }
        Err(_) => {
            checks.push(fail(
                "connect",
                format!("{first}: no connection within 10 s"),
            ));
            false
        }
    }
}

fn looks_like_tls(error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    e.contains("certificate") || e.contains("tls") || e.contains("handshake")
}

/// The minimal request: its status, the gate, the rate-limit headers, the round trip, and
/// whether the answer is AniList's. True when the answer was a usable AniList page.
fn request_checks(
    answer: Option<&Result<RawAnswer, String>>,
    referer: &str,
    checks: &mut Vec<Check>,
) -> bool {
    let answer = match answer {
        None => {
            checks.push(skip("request", "not sent: no connection"));
            for name in ["gate", "rate_limit", "answer"] {
                checks.push(skip(name, "not sent"));
            }
            return false;
        }
        Some(Err(e)) => {
            checks.push(fail("request", format!("no answer: {e}")));
            for name in ["gate", "rate_limit", "answer"] {
                checks.push(skip(name, "no answer"));
            }
            return false;
        }
        Some(Ok(answer)) => answer,
    };
    checks.push(check(
        "request",
        if answer.status < 400 {
            Verdict::Pass
        } else {
            Verdict::Fail
        },
        format!(
            "HTTP {} in {} ms (one import request for one id, through the shared budget)",
            answer.status,
            answer.round_trip.as_millis()
        ),
    ));
    let text = String::from_utf8_lossy(&answer.body);
    if answer.status == 403 {
        let said =
            first_error_message(&answer.body).unwrap_or_else(|| text.chars().take(200).collect());
        let why = if said.contains(DISABLED) {
            "AniList's edge answers this to requests without a Referer, and during real \
             outages; franchise sent one, so this is an outage or a proxy dropped the header"
        } else {
            "refused"
        };
        checks.push(fail(
            "gate",
            format!("HTTP 403 {said:?} with Referer {referer:?}: {why}"),
        ));
    } else {
        checks.push(pass(
            "gate",
            format!("let through (Referer {referer:?} sent; AniList refuses requests without one)"),
        ));
    }
    let h = &answer.headers;
    let limit = match (h.limit, h.remaining) {
        (Some(limit), Some(remaining)) => {
            format!("X-RateLimit-Limit {limit}, Remaining {remaining}")
        }
        _ => "no X-RateLimit headers".to_string(),
    };
    if answer.status == 429 {
        let after = h.retry_after.map_or("no Retry-After".to_string(), |d| {
            format!("Retry-After {} s", d.as_secs())
        });
        checks.push(fail(
            "rate_limit",
            format!("rate limited (429, {after}); {limit}"),
        ));
    } else {
        checks.push(pass("rate_limit", limit));
    }
    match parse_page(answer.status, h.retry_after, &answer.body) {
        Ok(_) => {
            checks.push(pass(
                "answer",
                "AniList's GraphQL JSON, as the import reads it",
            ));
            true
        }
        Err(e) => {
            let kind = answer.content_type.as_deref().unwrap_or("no content type");
            checks.push(fail("answer", format!("{e} ({kind})")));
            false
        }
    }
}

fn first_error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value["errors"][0]["message"].as_str().map(str::to_string)
}

/// Introspects the schema and walks the import query through it.
async fn schema_check(client: &AniListClient, checks: &mut Vec<Check>) {
    let answer = match client.send_raw(&json!({ "query": INTROSPECTION })).await {
        Ok(answer) => answer,
        Err(e) => {
            checks.push(fail(
                "schema",
                format!("the introspection got no answer: {e}"),
            ));
            return;
        }
    };
    let schema = match Schema::read(&answer.body) {
        Ok(schema) => schema,
        Err(why) => {
            checks.push(fail(
                "schema",
                format!("HTTP {} to the introspection: {why}", answer.status),
            ));
            return;
        }
    };
    let used = match parse_selection(&batch_query(1)) {
        Ok(used) => used,
        Err(why) => {
            checks.push(fail(
                "schema",
                format!("the import query does not parse: {why}"),
            ));
            return;
        }
    };
    let mut missing = Vec::new();
    let mut checked = 0;
    schema.walk(&schema.query_type, &used, &mut missing, &mut checked);
    if missing.is_empty() {
        checks.push(pass(
            "schema",
            format!(
                "every type, field and argument the import query uses is there ({checked} checked)"
            ),
        ));
    } else {
        checks.push(fail(
            "schema",
            format!(
                "AniList's schema lacks what the import query uses: {}. franchise needs an \
                 update",
                missing.join(", ")
            ),
        ));
    }
}

const INTROSPECTION: &str = "query FranchiseSchema { __schema { queryType { name } types { \
     name fields { name args { name } type { kind name ofType { kind name ofType { kind name \
     ofType { kind name } } } } } } } }";

/// The schema as introspection told it: each type's fields, with their argument names and
/// the named type they return.
struct Schema {
    query_type: String,
    types: HashMap<String, Fields>,
}

/// A type's fields: each with its argument names and the named type it returns.
type Fields = HashMap<String, (Vec<String>, Option<String>)>;

impl Schema {
    fn read(body: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
        let schema = &value["data"]["__schema"];
        let query_type = schema["queryType"]["name"]
            .as_str()
            .ok_or_else(|| match first_error_message(body) {
                Some(message) => format!("refused: {message}"),
                None => "no `data.__schema.queryType` in the answer".to_string(),
            })?
            .to_string();
        let mut types = HashMap::new();
        for t in schema["types"].as_array().into_iter().flatten() {
            let Some(name) = t["name"].as_str() else {
                continue;
            };
            let mut fields = HashMap::new();
            for f in t["fields"].as_array().into_iter().flatten() {
                let Some(field) = f["name"].as_str() else {
                    continue;
                };
                let args = f["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a["name"].as_str().map(str::to_string))
                    .collect();
                fields.insert(field.to_string(), (args, named_type(&f["type"])));
            }
            types.insert(name.to_string(), fields);
        }
        Ok(Self { query_type, types })
    }

    fn walk(&self, on: &str, used: &[Field], missing: &mut Vec<String>, checked: &mut usize) {
        let Some(fields) = self.types.get(on) else {
            missing.push(format!("the type {on}"));
            return;
        };
        for field in used {
            *checked += 1;
            let Some((args, returns)) = fields.get(&field.name) else {
                missing.push(format!("{on}.{}", field.name));
                continue;
            };
            for arg in &field.args {
                *checked += 1;
                if !args.contains(arg) {
                    missing.push(format!("{on}.{}({arg}:)", field.name));
                }
            }
            if !field.children.is_empty() {
                match returns {
                    Some(child) => self.walk(child, &field.children, missing, checked),
                    None => missing.push(format!("the type of {on}.{}", field.name)),
                }
            }
        }
    }
}

/// The named type under any NON_NULL and LIST wrappers.
fn named_type(t: &Value) -> Option<String> {
    let mut t = t;
    for _ in 0..8 {
        if let Some(name) = t["name"].as_str() {
            return Some(name.to_string());
        }
        t = &t["ofType"];
    }
    None
}

/// One selected field of a query, with the argument names it passes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    name: String,
    args: Vec<String>,
    children: Vec<Field>,
}

/// The selection of the first operation in `query`: enough GraphQL for franchise's own
/// documents (fields, arguments, nested selections; no fragments, which they do not use).
fn parse_selection(query: &str) -> Result<Vec<Field>, String> {
    let tokens = tokenize(query);
    let start = tokens
        .iter()
        .position(|t| t == "{")
        .ok_or("no selection set")?;
    // Variable definitions hold no `{`, so the first one opens the operation's selection.
    let mut i = start;
    parse_set(&tokens, &mut i)
}

fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            tokens.push(std::mem::take(&mut word));
        }
        if "{}():$[]!".contains(c) {
            tokens.push(c.to_string());
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

fn parse_set(tokens: &[String], i: &mut usize) -> Result<Vec<Field>, String> {
    if tokens.get(*i).map(String::as_str) != Some("{") {
        return Err(format!("expected {{ at token {i}"));
    }
    *i += 1;
    let mut fields = Vec::new();
    loop {
        let token = tokens.get(*i).ok_or("unclosed {")?;
        *i += 1;
        if token == "}" {
            return Ok(fields);
        }
        let mut field = Field {
            name: token.clone(),
            args: Vec::new(),
            children: Vec::new(),
        };
        if tokens.get(*i).map(String::as_str) == Some("(") {
            *i += 1;
            let mut depth = 1;
            while depth > 0 {
                let t = tokens.get(*i).ok_or("unclosed (")?;
                match t.as_str() {
                    "(" => depth += 1,
                    ")" => depth -= 1,
                    _ if depth == 1
                        && tokens.get(*i + 1).map(String::as_str) == Some(":")
                        && tokens.get(i.wrapping_sub(1)).map(String::as_str) != Some("$") =>
                    {
                        field.args.push(t.clone());
                    }
                    _ => {}
                }
                *i += 1;
            }
        }
        if tokens.get(*i).map(String::as_str) == Some("{") {
            field.children = parse_set(tokens, i)?;
        }
        fields.push(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_import_query_parses_into_its_fields_and_arguments() {
        let fields = parse_selection(&batch_query(1)).unwrap();
        assert_eq!(fields.len(), 1);
        let page = &fields[0];
        assert_eq!(page.name, "Page");
        assert_eq!(page.args, vec!["page", "perPage"]);
        let media = &page.children[0];
        assert_eq!(
            (media.name.as_str(), media.args.clone()),
            ("media", vec!["id_in".to_string(), "type".to_string()])
        );
        let relations = media
            .children
            .iter()
            .find(|f| f.name == "relations")
            .unwrap();
        let edges = &relations.children[0];
        let relation_type = edges
            .children
            .iter()
            .find(|f| f.name == "relationType")
            .unwrap();
        assert_eq!(relation_type.args, vec!["version"]);
        let node = edges.children.iter().find(|f| f.name == "node").unwrap();
        assert!(
            node.children
                .iter()
                .any(|f| f.name == "title" && f.children.len() == 3)
        );
    }

    #[test]
    fn a_schema_without_a_used_field_or_argument_is_named() {
        let body = json!({"data": {"__schema": {
        "queryType": {"name": "Query"},
        "types": [
            {"name": "Query", "fields": [
                {"name": "Page", "args": [{"name": "page"}, {"name": "perPage"}],
                 "type": {"kind": "OBJECT", "name": "Page"}}]},
            {"name": "Page", "fields": [
                {"name": "media", "args": [{"name": "id_in"}],
                 "type": {"kind": "LIST", "name": null, "ofType": {"kind": "OBJECT", "name": "Media"}}}]},
            {"name": "Media", "fields": [{"name": "id", "args": [], "type": {"kind": "SCALAR", "name": "Int"}}]}
        ]}}});
        let schema = Schema::read(body.to_string().as_bytes()).unwrap();
        let used = parse_selection(&batch_query(1)).unwrap();
        let mut missing = Vec::new();
        let mut checked = 0;
        schema.walk(&schema.query_type, &used, &mut missing, &mut checked);
        assert!(
            missing.contains(&"Page.media(type:)".to_string()),
            "{missing:?}"
        );
        assert!(
            missing.contains(&"Media.relations".to_string()),
            "{missing:?}"
        );
        assert!(missing.contains(&"Media.idMal".to_string()), "{missing:?}");
        assert!(
            !missing.iter().any(|m| m.starts_with("Query.")),
            "{missing:?}"
        );
    }
}
