//! The GraphQL documents `franchise` sends to AniList: one batch of up to 50 ids, with their
//! relations walked `levels` deep in the same request.
//!
//! AniList charges complexity per selected field from the query text (webonyx/graphql-php:
//! a field costs 1 plus its children, nothing multiplied by `perPage` or by results; the cap is
//! 500), so nesting `relations` costs what its fields cost, not what the answer holds. Every
//! level but the last selects what the store needs to keep an anime (so the walk can take it
//! in without asking again) and its relations; the last level's nodes are relation targets,
//! with only what a franchise view shows.

/// AniList answers at most this many media per `Page`.
pub const MAX_BATCH: usize = 50;

/// The deepest walk one request may ask for: 4 levels cost 94 of AniList's 500 (see the
/// tests); what limits it is the answer, which grows with the fan-out of every level.
pub const MAX_WALK_LEVELS: usize = 4;

/// What the store keeps of an anime. `relationType(version: 2)` is required below: version 1
/// reports SOURCE as ADAPTATION.
const MEDIA_FIELDS: &str = "id idMal type format status episodes season seasonYear \
                            startDate { year month day } title { romaji english native }";

/// What a relation's far end shows when its own relations are not asked for.
const NODE_FIELDS: &str = "id type format status title { romaji english native }";

/// `relations { … }` with `levels` levels of nodes under it (at least 1).
fn relations(levels: usize) -> String {
    let node = if levels > 1 {
        format!("{MEDIA_FIELDS} {}", relations(levels - 1))
    } else {
        NODE_FIELDS.to_string()
    };
    format!("relations {{ edges {{ id relationType(version: 2) node {{ {node} }} }} }}")
}

/// The batch query: up to 50 anime by id (`$ids`, `$perPage`) and their relations `levels`
/// deep (clamped to 1..=`MAX_WALK_LEVELS`). Level 1 is the anime's own relations, as every
/// walk has asked so far.
pub fn batch_query(levels: usize) -> String {
    let levels = levels.clamp(1, MAX_WALK_LEVELS);
    format!(
        "query FranchiseBatch($ids: [Int], $perPage: Int) {{ Page(page: 1, perPage: $perPage) \
         {{ media(id_in: $ids, type: ANIME) {{ {MEDIA_FIELDS} {} }} }} }}",
        relations(levels)
    )
}

#[cfg(test)]
mod tests {
    use fake_anilist::graphql::{relation_hops, webonyx_complexity};

    use super::*;

    /// The complexity AniList computes for each query shape the walk can send, by the
    /// webonyx rule; each must stay well under the cap of 500.
    #[test]
    fn every_walk_depth_costs_what_the_webonyx_rule_says_and_stays_far_below_500() {
        let costs: Vec<usize> = (1..=MAX_WALK_LEVELS)
            .map(|levels| webonyx_complexity(&batch_query(levels), None).unwrap())
            .collect();
        // The single-level query every walk sent so far costs 31; each level adds the 21 of
        // a whole anime's fields and its relations.
        assert_eq!(costs, vec![31, 52, 73, 94]);
        assert!(costs.iter().all(|&c| c < 100), "{costs:?}");
    }

    #[test]
    fn each_level_nests_relations_once_more_and_out_of_range_levels_are_clamped() {
        for levels in 1..=MAX_WALK_LEVELS {
            assert_eq!(relation_hops(&batch_query(levels), None), Ok(levels));
        }
        assert_eq!(batch_query(0), batch_query(1));
        assert_eq!(batch_query(99), batch_query(MAX_WALK_LEVELS));
    }
}
