//! Reading what a client sent: ids in paths, query strings and JSON bodies, each checked here
//! so a bad value gets a 400 that names it, never a panic or a generic rejection.

use axum::body::Bytes;
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::anime::AnimeId;
use crate::order::{InvalidOrder, Order};
use crate::producer::ImportOptions;
use crate::producer::MAX_DEPTH_LIMIT;
use crate::store::{ImportFilter, ImportState};

/// An anime id from a path segment.
pub(crate) fn anime_id(raw: &str) -> Result<AnimeId, ApiError> {
    raw.parse::<AnimeId>()
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// An import id from a path segment: plain decimal digits from 1.
pub(crate) fn import_id(raw: &str) -> Result<i64, ApiError> {
    let plain = !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) && !raw.starts_with('0');
    match raw.parse::<i64>() {
        Ok(id) if plain && id >= 1 => Ok(id),
        _ => Err(ApiError::bad_request(format!(
            "invalid import id {raw:?}: expected plain decimal digits from 1, as POST \
             /api/imports returned it"
        ))),
    }
}

/// `?state=running&limit=20` on `GET /api/imports`.
pub(crate) fn import_filter(query: Option<&str>) -> Result<ImportFilter, ApiError> {
    let mut filter = ImportFilter::all();
    for (key, value) in pairs(query)? {
        match key.as_str() {
            "state" => {
                let state = ImportState::ALL
                    .into_iter()
                    .find(|s| s.as_str() == value)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "invalid state {value:?}: expected one of {}",
                            ImportState::ALL.map(|s| s.as_str()).join(", ")
                        ))
                    })?;
                filter.state = Some(state);
            }
            "limit" => filter.limit = Some(bounded(&key, &value, 1, 10_000)? as u32),
            _ => return Err(unknown_parameter(&key, "state, limit")),
        }
    }
    Ok(filter)
}

/// `?timeout_secs=N` on `POST /api/anime/{id}/open`: 1 to 3600, default 120.
pub(crate) fn open_timeout(query: Option<&str>) -> Result<u64, ApiError> {
    let mut timeout = 120;
    for (key, value) in pairs(query)? {
        match key.as_str() {
            "timeout_secs" => timeout = bounded(&key, &value, 1, 3600)?,
            _ => return Err(unknown_parameter(&key, "timeout_secs")),
        }
    }
    Ok(timeout)
}

/// `?order=id|release|watch` on `GET /api/franchise/{root}`.
pub(crate) fn franchise_order(query: Option<&str>) -> Result<Order, ApiError> {
    let mut order = Order::Id;
    for (key, value) in pairs(query)? {
        match key.as_str() {
            "order" => {
                order = value
                    .parse()
                    .map_err(|e: InvalidOrder| ApiError::bad_request(e.to_string()))?;
            }
            _ => return Err(unknown_parameter(&key, "order")),
        }
    }
    Ok(order)
}

/// `?import_id=N` on `GET /api/events`: only that import's progress and finish.
pub(crate) fn events_filter(query: Option<&str>) -> Result<Option<i64>, ApiError> {
    let mut only = None;
    for (key, value) in pairs(query)? {
        match key.as_str() {
            "import_id" => only = Some(import_id(&value)?),
            _ => return Err(unknown_parameter(&key, "import_id")),
        }
    }
    Ok(only)
}

/// The body of `POST /api/imports`:
/// `{"root": 16498, "depth"?: 0..=1000, "max_items"?: 1.., "force_refresh"?: bool}`.
pub(crate) fn new_import(
    body: &Bytes,
    defaults: ImportOptions,
) -> Result<(AnimeId, ImportOptions), ApiError> {
    const SHAPE: &str =
        r#"{"root": 16498, "depth": 0..1000, "max_items": 1.., "force_refresh": false}"#;
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not JSON ({e}): expected an object like {SHAPE}"
        ))
    })?;
    let Value::Object(fields) = value else {
        return Err(ApiError::bad_request(format!(
            "the body is {}: expected an object like {SHAPE}",
            kind(&value)
        )));
    };
    for key in fields.keys() {
        if !["root", "depth", "max_items", "force_refresh"].contains(&key.as_str()) {
            return Err(ApiError::bad_request(format!(
                "unknown field {key:?}: expected root, depth, max_items or force_refresh"
            )));
        }
    }
    let root = match fields.get("root") {
        None => {
            return Err(ApiError::bad_request(format!(
                "the body has no \"root\": expected {SHAPE}"
            )));
        }
        Some(Value::Number(n)) => anime_id(&n.to_string())?,
        Some(Value::String(s)) => anime_id(s)?,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid root {other}: expected an AniList anime id, a whole number from 1"
            )));
        }
    };
    let mut options = defaults;
    if let Some(depth) = number(&fields, "depth", 0, u64::from(MAX_DEPTH_LIMIT))? {
        options = options.with_max_depth(depth as u32);
    }
    if let Some(max) = number(&fields, "max_items", 1, u64::from(u32::MAX))? {
        options = options.with_max_items(max as u32);
    }
    match fields.get("force_refresh") {
        None => {}
        Some(Value::Bool(b)) => options = options.with_force_refresh(*b),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid force_refresh {other}: expected true or false"
            )));
        }
    }
    Ok((root, options))
}

fn number(
    fields: &Map<String, Value>,
    key: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, ApiError> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
            _ => Err(ApiError::bad_request(format!(
                "invalid {key} {n}: expected a whole number from {min} to {max}"
            ))),
        },
        Some(other) => Err(ApiError::bad_request(format!(
            "invalid {key} {other}: expected a whole number from {min} to {max}"
        ))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The query's key/value pairs, percent-decoded; a key given twice is refused.
fn pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        let key = decode(key)?;
        let value = decode(value)?;
        if out.iter().any(|(k, _)| *k == key) {
            return Err(ApiError::bad_request(format!(
                "query parameter {key:?} is given twice: give it once"
            )));
        }
        out.push((key, value));
    }
    Ok(out)
}

/// Percent-decodes a query part or cookie value (`+` is a space, as in forms).
pub(crate) fn decode(raw: &str) -> Result<String, ApiError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "bad percent-encoding in the query {raw:?}: expected %XX with two \
                             hex digits"
                        ))
                    })?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::bad_request(format!("the query {raw:?} does not decode to UTF-8")))
}

fn bounded(key: &str, value: &str, min: u64, max: u64) -> Result<u64, ApiError> {
    match value.parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(ApiError::bad_request(format!(
            "invalid {key} {value:?}: expected a whole number from {min} to {max}"
        ))),
    }
}

fn unknown_parameter(key: &str, known: &str) -> ApiError {
    ApiError::bad_request(format!("unknown query parameter {key:?}: expected {known}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_import_reads_every_field_and_names_each_bad_one() {
        let defaults = ImportOptions::default();
        let (root, options) = new_import(
            &Bytes::from_static(
                br#"{"root": 21, "depth": 3, "max_items": 40, "force_refresh": true}"#,
            ),
            defaults.clone(),
        )
        .unwrap();
        assert_eq!(i64::from(root), 21);
        assert_eq!(options.max_depth, 3);
        assert_eq!(options.max_items, 40);
        assert!(options.force_refresh);

        let cases: [(&[u8], &str); 9] = [
            (b"", "not JSON"),
            (b"[1]", "an array"),
            (br#"{"depth": 2}"#, "no \"root\""),
            (br#"{"root": 0}"#, "0"),
            (br#"{"root": -4}"#, "-4"),
            (br#"{"root": 1.5}"#, "1.5"),
            (br#"{"root": 1, "depth": 1001}"#, "invalid depth 1001"),
            (br#"{"root": 1, "max_items": 0}"#, "invalid max_items 0"),
            (
                br#"{"root": 1, "maxitems": 5}"#,
                "unknown field \"maxitems\"",
            ),
        ];
        for (body, named) in cases {
            let err = new_import(&Bytes::from_static(body), defaults.clone()).unwrap_err();
            assert_eq!(err.status, 400, "{body:?}");
            assert!(err.message.contains(named), "{body:?}: {}", err.message);
        }
    }

    #[test]
    fn query_strings_are_decoded_and_checked() {
        let f = import_filter(Some("state=done_with_failures&limit=5")).unwrap();
        assert_eq!(f.state, Some(ImportState::DoneWithFailures));
        assert_eq!(f.limit, Some(5));
        assert!(
            import_filter(Some("state=runing"))
                .unwrap_err()
                .message
                .contains("runing")
        );
        assert!(import_filter(Some("limit=0")).is_err());
        assert!(import_filter(Some("limit=1&limit=2")).is_err());
        assert!(
            import_filter(Some("color=red"))
                .unwrap_err()
                .message
                .contains("color")
        );
        assert!(import_filter(Some("state=%zz")).is_err());
        assert_eq!(open_timeout(None).unwrap(), 120);
        assert_eq!(open_timeout(Some("timeout_secs=5")).unwrap(), 5);
        assert!(open_timeout(Some("timeout_secs=0")).is_err());
        assert_eq!(events_filter(Some("import_id=7")).unwrap(), Some(7));
        assert!(import_id("007").is_err());
        assert!(import_id("9223372036854775808").is_err());
    }
}
