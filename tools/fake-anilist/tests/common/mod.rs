//! Shared test helpers: start a fake, POST GraphQL to it over loopback, read the answer.
#![allow(dead_code)]

use std::path::PathBuf;

use fake_anilist::{FakeAniList, FakeConfig, RateModel, World};
use serde_json::Value;

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
}

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/anilist")
}

/// A fake with rate limiting off, so tests that are not about it never trip it.
pub async fn start(world: World) -> FakeAniList {
    FakeAniList::start(FakeConfig {
        world,
        rate: RateModel::disabled(),
        ..FakeConfig::default()
    })
    .await
    .unwrap()
}

/// What every helper request sends, as a well-behaved client does: AniList's edge refuses
/// requests without a Referer.
pub const REFERER: &str = "https://github.com/franchise/fake-anilist-tests";
pub const USER_AGENT: &str = "fake-anilist-tests";

/// A client sending the Referer and User-Agent above on every request.
pub fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::REFERER,
        reqwest::header::HeaderValue::from_static(REFERER),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .user_agent(USER_AGENT)
        .build()
        .unwrap()
}

pub async fn post(url: &str, query: &str, variables: Value, auth: bool) -> Reply {
    let mut req = client()
        .post(url)
        .json(&serde_json::json!({"query": query, "variables": variables}));
    if auth {
        req = req.header("Authorization", "Bearer test-token");
    }
    reply(req).await
}

/// POSTs a GraphQL body with exactly these headers (no Referer unless given).
pub async fn post_with(url: &str, query: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = reqwest::Client::new()
        .post(url)
        .json(&serde_json::json!({"query": query}));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    reply(req).await
}

pub async fn reply(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.unwrap();
    Reply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        text: resp.text().await.unwrap(),
    }
}

pub async fn media_query(url: &str, id: i32) -> Reply {
    post(
        url,
        &format!("{{ Media(id: {id}) {{ id }} }}"),
        Value::Null,
        false,
    )
    .await
}

/// The field set the franchise client asks for per media.
pub const FULL_MEDIA: &str = "id idMal type format status episodes season seasonYear \
    startDate { year month day } title { romaji english native userPreferred } isAdult \
    relations { edges { id relationType(version: 2) node { id type format status title { romaji english native } } } }";
