//! Tests of the AniList client, its response parser and the shared budget. They talk only to
//! the project's fake AniList over loopback and read fixtures from `tests/fixtures/`.

mod budget;
mod client;
mod fuzz;
mod responses;
