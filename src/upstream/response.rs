//! Turns what AniList sent back (status, headers, body) into anime records or a typed error.
//! Pure functions over bytes, so real recorded responses and fuzzed input test them directly.

use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::{UpstreamError, excerpt};
use crate::anime::{
    Anime, AnimeId, FuzzyDate, MediaKind, RelatedMedia, RelationEdge, RelationType, Title,
};

/// AniList's `Retry-After` when a 429 forgets to say: its ban lasts a minute.
pub(crate) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

/// What a `Page(media(id_in: …))` answer holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PageAnswer {
    /// The media the page listed (the ids asked for, as far as AniList has them).
    pub media: Vec<Anime>,
    /// Relation nodes the answer carried whole, with their own relations (a query that walks
    /// more than one level), in the order met, each once. May include MANGA and other kinds,
    /// and the page's own media again; the caller picks what it walks.
    pub walked: Vec<Anime>,
    /// The answer's size and shape, which teach the walk how deep to go.
    pub shape: AnswerShape,
    /// Records that came back for an id but broke AniList's shape (a relation to id -5, a
    /// title that is a number, `relations: null`): each fails alone, the rest are stored.
    pub rejected: Vec<(AnimeId, String)>,
    /// Why an id missing from this answer may not be called "not found": AniList reported an
    /// error for part of it (`data` with `errors`), or a record came back whose id could not
    /// be read. `None` for a clean answer, where a missing id is unknown, deleted or adult.
    pub unsettled: Option<String>,
}

/// How big an answer was and how it branched: enough to predict the next one's size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AnswerShape {
    /// The body as read (decompressed).
    pub bytes: usize,
    /// Media records in it: the page's, and every edge's node (the same anime met again
    /// counts again: the answer carries it again).
    pub records: usize,
    /// Records that came with their own relations, and those relations' edges: their ratio is
    /// the franchise's fan-out.
    pub whole: usize,
    pub whole_edges: usize,
}

/// The answer to a `Page(media(id_in: …))` request: the anime that came back, and the
/// relation nodes it carried whole.
///
/// `status` is the HTTP status; `retry_after` the parsed `Retry-After` header, if any.
pub(crate) fn parse_page(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<PageAnswer, UpstreamError> {
    let checked = checked_data(status, retry_after, body)?;
    let page: PageData =
        serde_json::from_str(checked.data.get()).map_err(|e| malformed(&e, body))?;
    // `errors` beside `data`: a partial answer if the page's list came through (its records
    // may be null where they failed), else the whole request failed as the errors say.
    let records = match page.page.map(|p| p.media) {
        Some(Some(records)) => records,
        missing => {
            return Err(checked.partial_error.unwrap_or_else(|| {
                let what = match missing {
                    None => "`data.Page` is missing",
                    Some(_) => "`data.Page.media` is null",
                };
                malformed_msg(what, body)
            }));
        }
    };
    let partial_error = checked.partial_error;
    let records: Vec<Box<RawValue>> = records.into_iter().flatten().collect();
    let mut walked = Walked::default();
    let mut answer = PageAnswer {
        unsettled: partial_error
            .map(|e| format!("AniList reported an error for part of its answer: {e}")),
        ..PageAnswer::default()
    };
    for raw in records {
        match page_record(&raw, body, &mut walked) {
            Ok(anime) => answer.media.push(anime),
            Err((Some(id), reason)) => answer.rejected.push((id, reason)),
            Err((None, reason)) => {
                answer
                    .unsettled
                    .get_or_insert_with(|| format!("a record without a readable id: {reason}"));
            }
        }
    }
    let mut shape = walked.shape;
    shape.bytes = body.len();
    shape.records += answer.media.len() + answer.rejected.len();
    answer.walked = walked.anime;
    answer.shape = shape;
    Ok(answer)
}

/// One record of a page, the answer for an id asked for: whole, with its relations. A record
/// that breaks the shape is its id's failure (if the id can be read) and no one else's.
fn page_record(
    raw: &RawValue,
    body: &[u8],
    walked: &mut Walked,
) -> Result<Anime, (Option<AnimeId>, String)> {
    let id_of = || {
        serde_json::from_str::<NodeHead>(raw.get())
            .ok()
            .and_then(|head| AnimeId::new(head.id).ok())
    };
    let media: RawMedia = serde_json::from_str(raw.get()).map_err(|e| {
        (
            id_of(),
            format!(
                "its record breaks AniList's shape: {e} (record starts: {:?})",
                excerpt(raw.get().as_bytes())
            ),
        )
    })?;
    if media.relations.is_none() {
        return Err((
            id_of(),
            "its record came with `relations: null`, so what it relates to is unknown".into(),
        ));
    }
    media
        .into_anime(body, walked)
        .map_err(|e| (id_of(), format!("its record breaks AniList's shape: {e}")))
}

/// Relation nodes met whole, each once (a franchise's members meet each other again and again
/// in nested relations; the first copy is kept, they are the same record).
#[derive(Default)]
struct Walked {
    anime: Vec<Anime>,
    seen: std::collections::HashSet<AnimeId>,
    shape: AnswerShape,
}

#[cfg(test)]
/// The answer to a single `Media(id: …)` request, as AniList's own pages and the recorded
/// fixtures use. A 404 is [`UpstreamError::NotFound`].
pub(crate) fn parse_media(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<Anime, UpstreamError> {
    let data = checked_data(status, retry_after, body)?.whole()?;
    let single: MediaData = serde_json::from_str(data.get()).map_err(|e| malformed(&e, body))?;
    match single.media {
        Some(raw) => raw.into_anime(body, &mut Walked::default()),
        None => Err(UpstreamError::NotFound {
            message: "`data.Media` is null".to_string(),
        }),
    }
}

#[cfg(test)]
/// Only the relation edges of a `Media(id)` answer that asked for nothing else (as some
/// recorded responses did).
pub(crate) fn parse_media_relations(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<Vec<RelationEdge>, UpstreamError> {
    let data = checked_data(status, retry_after, body)?.whole()?;
    let single: RelationsData =
        serde_json::from_str(data.get()).map_err(|e| malformed(&e, body))?;
    let media = single.media.ok_or_else(|| UpstreamError::NotFound {
        message: "`data.Media` is null".to_string(),
    })?;
    convert_edges(media.relations, body, &mut Walked::default())
}

/// Reads the envelope and maps AniList's `errors` (which can arrive with HTTP 200) and HTTP
/// statuses to typed errors; hands back `data` only for a clean answer.
fn checked_data(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<Checked, UpstreamError> {
    if status == 429 {
        return Err(UpstreamError::RateLimited {
            retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
        });
    }
    let envelope: Envelope = match serde_json::from_slice(body) {
        Ok(envelope) => envelope,
        // A JSON document cut off on the way: a network fault, retried.
        Err(e) if status == 200 && looks_like_json(body) => return Err(malformed(&e, body)),
        // An edge's error page (Cloudflare's 502): AniList's side is failing, retried.
        Err(_) if status >= 500 => {
            return Err(UpstreamError::Transient {
                reason: format!("HTTP {status} with a non-JSON body: {:?}", excerpt(body)),
            });
        }
        // An HTML page or a bare 404 is not AniList answering: never a verdict on an id.
        Err(_) => return Err(not_anilist(status, body)),
    };
    let errors: Vec<GraphQlError> = envelope
        .errors
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect();
    if !errors.is_empty() {
        let code = errors
            .iter()
            .find_map(|e| e.status)
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(if status == 200 { 400 } else { status });
        let message = errors
            .iter()
            .map(|e| e.message.as_deref().unwrap_or("(no message)"))
            .collect::<Vec<_>>()
            .join("; ");
        let error = error_for_status(code, message, retry_after);
        // GraphQL's partial answer: a field failed, the rest of `data` stands. Only a 200
        // carries one; the caller decides whether anything came through.
        return match envelope.data {
            Some(data) if status == 200 && data.get() != "null" => Ok(Checked {
                data,
                partial_error: Some(error),
            }),
            _ => Err(error),
        };
    }
    if status >= 500 {
        return Err(error_for_status(
            status,
            format!("HTTP {status}"),
            retry_after,
        ));
    }
    if status != 200 {
        // JSON, but not AniList's: its errors always come in `errors`. A proxy's or a wrong
        // host's JSON error page is never a verdict on the ids asked for.
        return Err(UpstreamError::NotAnilist {
            endpoint: String::new(),
            status,
            what: "JSON without AniList's `errors`".to_string(),
            excerpt: excerpt(body),
        });
    }
    match envelope.data {
        Some(data) if data.get() != "null" => Ok(Checked {
            data,
            partial_error: None,
        }),
        _ => Err(malformed_msg("no `data` and no `errors`", body)),
    }
}

/// An answer's `data`, and the error AniList reported beside it, if any.
struct Checked {
    data: Box<RawValue>,
    partial_error: Option<UpstreamError>,
}

#[cfg(test)]
impl Checked {
    /// `data`, if nothing failed beside it.
    fn whole(self) -> Result<Box<RawValue>, UpstreamError> {
        match self.partial_error {
            Some(error) => Err(error),
            None => Ok(self.data),
        }
    }
}

fn error_for_status(code: u16, message: String, retry_after: Option<Duration>) -> UpstreamError {
    match code {
        429 => UpstreamError::RateLimited {
            retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
        },
        404 => UpstreamError::NotFound { message },
        403 => UpstreamError::Disabled { message },
        400..=499 => UpstreamError::QueryRejected {
            status: code,
            message,
        },
        _ => UpstreamError::Transient {
            reason: format!("HTTP {code}: {message}"),
        },
    }
}

/// Whether a body that failed to parse set out to be JSON (cut off), not a page of something
/// else.
fn looks_like_json(body: &[u8]) -> bool {
    matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{') | Some(b'[')
    )
}

fn not_anilist(status: u16, body: &[u8]) -> UpstreamError {
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]).to_ascii_lowercase();
    let what = if body.iter().all(u8::is_ascii_whitespace) {
        "an empty body"
    } else if text.contains("<html") || text.contains("<!doctype") {
        "an HTML page"
    } else {
        "a body that is not JSON"
    };
    UpstreamError::NotAnilist {
        endpoint: String::new(),
        status,
        what: what.to_string(),
        excerpt: excerpt(body),
    }
}

fn malformed(error: &serde_json::Error, body: &[u8]) -> UpstreamError {
    malformed_msg(&error.to_string(), body)
}

fn malformed_msg(reason: &str, body: &[u8]) -> UpstreamError {
    UpstreamError::Malformed {
        reason: reason.to_string(),
        excerpt: excerpt(body),
    }
}

#[derive(Deserialize)]
struct Envelope {
    data: Option<Box<RawValue>>,
    errors: Option<Vec<Option<GraphQlError>>>,
}

#[derive(Deserialize)]
struct GraphQlError {
    message: Option<String>,
    status: Option<i64>,
}

#[derive(Deserialize)]
struct PageData {
    #[serde(rename = "Page")]
    page: Option<PageMedia>,
}

#[derive(Deserialize)]
struct PageMedia {
    /// Each record read on its own, so one that breaks the shape fails only itself.
    media: Option<Vec<Option<Box<RawValue>>>>,
}

/// What is read of a record that breaks the shape: whose it is, and what kind.
#[derive(Deserialize)]
struct NodeHead {
    id: i64,
    #[serde(rename = "type", default)]
    kind: Option<serde_json::Value>,
}

#[cfg(test)]
#[derive(Deserialize)]
struct MediaData {
    #[serde(rename = "Media")]
    media: Option<RawMedia>,
}

#[cfg(test)]
#[derive(Deserialize)]
struct RelationsData {
    #[serde(rename = "Media")]
    media: Option<RelationsOnly>,
}

#[cfg(test)]
#[derive(Deserialize)]
struct RelationsOnly {
    relations: Option<RawConnection>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMedia {
    id: i64,
    id_mal: Option<i64>,
    #[serde(rename = "type")]
    kind: Option<String>,
    format: Option<String>,
    status: Option<String>,
    episodes: Option<i32>,
    season: Option<String>,
    season_year: Option<i32>,
    start_date: Option<RawDate>,
    title: Option<RawTitle>,
    relations: Option<RawConnection>,
}

#[derive(Deserialize)]
struct RawDate {
    year: Option<i32>,
    month: Option<u8>,
    day: Option<u8>,
}

#[derive(Deserialize)]
struct RawTitle {
    romaji: Option<String>,
    english: Option<String>,
    native: Option<String>,
}

#[derive(Deserialize)]
struct RawConnection {
    edges: Option<Vec<Option<RawEdge>>>,
}

/// An edge's node is a media like any other: a summary at the walk's last level, whole (with
/// its own `relations`) at the levels above it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEdge {
    id: Option<i64>,
    relation_type: Option<String>,
    /// Read on its own: a node that breaks the shape is only a relation's far end, asked for
    /// by itself later, not the failure of the record that points at it.
    node: Option<Box<RawValue>>,
}

impl RawTitle {
    fn into_title(self) -> Title {
        Title {
            romaji: self.romaji,
            english: self.english,
            native: self.native,
        }
    }
}

fn checked_id(raw: i64, body: &[u8]) -> Result<AnimeId, UpstreamError> {
    AnimeId::new(raw).map_err(|e| malformed_msg(&e.to_string(), body))
}

impl RawMedia {
    fn into_anime(self, body: &[u8], walked: &mut Walked) -> Result<Anime, UpstreamError> {
        let id = checked_id(self.id, body)?;
        let relations = convert_edges(self.relations, body, walked)?;
        let start = self.start_date.unwrap_or(RawDate {
            year: None,
            month: None,
            day: None,
        });
        Ok(Anime {
            id,
            id_mal: self.id_mal,
            // The batch query filters on `type: ANIME`, so a missing type means ANIME.
            kind: self
                .kind
                .as_deref()
                .map_or(MediaKind::Anime, MediaKind::parse),
            title: self.title.map(RawTitle::into_title).unwrap_or_default(),
            format: self.format,
            status: self.status,
            episodes: self.episodes,
            season: self.season,
            season_year: self.season_year,
            start_date: FuzzyDate {
                year: start.year,
                month: start.month,
                day: start.day,
            },
            relations,
        })
    }
}

fn convert_edges(
    connection: Option<RawConnection>,
    body: &[u8],
    walked: &mut Walked,
) -> Result<Vec<RelationEdge>, UpstreamError> {
    let Some(edges) = connection.map(|c| c.edges.unwrap_or_default()) else {
        return Ok(Vec::new());
    };
    walked.shape.whole += 1;
    walked.shape.whole_edges += edges.len();
    let mut relations = Vec::with_capacity(edges.len());
    // A null edge or a null node (a deleted media) carries nothing to store.
    for edge in edges.into_iter().flatten() {
        let Some(raw) = edge.node else { continue };
        walked.shape.records += 1;
        let target = match serde_json::from_str::<RawMedia>(raw.get()) {
            // A node that came with its own relations (even none) is known whole; one without
            // (the walk's last level, or `relations: null`) is only a relation's far end.
            Ok(node) if node.relations.is_some() && node.kind.is_some() => {
                let head = (node.id, node.kind.clone());
                match node.into_anime(body, walked) {
                    Ok(anime) => {
                        let target = RelatedMedia {
                            id: anime.id,
                            kind: anime.kind.clone(),
                            format: anime.format.clone(),
                            status: anime.status.clone(),
                            title: anime.title.clone(),
                        };
                        if walked.seen.insert(anime.id) {
                            walked.anime.push(anime);
                        }
                        target
                    }
                    // Whole but broken further down: not taken whole; its own request
                    // settles it.
                    Err(_) => far_end(head.0, head.1.as_deref(), body)?,
                }
            }
            Ok(node) => RelatedMedia {
                id: checked_id(node.id, body)?,
                kind: MediaKind::parse(node.kind.as_deref().unwrap_or("UNKNOWN")),
                format: node.format,
                status: node.status,
                title: node.title.map(RawTitle::into_title).unwrap_or_default(),
            },
            Err(e) => {
                // Only its id and kind are trusted; without a readable id the edge itself is
                // broken, and so is the record holding it.
                let head: NodeHead =
                    serde_json::from_str(raw.get()).map_err(|_| malformed(&e, body))?;
                far_end(
                    head.id,
                    head.kind.as_ref().and_then(serde_json::Value::as_str),
                    body,
                )?
            }
        };
        relations.push(RelationEdge {
            edge_id: edge.id,
            relation: RelationType::parse(edge.relation_type.as_deref().unwrap_or("UNKNOWN")),
            node: target,
        });
    }
    Ok(relations)
}

/// A relation's far end known only by its id and kind.
fn far_end(id: i64, kind: Option<&str>, body: &[u8]) -> Result<RelatedMedia, UpstreamError> {
    Ok(RelatedMedia {
        id: checked_id(id, body)?,
        kind: MediaKind::parse(kind.unwrap_or("UNKNOWN")),
        format: None,
        status: None,
        title: Title::default(),
    })
}
