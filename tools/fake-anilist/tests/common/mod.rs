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

pub async fn post(url: &str, query: &str, variables: Value, auth: bool) -> Reply {
    let client = reqwest::Client::new();
    let mut req = client
        .post(url)
        .json(&serde_json::json!({"query": query, "variables": variables}));
    if auth {
        req = req.header("Authorization", "Bearer test-token");
    }
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
