//! Who asks: the per-request facts resolvers read (request data, not schema data), so the root
//! query and a media met nested in relations hide the same records from the same caller.

use async_graphql::Context;

/// Whether the request carried an `Authorization` header; adult media are hidden without one.
#[derive(Clone, Copy, Debug)]
pub struct Viewer {
    pub anonymous: bool,
}

/// Whether this request's caller is anonymous (no `Viewer` in the request data counts as one).
pub(super) fn anonymous(ctx: &Context<'_>) -> bool {
    ctx.data_opt::<Viewer>().is_none_or(|v| v.anonymous)
}
