//! The SQL both backends share, written once: one implementation generic over
//! `sqlx::Database`, with only the dialect's differences (`Dialect`) per backend.
//!
//! Why generic code and not `sqlx::Any` or a query builder: `Any` has no arrays (PostgreSQL's
//! speed comes from binding whole columns) and cannot give the queue a real PostgreSQL
//! transaction to push into; a query builder such as sea-query is a second language for about
//! fifty statements that are plain, portable SQL. sqlx's own traits carry the difference.

mod budget;
mod dialect;
mod process;
mod progress;
mod read;
mod store;
mod tx;

use crate::anime::{Anime, AnimeId, RelationType};

pub(crate) use dialect::{Column, Dialect, FranchiseStream};
pub(crate) use read::{READ_BATCH, RELATIONS_PER_READ};
pub(crate) use store::{Access, STREAM_BUFFER, SqlStore};

/// The shared statements, as associated functions generic over the backend (their bounds
/// are the `shared!` block's).
pub(crate) struct Sql<DB>(std::marker::PhantomData<DB>);

/// `impl<DB> … where …` with the bounds every shared statement needs, written once: the
/// dialect, connections that execute, and the column types the statements bind and read.
macro_rules! shared {
    (@impl [$($attr:tt)*] [$($head:tt)*] { $($body:tt)* }) => {
        $($attr)*
        impl<DB> $($head)*
        where
            DB: $crate::store::sql::Dialect,
            for<'c> &'c mut <DB as sqlx::Database>::Connection: sqlx::Executor<'c, Database = DB>,
            <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
            i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
            i32: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
            String: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
            str: sqlx::Type<DB>,
            for<'q> &'q str: sqlx::Encode<'q, DB>,
            for<'q> Option<&'q str>: sqlx::Encode<'q, DB>,
            Option<i64>: for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
            Option<i32>: for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
            Option<String>: for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
            usize: sqlx::ColumnIndex<<DB as sqlx::Database>::Row>,
        { $($body)* }
    };
    ($(#[$attr:meta])* impl<DB> $trait:ident for $ty:ty { $($body:tt)* }) => {
        $crate::store::sql::shared!(@impl [$(#[$attr])*] [$trait for $ty] { $($body)* });
    };
    ($(#[$attr:meta])* impl<DB> $ty:ty { $($body:tt)* }) => {
        $crate::store::sql::shared!(@impl [$(#[$attr])*] [$ty] { $($body)* });
    };
}
pub(crate) use shared;

pub(crate) fn to_id(raw: i64) -> Result<AnimeId, sqlx::Error> {
    AnimeId::new(raw).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// A stored depth, cap or round (never negative, and small) as a `u32`.
pub(crate) fn to_u32(raw: i64) -> u32 {
    raw.clamp(0, i64::from(u32::MAX)) as u32
}

/// A stored count (never negative) as a `u64`.
pub(crate) fn count(raw: i64) -> u64 {
    raw.max(0) as u64
}

pub(crate) fn followed_list(followed: &[RelationType]) -> String {
    followed
        .iter()
        .map(RelationType::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn parse_followed(raw: &str) -> Vec<RelationType> {
    raw.split(',')
        .filter(|s| !s.is_empty())
        .map(RelationType::parse)
        .collect()
}

/// Relation type names, for a list parameter.
pub(crate) fn type_names(types: &[RelationType]) -> Vec<&str> {
    types.iter().map(|t| t.as_str()).collect()
}

/// The ids as `BIGINT`s.
pub(crate) fn raw_ids(ids: &[AnimeId]) -> Vec<i64> {
    ids.iter().map(|id| i64::from(*id)).collect()
}

/// One entry per id, the last one given winning, by id: one statement never touches a row
/// twice.
pub(crate) fn latest_by_id(anime: &[Anime]) -> Vec<&Anime> {
    let mut latest: std::collections::HashMap<AnimeId, &Anime> =
        std::collections::HashMap::with_capacity(anime.len());
    for a in anime {
        latest.insert(a.id, a);
    }
    let mut unique: Vec<&Anime> = latest.into_values().collect();
    unique.sort_by_key(|a| a.id);
    unique
}
