//! `GET /api/status` (the same as `status --json`) and `GET /api/events`: the importer's
//! event stream as Server-Sent Events, one `event:` per kind, with keep-alives.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::{Stream, StreamExt};

use super::ApiState;
use super::error::ApiError;
use super::input;
use crate::events::Event;
use crate::importer::Status;
use crate::store::ImportFilter;

/// How often an idle event stream sends a comment, so proxies and browsers keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /api/status[?state=running&limit=N]`.
pub(crate) async fn status(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Status>, ApiError> {
    let filter: ImportFilter = input::import_filter(query.as_deref())?;
    Ok(Json(state.importer.status(&filter).await?))
}

/// `GET /api/events[?import_id=N]`: `event: progress|stored|finished|budget_parked|
/// budget_resumed|lagged` with the event as JSON in `data:`, in commit order. The stream
/// ends when the server shuts down.
pub(crate) async fn events(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let only = input::events_filter(query.as_deref())?;
    let shutdown = state.shutdown.clone();
    let stream = state
        .importer
        .subscribe()
        .filter(move |event| std::future::ready(concerns(event, only)))
        .map(|event| Ok(to_sse(&event)))
        .take_until(async move { shutdown.cancelled().await });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// Whether a subscriber to `only` (one import, or all) gets `event`.
fn concerns(event: &Event, only: Option<i64>) -> bool {
    let Some(only) = only else { return true };
    match event {
        Event::Progress { import_id, .. } | Event::Finished { import_id, .. } => *import_id == only,
        Event::Stored { .. } => false,
        _ => true,
    }
}

fn to_sse(event: &Event) -> SseEvent {
    let data = serde_json::to_value(event).unwrap_or_default();
    let kind = data
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("event")
        .to_string();
    SseEvent::default().event(kind).data(data.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ImportState;
    use crate::test_support::id;

    #[test]
    fn an_import_filter_keeps_its_progress_and_the_budget_but_not_other_imports() {
        let progress = |import_id| Event::Progress {
            import_id,
            root: id(1),
            discovered: 3,
            done: 1,
            failed: 0,
            queued: 2,
            state: ImportState::Running,
            eta: None,
        };
        assert!(concerns(&progress(4), Some(4)));
        assert!(!concerns(&progress(5), Some(4)));
        assert!(concerns(&progress(5), None));
        assert!(concerns(&Event::BudgetResumed, Some(4)));
        assert!(!concerns(&Event::Stored { anime: vec![id(2)] }, Some(4)));
    }
}
