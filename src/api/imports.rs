//! `/api/imports`: start an import, list them, read one with its failures, cancel and retry.
//! The shapes are the CLI's `--json` shapes.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::json;

use super::ApiState;
use super::error::ApiError;
use super::input;
use crate::importer::ImportStatus;
use crate::store::{ImportFilter, ImportProgress};

/// Failed items listed with `GET /api/imports/{id}`, newest first.
const FAILURES_SHOWN: u32 = 100;

/// `POST /api/imports` → `202 {"import_id": N}`.
pub(crate) async fn start(
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let defaults = state.importer.settings().import_options();
    let (root, options) = input::new_import(&body, defaults)?;
    let import_id = state.importer.import(root, &options).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "import_id": import_id })),
    ))
}

/// `GET /api/imports[?state=running&limit=N]`: newest first, each with its ETA.
pub(crate) async fn list(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<ImportStatus>>, ApiError> {
    let filter = input::import_filter(query.as_deref())?;
    let status = state.importer.status(&filter).await?;
    Ok(Json(status.imports))
}

/// One import, as `GET /api/imports/{id}` shows it.
#[derive(Serialize)]
pub(crate) struct ImportDetail {
    #[serde(flatten)]
    status: ImportStatus,
    /// Failed anime with their reasons (at most 100).
    failed_items: Vec<FailedItem>,
}

#[derive(Serialize)]
struct FailedItem {
    anime_id: crate::anime::AnimeId,
    reason: String,
}

/// `GET /api/imports/{id}`: progress, ETA, state and the failed anime with their reasons.
pub(crate) async fn show(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Result<Json<ImportDetail>, ApiError> {
    let import_id = input::import_id(&raw)?;
    let filter = ImportFilter {
        import_id: Some(import_id),
        ..ImportFilter::all()
    };
    let status = state
        .importer
        .status(&filter)
        .await?
        .imports
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::from(crate::error::Error::UnknownImport(import_id)))?;
    let failed_items = state
        .importer
        .failures(import_id, FAILURES_SHOWN)
        .await?
        .into_iter()
        .map(|(anime_id, reason)| FailedItem { anime_id, reason })
        .collect();
    Ok(Json(ImportDetail {
        status,
        failed_items,
    }))
}

/// `POST /api/imports/{id}/cancel`: 409 if it already finished.
pub(crate) async fn cancel(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Result<Json<ImportProgress>, ApiError> {
    let import_id = input::import_id(&raw)?;
    Ok(Json(state.importer.cancel(import_id).await?))
}

/// `POST /api/imports/{id}/retry`: 409 if it has nothing failed or cancelled to queue again.
pub(crate) async fn retry(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Result<Json<ImportProgress>, ApiError> {
    let import_id = input::import_id(&raw)?;
    Ok(Json(state.importer.retry(import_id).await?))
}
