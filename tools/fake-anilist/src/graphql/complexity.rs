//! Caps query complexity the way AniList does (500), reporting AniList's own message.
//! async-graphql computes the cost (1 per selected field, lists not multiplied).

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation};
use async_graphql::{ServerError, ValidationResult};

/// AniList's documented maximum query complexity.
pub const MAX_COMPLEXITY: usize = 500;

/// Used instead of `Schema::limit_complexity`, whose error hides the computed cost, so the
/// rejection reads like AniList's "Max query complexity should be 500 but got 646.".
pub struct ComplexityCap(pub usize);

impl ExtensionFactory for ComplexityCap {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ComplexityCheck(self.0))
    }
}

struct ComplexityCheck(usize);

#[async_graphql::async_trait::async_trait]
impl Extension for ComplexityCheck {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        if result.complexity > self.0 {
            return Err(vec![ServerError::new(
                format!(
                    "Max query complexity should be {} but got {}.",
                    self.0, result.complexity
                ),
                None,
            )]);
        }
        Ok(result)
    }
}
