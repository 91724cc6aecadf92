//! The `Media` object and its relation connection, rendered on demand from world entries.
//! Holding the world and an id (not a copy) keeps a 50-media page with 60 edges each cheap.

use std::sync::Arc;

use async_graphql::{Context, Object, SimpleObject};

use super::enums::{MediaFormat, MediaRelation, MediaSeason, MediaStatus, MediaType};
use crate::world::{Entry, Relation, World, relation};

#[derive(Clone)]
pub struct Media {
    world: Arc<World>,
    id: i32,
}

impl Media {
    /// Only built for ids present in the world, so field lookups below always find the entry.
    pub fn new(world: Arc<World>, id: i32) -> Option<Media> {
        world.get(id)?;
        Some(Media { world, id })
    }

    fn entry(&self) -> Option<&Entry> {
        self.world.get(self.id)
    }
}

#[derive(SimpleObject)]
pub struct MediaTitle {
    #[graphql(visible = "super::hidden::title_romaji")]
    romaji: Option<String>,
    #[graphql(visible = "super::hidden::title_english")]
    english: Option<String>,
    #[graphql(visible = "super::hidden::title_native")]
    native: Option<String>,
    #[graphql(visible = "super::hidden::title_user_preferred")]
    user_preferred: Option<String>,
}

#[derive(SimpleObject)]
pub struct FuzzyDate {
    #[graphql(visible = "super::hidden::date_year")]
    year: Option<i32>,
    #[graphql(visible = "super::hidden::date_month")]
    month: Option<i32>,
    #[graphql(visible = "super::hidden::date_day")]
    day: Option<i32>,
}

#[Object]
impl Media {
    #[graphql(visible = "super::hidden::media_id")]
    async fn id(&self) -> i32 {
        self.id
    }
    #[graphql(visible = "super::hidden::media_id_mal")]
    async fn id_mal(&self) -> Option<i32> {
        self.entry()?.id_mal
    }
    #[graphql(visible = "super::hidden::media_type", name = "type")]
    async fn media_type(&self) -> Option<MediaType> {
        MediaType::parse(self.entry()?.media_type.as_deref()?)
    }
    #[graphql(visible = "super::hidden::media_format")]
    async fn format(&self) -> Option<MediaFormat> {
        MediaFormat::parse(self.entry()?.format.as_deref()?)
    }
    #[graphql(visible = "super::hidden::media_status")]
    async fn status(&self) -> Option<MediaStatus> {
        MediaStatus::parse(self.entry()?.status.as_deref()?)
    }
    #[graphql(visible = "super::hidden::media_episodes")]
    async fn episodes(&self) -> Option<i32> {
        self.entry()?.episodes
    }
    #[graphql(visible = "super::hidden::media_season")]
    async fn season(&self) -> Option<MediaSeason> {
        MediaSeason::parse(self.entry()?.season.as_deref()?)
    }
    #[graphql(visible = "super::hidden::media_season_year")]
    async fn season_year(&self) -> Option<i32> {
        self.entry()?.season_year
    }
    #[graphql(visible = "super::hidden::media_start_date")]
    async fn start_date(&self) -> Option<FuzzyDate> {
        let d = &self.entry()?.start_date;
        Some(FuzzyDate {
            year: d.year,
            month: d.month,
            day: d.day,
        })
    }
    #[graphql(visible = "super::hidden::media_title")]
    async fn title(&self) -> Option<MediaTitle> {
        let t = &self.entry()?.title;
        Some(MediaTitle {
            romaji: t.romaji.clone(),
            english: t.english.clone(),
            native: t.native.clone(),
            user_preferred: t.user_preferred.clone(),
        })
    }
    #[graphql(visible = "super::hidden::media_is_adult")]
    async fn is_adult(&self) -> Option<bool> {
        Some(self.entry()?.is_adult)
    }
    /// `null` for a record the top level would not serve this caller (a dead id; an adult one
    /// for an anonymous caller), met nested in another's relations. No public report says how
    /// AniList shows such a record nested; the fake shows its stub but none of its connections,
    /// so a client cannot take it as known whole and must ask for it (and hear "not found"),
    /// exactly as a walk of one level per request does.
    #[graphql(visible = "super::hidden::media_relations")]
    async fn relations(&self, ctx: &Context<'_>) -> Option<MediaConnection> {
        self.world.visible(self.id, super::viewer::anonymous(ctx))?;
        Some(MediaConnection {
            world: self.world.clone(),
            edges: self.entry()?.relations.clone(),
        })
    }
}

pub struct MediaConnection {
    world: Arc<World>,
    edges: Vec<Relation>,
}

#[Object]
impl MediaConnection {
    #[graphql(visible = "super::hidden::connection_edges")]
    async fn edges(&self) -> Vec<Option<MediaEdge>> {
        self.edges
            .iter()
            .map(|r| {
                Some(MediaEdge {
                    world: self.world.clone(),
                    relation: r.clone(),
                })
            })
            .collect()
    }
    #[graphql(visible = "super::hidden::connection_nodes")]
    async fn nodes(&self) -> Vec<Option<Media>> {
        self.edges
            .iter()
            .map(|r| Media::new(self.world.clone(), r.target))
            .collect()
    }
}

pub struct MediaEdge {
    world: Arc<World>,
    relation: Relation,
}

#[Object]
impl MediaEdge {
    #[graphql(visible = "super::hidden::edge_id")]
    async fn id(&self) -> i32 {
        self.relation.edge_id
    }
    /// Version 1 (the default) hides the version-2-only values, as AniList does.
    #[graphql(visible = "super::hidden::edge_relation_type")]
    async fn relation_type(
        &self,
        #[graphql(visible = "super::hidden::edge_relation_type_version")] version: Option<i32>,
    ) -> MediaRelation {
        let raw = self.relation.relation_type.as_str();
        if version == Some(2) {
            MediaRelation::parse(raw)
        } else {
            MediaRelation::parse(relation::as_version_1(raw))
        }
    }
    #[graphql(visible = "super::hidden::edge_node")]
    async fn node(&self) -> Option<Media> {
        Media::new(self.world.clone(), self.relation.target)
    }
}
