//! Schema fields and arguments a test hides from introspection only: queries using them still
//! run, so `franchise doctor` can be shown an AniList whose schema lacks what its query needs.

use std::collections::BTreeSet;

use async_graphql::Context;

/// The entries in force, kept in schema data where the visibility checks below read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hidden(BTreeSet<String>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot hide {0:?}: expected Type.field or Type.field(argument) of the fake's schema, \
     e.g. MediaEdge.relationType or MediaEdge.relationType(version)"
)]
pub struct UnknownSchemaField(pub String);

impl Hidden {
    /// Refuses an entry naming nothing in the schema, so a typo cannot leave a test showing
    /// the full schema while it believes a field is gone.
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Result<Hidden, UnknownSchemaField> {
        let mut set = BTreeSet::new();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if !HIDEABLE.contains(&entry) {
                return Err(UnknownSchemaField(entry.to_string()));
            }
            set.insert(entry.to_string());
        }
        Ok(Hidden(set))
    }
}

fn shown(ctx: &Context<'_>, entry: &str) -> bool {
    ctx.data_opt::<Hidden>()
        .is_none_or(|h| !h.0.contains(entry))
}

/// One visibility function per field and argument (async-graphql's `visible` takes a plain
/// `fn`), and the list of every entry they answer to.
macro_rules! hideable {
    ($($check:ident => $entry:literal,)*) => {
        /// Every entry `FakeConfig::hide_schema_fields` accepts.
        pub const HIDEABLE: &[&str] = &[$($entry),*];
        $(
            pub(crate) fn $check(ctx: &Context<'_>) -> bool {
                shown(ctx, $entry)
            }
        )*
    };
}

hideable! {
    query_media => "Query.Media",
    query_media_id => "Query.Media(id)",
    query_media_type => "Query.Media(type)",
    query_page => "Query.Page",
    query_page_page => "Query.Page(page)",
    query_page_per_page => "Query.Page(perPage)",
    page_page_info => "Page.pageInfo",
    page_media => "Page.media",
    page_media_id => "Page.media(id)",
    page_media_id_in => "Page.media(id_in)",
    page_media_type => "Page.media(type)",
    page_info_total => "PageInfo.total",
    page_info_per_page => "PageInfo.perPage",
    page_info_current_page => "PageInfo.currentPage",
    page_info_last_page => "PageInfo.lastPage",
    page_info_has_next_page => "PageInfo.hasNextPage",
    media_id => "Media.id",
    media_id_mal => "Media.idMal",
    media_type => "Media.type",
    media_format => "Media.format",
    media_status => "Media.status",
    media_episodes => "Media.episodes",
    media_season => "Media.season",
    media_season_year => "Media.seasonYear",
    media_start_date => "Media.startDate",
    media_title => "Media.title",
    media_is_adult => "Media.isAdult",
    media_relations => "Media.relations",
    title_romaji => "MediaTitle.romaji",
    title_english => "MediaTitle.english",
    title_native => "MediaTitle.native",
    title_user_preferred => "MediaTitle.userPreferred",
    date_year => "FuzzyDate.year",
    date_month => "FuzzyDate.month",
    date_day => "FuzzyDate.day",
    connection_edges => "MediaConnection.edges",
    connection_nodes => "MediaConnection.nodes",
    edge_id => "MediaEdge.id",
    edge_relation_type => "MediaEdge.relationType",
    edge_relation_type_version => "MediaEdge.relationType(version)",
    edge_node => "MediaEdge.node",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_schema_entries_are_accepted() {
        assert!(Hidden::new(&["MediaEdge.relationType", " Media.relations "]).is_ok());
        assert_eq!(
            Hidden::new(&["Media.relatons"]),
            Err(UnknownSchemaField("Media.relatons".into()))
        );
        assert!(Hidden::new::<&str>(&[]).is_ok());
    }
}
