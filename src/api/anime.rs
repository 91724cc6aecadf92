//! `/api/anime` and `/api/franchise`: the anime a user clicked (fetched ahead of every
//! import if not fresh), an anime from the store or cache, and a stored franchise.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;

use futures::TryStreamExt;

use super::ApiState;
use super::error::ApiError;
use super::input;
use crate::order::Order;
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
        // Streamed as the store reads it: a franchise of 100k anime is never held whole. A
        // read that fails halfway cuts the body short.
        let Some(chunks) = state.importer.franchise_json(root).await? else {
            return Err(not_stored());
        };
        let chunks = chunks.inspect_err(move |e| {
            tracing::warn!(error = %e, %root, "reading a franchise failed halfway through its response");
        });
        return Ok((
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            axum::body::Body::from_stream(chunks),
        )
            .into_response());
    }
    match state.importer.franchise(root).await? {
        // Written straight from the stored franchise, with no JSON tree in between.
        Some(f) => Ok(Json(f.view(order)).into_response()),
        None => Err(not_stored()),
    }
}
