//! The one GraphQL document `franchise` sends to AniList.
//! Kept small on purpose: complexity is charged per selected field, and edge nodes multiply.

/// AniList answers at most this many media per `Page`.
pub const MAX_BATCH: usize = 50;

/// Fetch up to 50 anime and their typed relations in one request.
///
/// `relationType(version: 2)` is required: version 1 reports SOURCE as ADAPTATION. Edge nodes
/// select only what the walk and a franchise view need, to stay far below the 500 cap.
pub const BATCH_QUERY: &str = r#"query FranchiseBatch($ids: [Int], $perPage: Int) {
  Page(page: 1, perPage: $perPage) {
    media(id_in: $ids, type: ANIME) {
      id
      idMal
      type
      format
      status
      episodes
      season
      seasonYear
      startDate { year month day }
      title { romaji english native }
      relations {
        edges {
          id
          relationType(version: 2)
          node { id type format status title { romaji english native } }
        }
      }
    }
  }
}"#;
