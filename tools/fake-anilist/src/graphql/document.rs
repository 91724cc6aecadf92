//! Reading a parsed query without a schema: which operation runs, its variables with their
//! defaults, `@skip`/`@include` conditions and the response keys of its root fields.

use async_graphql::parser::types::{
    Directive, DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, Value, Variables};

/// Fragments may nest; walks give up past this depth (only a fragment cycle gets there, and
/// validation rejects those before any walk runs on the server).
pub const MAX_NESTING: usize = 64;

/// The operation a request runs, chosen as GraphQL (and async-graphql) chooses it.
pub fn pick_operation<'a>(
    doc: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Result<&'a OperationDefinition, String> {
    match (&doc.operations, operation_name) {
        (DocumentOperations::Single(op), None) => Ok(&op.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops
            .values()
            .next()
            .map(|op| &op.node)
            .ok_or_else(|| "Operation name required in request.".to_string()),
        (DocumentOperations::Multiple(_), None) => {
            Err("Operation name required in request.".to_string())
        }
        (DocumentOperations::Single(_), Some(name)) => {
            Err(format!(r#"Unknown operation named "{name}""#))
        }
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .get(name)
            .map(|op| &op.node)
            .ok_or_else(|| format!(r#"Unknown operation named "{name}""#)),
    }
}

/// Every operation with its name, in the order it appears in the query text.
pub fn operations(
    doc: &ExecutableDocument,
) -> Vec<(Option<&Name>, &Positioned<OperationDefinition>)> {
    let mut ops: Vec<_> = doc.operations.iter().collect();
    ops.sort_by_key(|(_, op)| (op.pos.line, op.pos.column));
    ops
}

/// Request variables (a JSON object, or null for none) as async-graphql holds them.
pub fn variables_from_json(variables: &serde_json::Value) -> Result<Variables, String> {
    if variables.is_null() {
        return Ok(Variables::default());
    }
    let value = Value::from_json(variables.clone()).map_err(|e| e.to_string())?;
    match value {
        Value::Object(_) => Ok(Variables::from_value(value)),
        _ => Err("variables must be a JSON object".to_string()),
    }
}

/// The request's variables plus the operation's declared defaults for the ones not sent.
pub fn with_defaults(op: &OperationDefinition, raw: &Variables) -> Variables {
    let mut vars = raw.clone();
    for def in &op.variable_definitions {
        let name = &def.node.name.node;
        if let (None, Some(default)) = (vars.get(name), &def.node.default_value) {
            vars.insert(name.clone(), default.node.clone());
        }
    }
    vars
}

/// The `if:` of an `@skip`/`@include`, from a literal or a variable.
pub fn if_argument(directive: &Directive, vars: &Variables) -> Result<bool, String> {
    let name = &directive.name.node;
    let Some(value) = directive.get_argument("if") else {
        return Err(format!(
            r#"Directive "@{name}" argument "if" of type "Boolean!" is required but not provided."#
        ));
    };
    let resolved = value
        .node
        .clone()
        .into_const_with(|var: Name| vars.get(&var).cloned().ok_or(var));
    match resolved {
        Ok(Value::Boolean(b)) => Ok(b),
        Ok(other) => Err(format!(
            r#"Directive "@{name}" argument "if" expected a Boolean, got {other}."#
        )),
        Err(var) => Err(format!(
            r#"Variable "${var}" of required type "Boolean!" was not provided."#
        )),
    }
}

/// GraphQL's rule: a selection is dropped if any `@skip(if: true)` or `@include(if: false)`.
pub fn included(directives: &[Positioned<Directive>], vars: &Variables) -> Result<bool, String> {
    for d in directives {
        match d.node.name.node.as_str() {
            "skip" if if_argument(&d.node, vars)? => return Ok(false),
            "include" if !if_argument(&d.node, vars)? => return Ok(false),
            _ => {}
        }
    }
    Ok(true)
}

/// Response keys (alias or name) of the operation's root fields, looking through fragments.
pub fn root_keys(doc: &ExecutableDocument, op: &OperationDefinition) -> Vec<String> {
    let mut keys = Vec::new();
    collect_keys(doc, &op.selection_set.node, &mut keys, 0);
    keys
}

fn collect_keys(
    doc: &ExecutableDocument,
    set: &SelectionSet,
    keys: &mut Vec<String>,
    depth: usize,
) {
    if depth > MAX_NESTING {
        return;
    }
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => {
                let key = f.node.response_key().node.to_string();
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            Selection::InlineFragment(frag) => {
                collect_keys(doc, &frag.node.selection_set.node, keys, depth + 1)
            }
            Selection::FragmentSpread(spread) => {
                if let Some(def) = doc.fragments.get(&spread.node.fragment_name.node) {
                    collect_keys(doc, &def.node.selection_set.node, keys, depth + 1)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(q).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn picks_operations_like_graphql() {
        let one = parse("{ a }");
        assert!(pick_operation(&one, None).is_ok());
        assert!(pick_operation(&one, Some("X")).is_err());
        let named = parse("query A { a }");
        assert!(pick_operation(&named, None).is_ok());
        assert!(pick_operation(&named, Some("A")).is_ok());
        let two = parse("query A { a } query B { b }");
        assert!(pick_operation(&two, None).is_err());
        assert!(pick_operation(&two, Some("B")).is_ok());
        assert!(pick_operation(&two, Some("C")).is_err());
        let order: Vec<_> = operations(&two)
            .into_iter()
            .map(|(n, _)| n.map(|n| n.to_string()))
            .collect();
        assert_eq!(order, vec![Some("A".into()), Some("B".into())]);
    }

    #[test]
    fn root_keys_use_aliases_and_fragments() {
        let doc = parse(
            "{ a: Media { id } ...F Page { x } } fragment F on Query { Page { y } b: Media { id } }",
        );
        let op = pick_operation(&doc, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(root_keys(&doc, op), vec!["a", "Page", "b"]);
    }

    #[test]
    fn skip_and_include_read_literals_variables_and_defaults() {
        let doc =
            parse("query($s: Boolean = true, $i: Boolean) { a @skip(if: $s) b @include(if: $i) }");
        let op = pick_operation(&doc, None).unwrap_or_else(|e| panic!("{e}"));
        let raw = variables_from_json(&serde_json::json!({"i": false})).unwrap_or_default();
        let vars = with_defaults(op, &raw);
        let dirs: Vec<_> = match &op.selection_set.node.items[..] {
            [a, b] => [a, b]
                .iter()
                .map(|s| match &s.node {
                    Selection::Field(f) => f.node.directives.clone(),
                    _ => Vec::new(),
                })
                .collect(),
            _ => panic!("two fields expected"),
        };
        assert_eq!(included(&dirs[0], &vars), Ok(false));
        assert_eq!(included(&dirs[1], &vars), Ok(false));
        assert!(included(&dirs[1], &Variables::default()).is_err());
        assert!(variables_from_json(&serde_json::json!([1])).is_err());
    }
}
