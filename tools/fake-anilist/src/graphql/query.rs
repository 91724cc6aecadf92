//! The root `Query` (`Media`, `Page`) and `Page.media` lookups with AniList's filtering:
//! unknown, dead and (for anonymous callers) adult ids are silently left out.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_graphql::{Context, Error, ErrorExtensions, Object, SimpleObject, Value};

use super::enums::MediaType;
use super::media::Media;
use super::viewer::anonymous;
use crate::world::World;

/// AniList's cap on `perPage`; larger values are clamped, not rejected.
pub const MAX_PER_PAGE: i32 = 50;

pub struct Query;

fn world(ctx: &Context<'_>) -> Arc<World> {
    ctx.data_opt::<Arc<World>>().cloned().unwrap_or_default()
}

fn not_found() -> Error {
    Error::new("Not Found.").extend_with(|_, e| e.set("status", 404))
}

/// Ids matching a `media(...)` filter, in ascending id order.
fn matching(
    world: &World,
    anonymous: bool,
    id: Option<i32>,
    id_in: Option<&[Option<i32>]>,
    media_type: Option<MediaType>,
) -> Vec<i32> {
    let wanted_type = media_type.map(MediaType::as_str);
    let keep = |id: i32| {
        world
            .visible(id, anonymous)
            .is_some_and(|e| wanted_type.is_none_or(|t| e.media_type.as_deref() == Some(t)))
    };
    let candidates: Vec<i32> = match (id, id_in) {
        (_, Some(list)) => {
            let set: BTreeSet<i32> = list.iter().flatten().copied().collect();
            set.into_iter()
                .filter(|i| id.is_none_or(|one| one == *i))
                .collect()
        }
        (Some(one), None) => vec![one],
        (None, None) => world.entries().map(|e| e.id).collect(),
    };
    candidates.into_iter().filter(|&i| keep(i)).collect()
}

#[Object]
impl Query {
    #[graphql(visible = "super::hidden::query_media", name = "Media")]
    async fn media(
        &self,
        ctx: &Context<'_>,
        #[graphql(visible = "super::hidden::query_media_id")] id: Option<i32>,
        #[graphql(name = "type", visible = "super::hidden::query_media_type")] media_type: Option<
            MediaType,
        >,
    ) -> async_graphql::Result<Option<Media>> {
        let world = world(ctx);
        let Some(id) = id else {
            return Err(not_found());
        };
        match matching(&world, anonymous(ctx), Some(id), None, media_type).first() {
            Some(&found) => Ok(Media::new(world, found)),
            None => Err(not_found()),
        }
    }

    #[graphql(visible = "super::hidden::query_page", name = "Page")]
    async fn page(
        &self,
        ctx: &Context<'_>,
        #[graphql(visible = "super::hidden::query_page_page")] page: Option<i32>,
        #[graphql(visible = "super::hidden::query_page_per_page")] per_page: Option<i32>,
    ) -> Page {
        let per_page = per_page.unwrap_or(MAX_PER_PAGE).clamp(1, MAX_PER_PAGE);
        let page = page.unwrap_or(1).max(1);
        // pageInfo.total depends on the sibling `media` field's filter, so peek at it.
        let total = ctx
            .look_ahead()
            .field("media")
            .selection_fields()
            .first()
            .and_then(|f| f.arguments().ok())
            .map(|args| {
                let filter = MediaFilter::from_args(&args);
                filter.run(&world(ctx), anonymous(ctx)).len()
            })
            .unwrap_or(0);
        Page {
            page,
            per_page,
            total: i32::try_from(total).unwrap_or(i32::MAX),
        }
    }
}

/// The `media(...)` arguments we understand, as read from look-ahead.
struct MediaFilter {
    id: Option<i32>,
    id_in: Option<Vec<Option<i32>>>,
    media_type: Option<MediaType>,
}

impl MediaFilter {
    fn from_args(args: &[(async_graphql::Name, Value)]) -> Self {
        let mut filter = MediaFilter {
            id: None,
            id_in: None,
            media_type: None,
        };
        for (name, value) in args {
            match (name.as_str(), value) {
                ("id", Value::Number(n)) => {
                    filter.id = n.as_i64().and_then(|n| i32::try_from(n).ok())
                }
                ("id_in", Value::List(items)) => {
                    filter.id_in = Some(
                        items
                            .iter()
                            .map(|v| match v {
                                Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
                                _ => None,
                            })
                            .collect(),
                    )
                }
                ("type", Value::Enum(e)) => filter.media_type = MediaType::parse(e.as_str()),
                _ => {}
            }
        }
        filter
    }

    fn run(&self, world: &World, anonymous: bool) -> Vec<i32> {
        matching(
            world,
            anonymous,
            self.id,
            self.id_in.as_deref(),
            self.media_type,
        )
    }
}

pub struct Page {
    page: i32,
    per_page: i32,
    total: i32,
}

#[derive(SimpleObject)]
pub struct PageInfo {
    #[graphql(visible = "super::hidden::page_info_total")]
    total: i32,
    #[graphql(visible = "super::hidden::page_info_per_page")]
    per_page: i32,
    #[graphql(visible = "super::hidden::page_info_current_page")]
    current_page: i32,
    #[graphql(visible = "super::hidden::page_info_last_page")]
    last_page: i32,
    #[graphql(visible = "super::hidden::page_info_has_next_page")]
    has_next_page: bool,
}

#[Object]
impl Page {
    #[graphql(visible = "super::hidden::page_page_info")]
    async fn page_info(&self) -> PageInfo {
        let per_page = i64::from(self.per_page.max(1));
        let pages = (i64::from(self.total) + per_page - 1) / per_page;
        let last_page = i32::try_from(pages.max(1)).unwrap_or(i32::MAX);
        PageInfo {
            total: self.total,
            per_page: self.per_page,
            current_page: self.page,
            last_page,
            has_next_page: self.page < last_page,
        }
    }

    #[graphql(visible = "super::hidden::page_media")]
    async fn media(
        &self,
        ctx: &Context<'_>,
        #[graphql(visible = "super::hidden::page_media_id")] id: Option<i32>,
        #[graphql(name = "id_in", visible = "super::hidden::page_media_id_in")] id_in: Option<
            Vec<Option<i32>>,
        >,
        #[graphql(name = "type", visible = "super::hidden::page_media_type")] media_type: Option<
            MediaType,
        >,
    ) -> Vec<Option<Media>> {
        let world = world(ctx);
        let skip = (self.page as usize - 1).saturating_mul(self.per_page as usize);
        let media_type = media_type.filter(|_| {
            ctx.data_opt::<super::TypeFilter>()
                .is_none_or(|filter| filter.0)
        });
        matching(&world, anonymous(ctx), id, id_in.as_deref(), media_type)
            .into_iter()
            .skip(skip)
            .take(self.per_page as usize)
            .map(|id| Media::new(world.clone(), id))
            .collect()
    }
}
