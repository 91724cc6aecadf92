//! `/api/anime` and `/api/franchise`: the anime a user clicked (fetched ahead of every
//! import if not fresh), an anime from the store or cache, and a stored franchise.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;

use futures::TryStreamExt;
use futures::stream::BoxStream;

use super::ApiState;
use super::error::ApiError;
use super::input;
use crate::FranchiseItem;
use crate::anime::AnimeId;
use crate::order::{FranchiseJson, Order};
use crate::store::StoredAnime;

/// `POST /api/anime/{id}/open[?timeout_secs=N]`: the anime with its relations, fetched in
/// the interactive lane if it is not fresh; 504 if that takes longer than the timeout.
pub(crate) async fn open(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<StoredAnime>, ApiError> {
    let id = input::anime_id(&raw)?;
    let timeout = input::open_timeout(query.as_deref())?;
    match tokio::time::timeout(Duration::from_secs(timeout), state.importer.open_anime(id)).await {
        Ok(answer) => Ok(Json(answer?)),
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!(
                "anime {id} was not fetched within {timeout} s; GET /api/status shows the rate \
                 budget and the workers"
            ),
        )),
    }
}

/// `GET /api/anime/{id}`: from the store (or cache) only; 404 if it was never stored.
pub(crate) async fn show(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Result<Json<StoredAnime>, ApiError> {
    let id = input::anime_id(&raw)?;
    match state.importer.anime(id).await? {
        Some(anime) => Ok(Json(anime)),
        None => Err(ApiError::not_found(format!(
            "anime {id} is not in the store: POST /api/anime/{id}/open fetches it"
        ))),
    }
}

/// `GET /api/franchise/{root}[?order=id|release|watch]`: the same as `franchise show
/// --json [--order …]`.
pub(crate) async fn franchise(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let root = input::anime_id(&raw)?;
    let order = input::franchise_order(query.as_deref())?;
    let not_stored = || {
        ApiError::not_found(format!(
            "anime {root} is not in the store: POST /api/imports {{\"root\": {root}}} imports \
             its franchise"
        ))
    };
    if order == Order::Id {
        // Streamed as the store reads it: a franchise of 100k anime is never held whole.
        let mut items = state.importer.franchise_items(root);
        let Some(first) = items.try_next().await? else {
            return Err(not_stored());
        };
        let body = axum::body::Body::from_stream(json_chunks(root, first, items));
        return Ok((
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response());
    }
    match state.importer.franchise(root).await? {
        // Written straight from the stored franchise, with no JSON tree in between.
        Some(f) => Ok(Json(f.view(order)).into_response()),
        None => Err(not_stored()),
    }
}

/// Bytes a chunk of a streamed franchise body gathers before it is sent.
const BODY_CHUNK: usize = 64 * 1024;

/// The franchise's id-order JSON as body chunks, `first` item included. A read that fails
/// halfway ends the body early (the client sees a cut response) and is logged.
fn json_chunks(
    root: AnimeId,
    first: FranchiseItem,
    items: BoxStream<'static, Result<FranchiseItem, crate::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, axum::BoxError>> {
    let mut json = FranchiseJson::new(root);
    let first = json.push(&first).map_err(axum::BoxError::from);
    let state = Some((json, items, Some(first)));
    futures::stream::unfold(state, move |state| async move {
        let (mut json, mut items, mut first) = state?;
        if let Some(Err(e)) = first.take() {
            return Some((Err(e), None));
        }
        loop {
            match items.try_next().await {
                Ok(Some(item)) => {
                    if let Err(e) = json.push(&item) {
                        return Some((Err(e.into()), None));
                    }
                    if let Some(chunk) = json.take_chunk(BODY_CHUNK) {
                        return Some((Ok(chunk), Some((json, items, None))));
                    }
                }
                Ok(None) => return Some((Ok(json.finish()), None)),
                Err(e) => {
                    tracing::warn!(error = %e, %root, "reading a franchise failed halfway through its response");
                    return Some((Err(e.into()), None));
                }
            }
        }
    })
}
