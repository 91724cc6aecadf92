//! How deep a query nests `relations`: the most `relations` fields on any one path, looking
//! through fragments and honouring `@skip`/`@include`, since AniList 500s on deep nesting.

use async_graphql::Variables;
use async_graphql::parser::types::{
    ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};

use super::document::{self, MAX_NESTING};

/// How many `relations` hops the fake serves before answering 500, by default: four. A
/// Rust/Tauri anime app (Kluzko/miru) sends `relations` nested four levels deep in one request,
/// so AniList serves at least that. AniList has been reported to answer
/// `{"data":{"Staff":null},"errors":[{"message":"Internal Server Error","status":500}]}` to
/// two connections nested under a root (AniList/docs #132: `Staff.characters…media`; #55:
/// `Staff.staffMedia…staff`; #104 a connection under nested lists). No report gives a figure
/// for `relations` beyond four, so the fake 500s past it; a test lowers it (to 1: every nested
/// query fails) to model an AniList that fails deep queries.
pub const DEFAULT_MAX_RELATION_HOPS: usize = 4;

/// The deepest `relations` nesting of `query` (the operation named, or its only one), with
/// `@skip`/`@include` read from literals and variable defaults.
pub fn relation_hops(query: &str, operation_name: Option<&str>) -> Result<usize, String> {
    let doc = async_graphql::parser::parse_query(query).map_err(|e| e.to_string())?;
    let op = document::pick_operation(&doc, operation_name)?;
    operation_hops(&doc, op, &Variables::default())
}

/// One operation's deepest `relations` nesting in a parsed document.
pub fn operation_hops(
    doc: &ExecutableDocument,
    op: &OperationDefinition,
    raw_variables: &Variables,
) -> Result<usize, String> {
    let vars = document::with_defaults(op, raw_variables);
    deepest(doc, &vars, &op.selection_set.node, 0)
}

fn deepest(
    doc: &ExecutableDocument,
    vars: &Variables,
    set: &SelectionSet,
    depth: usize,
) -> Result<usize, String> {
    if depth > MAX_NESTING {
        return Err("the query nests too deep to measure (a fragment cycle?)".to_string());
    }
    let mut most = 0;
    for item in &set.items {
        let hops = match &item.node {
            Selection::Field(f) if document::included(&f.node.directives, vars)? => {
                let own = usize::from(f.node.name.node.as_str() == "relations");
                own + deepest(doc, vars, &f.node.selection_set.node, depth + 1)?
            }
            Selection::InlineFragment(frag) if document::included(&frag.node.directives, vars)? => {
                deepest(doc, vars, &frag.node.selection_set.node, depth + 1)?
            }
            Selection::FragmentSpread(spread)
                if document::included(&spread.node.directives, vars)? =>
            {
                match doc.fragments.get(&spread.node.fragment_name.node) {
                    Some(def) => deepest(doc, vars, &def.node.selection_set.node, depth + 1)?,
                    None => 0,
                }
            }
            _ => 0,
        };
        most = most.max(hops);
    }
    Ok(most)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hops(q: &str) -> usize {
        relation_hops(q, None).unwrap_or_else(|e| panic!("{e}: {q}"))
    }

    #[test]
    fn counts_relations_fields_along_the_deepest_path() {
        assert_eq!(hops("{ Media(id: 1) { id } }"), 0);
        assert_eq!(
            hops("{ Page { media(id_in: [1]) { relations { edges { node { id } } } } } }"),
            1
        );
        let two =
            "{ Media(id: 1) { relations { edges { node { relations { nodes { id } } } } } } }";
        assert_eq!(hops(two), 2);
        // Siblings do not add up: the deepest single path counts.
        let siblings = "{ a: Media(id: 1) { relations { nodes { id } } } \
                        b: Media(id: 2) { relations { nodes { id } } } }";
        assert_eq!(hops(siblings), 1);
    }

    #[test]
    fn looks_through_fragments_and_honours_skip() {
        let q = "{ Media(id: 1) { ...R } } fragment R on Media { relations { edges { node { ...S } } } } \
                 fragment S on Media { relations { nodes { ... on Media { relations { nodes { id } } } } } }";
        assert_eq!(hops(q), 3);
        let skipped = "query($deep: Boolean = false) { Media(id: 1) { relations { edges { node { \
                       relations @include(if: $deep) { nodes { id } } } } } } }";
        assert_eq!(hops(skipped), 1);
        assert!(
            relation_hops(
                "{ Media(id: 1) { ...A } } fragment A on Media { ...A }",
                None
            )
            .is_err()
        );
    }
}
