//! Reads which media ids a request asks for (`Media(id:)` roots, `Page { media(id_in:) }`)
//! without executing it, so even rate-limited or faulted requests are logged with their ids.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, Value, Variables};

/// Ids in request order; empty when the query does not parse or asks for no ids.
pub fn requested_ids(query: &str, variables: &Variables) -> Vec<i32> {
    let Ok(doc) = async_graphql::parser::parse_query(query) else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    for (_, op) in doc.operations.iter() {
        let mut vars = variables.clone();
        for def in &op.node.variable_definitions {
            let name = &def.node.name.node;
            if let (None, Some(default)) = (vars.get(name), &def.node.default_value) {
                vars.insert(name.clone(), default.node.clone());
            }
        }
        let walker = Walker {
            doc: &doc,
            vars: &vars,
        };
        walker.roots(&op.node.selection_set.node, &mut ids, 0);
    }
    ids
}

struct Walker<'a> {
    doc: &'a ExecutableDocument,
    vars: &'a Variables,
}

/// Fragments may nest; this bounds the recursion on hostile input.
const MAX_NESTING: usize = 16;

impl Walker<'_> {
    /// Visits each field of `set`, looking through fragments, and hands it to `visit`.
    fn each_field(
        &self,
        set: &SelectionSet,
        depth: usize,
        visit: &mut dyn FnMut(&async_graphql::parser::types::Field),
    ) {
        if depth > MAX_NESTING {
            return;
        }
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => visit(&f.node),
                Selection::InlineFragment(frag) => {
                    self.each_field(&frag.node.selection_set.node, depth + 1, visit)
                }
                Selection::FragmentSpread(spread) => {
                    if let Some(def) = self.doc.fragments.get(&spread.node.fragment_name.node) {
                        self.each_field(&def.node.selection_set.node, depth + 1, visit)
                    }
                }
            }
        }
    }

    fn roots(&self, set: &SelectionSet, ids: &mut Vec<i32>, depth: usize) {
        self.each_field(set, depth, &mut |field| match field.name.node.as_str() {
            "Media" => ids.extend(self.arg_ids(field, "id")),
            "Page" => self.each_field(&field.selection_set.node, depth + 1, &mut |inner| {
                if inner.name.node.as_str() == "media" {
                    ids.extend(self.arg_ids(inner, "id_in"));
                    ids.extend(self.arg_ids(inner, "id"));
                }
            }),
            _ => {}
        });
    }

    fn arg_ids(&self, field: &async_graphql::parser::types::Field, arg: &str) -> Vec<i32> {
        let Some(value) = field.get_argument(arg) else {
            return Vec::new();
        };
        let resolved = value
            .node
            .clone()
            .into_const_with(|name: Name| self.vars.get(&name).cloned().ok_or(()));
        match resolved {
            Ok(Value::Number(n)) => as_id(&n).into_iter().collect(),
            Ok(Value::List(items)) => items
                .iter()
                .filter_map(|v| match v {
                    Value::Number(n) => as_id(n),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

fn as_id(n: &async_graphql::Number) -> Option<i32> {
    n.as_i64().and_then(|n| i32::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_ids_in_roots_pages_variables_and_fragments() {
        let vars: Variables = match serde_json::from_value(serde_json::json!({"ids": [5, 6]})) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        let q = "query($ids: [Int], $one: Int = 9) { a: Media(id: 1) { id } b: Media(id: $one) { id } \
                 Page { ...P } } fragment P on Page { media(id_in: $ids) { id } }";
        assert_eq!(requested_ids(q, &vars), vec![1, 9, 5, 6]);
        assert!(requested_ids("{ not valid", &vars).is_empty());
    }
}
