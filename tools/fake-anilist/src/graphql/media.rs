//! The `Media` object and its relation connection, rendered on demand from world entries.
//! Holding the world and an id (not a copy) keeps a 50-media page with 60 edges each cheap.

use std::sync::Arc;

use async_graphql::{Object, SimpleObject};

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
    romaji: Option<String>,
    english: Option<String>,
    native: Option<String>,
    user_preferred: Option<String>,
}

#[derive(SimpleObject)]
pub struct FuzzyDate {
    year: Option<i32>,
    month: Option<i32>,
    day: Option<i32>,
}

#[Object]
impl Media {
    async fn id(&self) -> i32 {
        self.id
    }
    async fn id_mal(&self) -> Option<i32> {
        self.entry()?.id_mal
    }
    #[graphql(name = "type")]
    async fn media_type(&self) -> Option<MediaType> {
        MediaType::parse(self.entry()?.media_type.as_deref()?)
    }
    async fn format(&self) -> Option<MediaFormat> {
        MediaFormat::parse(self.entry()?.format.as_deref()?)
    }
    async fn status(&self) -> Option<MediaStatus> {
        MediaStatus::parse(self.entry()?.status.as_deref()?)
    }
    async fn episodes(&self) -> Option<i32> {
        self.entry()?.episodes
    }
    async fn season(&self) -> Option<MediaSeason> {
        MediaSeason::parse(self.entry()?.season.as_deref()?)
    }
    async fn season_year(&self) -> Option<i32> {
        self.entry()?.season_year
    }
    async fn start_date(&self) -> Option<FuzzyDate> {
        let d = &self.entry()?.start_date;
        Some(FuzzyDate {
            year: d.year,
            month: d.month,
            day: d.day,
        })
    }
    async fn title(&self) -> Option<MediaTitle> {
        let t = &self.entry()?.title;
        Some(MediaTitle {
            romaji: t.romaji.clone(),
            english: t.english.clone(),
            native: t.native.clone(),
            user_preferred: t.user_preferred.clone(),
        })
    }
    async fn is_adult(&self) -> Option<bool> {
        Some(self.entry()?.is_adult)
    }
    async fn relations(&self) -> Option<MediaConnection> {
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
    async fn id(&self) -> i32 {
        self.relation.edge_id
    }
    /// Version 1 (the default) hides the version-2-only values, as AniList does.
    async fn relation_type(&self, version: Option<i32>) -> MediaRelation {
        let raw = self.relation.relation_type.as_str();
        if version == Some(2) {
            MediaRelation::parse(raw)
        } else {
            MediaRelation::parse(relation::as_version_1(raw))
        }
    }
    async fn node(&self) -> Option<Media> {
        Media::new(self.world.clone(), self.relation.target)
    }
}
