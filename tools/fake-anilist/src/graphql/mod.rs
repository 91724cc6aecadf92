//! The GraphQL subset of AniList's schema (`Media`, `Page`, relations) built with
//! async-graphql, so any valid query over these types is understood and validated.

mod complexity;
pub mod enums;
pub mod ids;
mod media;
mod query;

use std::sync::Arc;

use async_graphql::{EmptyMutation, EmptySubscription, Schema};

pub use complexity::MAX_COMPLEXITY;
pub use query::{MAX_PER_PAGE, Query, Viewer};

use crate::world::World;

pub type FakeSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Whether `media(type: …)` filters are honoured (a fault can turn them off).
#[derive(Debug, Clone, Copy)]
pub struct TypeFilter(pub bool);

/// The world is schema data; per-request facts (the `Viewer`) go in request data.
pub fn build_schema(world: Arc<World>) -> FakeSchema {
    build_schema_with(world, TypeFilter(true))
}

pub fn build_schema_with(world: Arc<World>, type_filter: TypeFilter) -> FakeSchema {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .data(world)
        .data(type_filter)
        .extension(complexity::ComplexityCap(MAX_COMPLEXITY))
        .finish()
}
