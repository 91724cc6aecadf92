//! The GraphQL subset of AniList's schema (`Media`, `Page`, relations) built with
//! async-graphql, so any valid query over these types is understood and validated.

pub mod complexity;
mod document;
pub mod enums;
pub mod hidden;
pub mod hops;
pub mod ids;
mod limits;
mod media;
mod query;
mod viewer;

use std::sync::Arc;

use async_graphql::{EmptyMutation, EmptySubscription, Schema};

pub use complexity::{MAX_COMPLEXITY, webonyx_complexity, webonyx_complexity_with};
pub use hidden::{HIDEABLE, Hidden, UnknownSchemaField};
pub use hops::{DEFAULT_MAX_RELATION_HOPS, relation_hops};
pub use query::{MAX_PER_PAGE, Query};
pub use viewer::Viewer;

use crate::world::World;

pub type FakeSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Whether `media(type: …)` filters are honoured (a fault can turn them off).
#[derive(Debug, Clone, Copy)]
pub struct TypeFilter(pub bool);

/// Everything about the schema that a configuration can change.
#[derive(Debug, Clone)]
pub struct SchemaOptions {
    pub type_filter: TypeFilter,
    pub max_complexity: usize,
    /// Deeper `relations` nesting is answered with AniList's 500.
    pub max_relation_hops: usize,
    /// Left out of introspection answers only.
    pub hidden: Hidden,
}

impl Default for SchemaOptions {
    fn default() -> Self {
        SchemaOptions {
            type_filter: TypeFilter(true),
            max_complexity: MAX_COMPLEXITY,
            max_relation_hops: DEFAULT_MAX_RELATION_HOPS,
            hidden: Hidden::default(),
        }
    }
}

/// The world is schema data; per-request facts (the `Viewer`) go in request data.
pub fn build_schema(world: Arc<World>) -> FakeSchema {
    build_schema_from(world, SchemaOptions::default())
}

pub fn build_schema_with(world: Arc<World>, type_filter: TypeFilter) -> FakeSchema {
    build_schema_from(
        world,
        SchemaOptions {
            type_filter,
            ..SchemaOptions::default()
        },
    )
}

/// Introspection stays on (async-graphql's default), as on AniList, whose GraphiQL and
/// clients' schema checks rely on it.
pub fn build_schema_from(world: Arc<World>, options: SchemaOptions) -> FakeSchema {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .data(world)
        .data(options.type_filter)
        .data(options.hidden)
        .extension(limits::Limits {
            max_complexity: options.max_complexity,
            max_relation_hops: options.max_relation_hops,
        })
        .finish()
}
