//! AniList's two guards on a query's shape, inside async-graphql's pipeline: the complexity
//! cap (a 400 once validation passed) and too-deep `relations` nesting (a 500 at execution).

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{
    ErrorExtensionValues, Response, ServerError, ServerResult, ValidationResult, Value, Variables,
};

use super::{complexity, document, hops};

/// The caps one schema enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_complexity: usize,
    pub max_relation_hops: usize,
}

impl ExtensionFactory for Limits {
    /// async-graphql makes one extension per request, so the facts below are per request.
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(LimitCheck {
            limits: *self,
            facts: Mutex::new(Vec::new()),
        })
    }
}

/// What the parsed query says about one of its operations.
struct Facts {
    name: Option<String>,
    complexity: Result<usize, String>,
    hops: usize,
    roots: Vec<String>,
}

struct LimitCheck {
    limits: Limits,
    facts: Mutex<Vec<Facts>>,
}

impl LimitCheck {
    fn facts(&self) -> std::sync::MutexGuard<'_, Vec<Facts>> {
        self.facts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn study(doc: &ExecutableDocument, variables: &Variables) -> Vec<Facts> {
    document::operations(doc)
        .into_iter()
        .map(|(name, op)| Facts {
            name: name.map(|n| n.to_string()),
            complexity: complexity::operation_complexity(doc, &op.node, variables),
            hops: hops::operation_hops(doc, &op.node, variables).unwrap_or(0),
            roots: document::root_keys(doc, &op.node),
        })
        .collect()
}

/// AniList's answer when a nested connection breaks it: every root null, one bare error.
fn internal_error(roots: &[String]) -> Response {
    let data: async_graphql::indexmap::IndexMap<async_graphql::Name, Value> = roots
        .iter()
        .map(|k| (async_graphql::Name::new(k), Value::Null))
        .collect();
    let mut error = ServerError::new("Internal Server Error", None);
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("status", 500);
    error.extensions = Some(extensions);
    let mut response = Response::new(Value::Object(data));
    response.errors.push(error);
    response
}

#[async_graphql::async_trait::async_trait]
impl Extension for LimitCheck {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        *self.facts() = study(&doc, variables);
        Ok(doc)
    }

    /// Like graphql-php's rule, only counts once every other rule passed, and checks every
    /// operation in the document, not just the one that will run.
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        let max = self.limits.max_complexity;
        let errors: Vec<ServerError> = self
            .facts()
            .iter()
            .filter_map(|f| match &f.complexity {
                Ok(n) if *n <= max => None,
                Ok(n) => Some(complexity::too_complex_message(max, *n)),
                Err(e) => Some(e.clone()),
            })
            .map(|message| ServerError::new(message, None))
            .collect();
        if errors.is_empty() {
            Ok(result)
        } else {
            Err(errors)
        }
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let too_deep = {
            let facts = self.facts();
            let running = match operation_name {
                Some(name) => facts.iter().find(|f| f.name.as_deref() == Some(name)),
                None => facts.first(),
            };
            running
                .filter(|f| f.hops > self.limits.max_relation_hops)
                .map(|f| f.roots.clone())
        };
        match too_deep {
            Some(roots) => internal_error(&roots),
            None => next.run(ctx, operation_name).await,
        }
    }
}
