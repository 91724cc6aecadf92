//! Query complexity counted as AniList's GraphQL library (webonyx/graphql-php, rule
//! `QueryComplexity`) counts it, from the query text alone, so clients can check before sending.

use std::cell::RefCell;
use std::collections::HashMap;

use async_graphql::parser::types::{
    ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, Variables};

use super::document::{self, MAX_NESTING};

/// AniList's maximum query complexity; more is a 400 "Max query complexity should be 500 but
/// got N." before anything runs.
pub const MAX_COMPLEXITY: usize = 500;

/// The complexity AniList computes for `query` (the operation named, or its only one), with
/// `@skip`/`@include` conditions read from literals and variable defaults.
///
/// The rule's default cost of a field is `1 + sum(children)`, for every field alike: scalars,
/// objects, lists (never multiplied by `perPage` or by results), `__typename`, `__schema` and
/// `__type` with everything under them. Fragment spreads and inline fragments add their fields
/// (a fragment spread twice counts twice). A field whose first `@include`/`@skip` excludes it
/// costs nothing, children included; directives on fragments are ignored, as the rule does.
/// Each operation is counted on its own (the server caps every operation in the document).
pub fn webonyx_complexity(query: &str, operation_name: Option<&str>) -> Result<usize, String> {
    webonyx_complexity_with(query, operation_name, &serde_json::Value::Null)
}

/// Like [`webonyx_complexity`], with the request's variables (a JSON object, or null), which
/// AniList also uses for `@skip(if: $x)`/`@include(if: $x)`.
pub fn webonyx_complexity_with(
    query: &str,
    operation_name: Option<&str>,
    variables: &serde_json::Value,
) -> Result<usize, String> {
    let doc = async_graphql::parser::parse_query(query).map_err(|e| e.to_string())?;
    let vars = document::variables_from_json(variables)?;
    let op = document::pick_operation(&doc, operation_name)?;
    operation_complexity(&doc, op, &vars)
}

/// One operation's complexity in a parsed document.
pub fn operation_complexity(
    doc: &ExecutableDocument,
    op: &OperationDefinition,
    raw_variables: &Variables,
) -> Result<usize, String> {
    let vars = document::with_defaults(op, raw_variables);
    let counter = Counter {
        doc,
        vars: &vars,
        fragments: RefCell::new(HashMap::new()),
    };
    counter.selection_set(&op.selection_set.node, 0)
}

/// AniList's rejection message, word for word.
pub fn too_complex_message(max: usize, got: usize) -> String {
    format!("Max query complexity should be {max} but got {got}.")
}

struct Counter<'a> {
    doc: &'a ExecutableDocument,
    vars: &'a Variables,
    /// A fragment's cost does not depend on where it is spread, so each is counted once;
    /// `None` marks one being counted (a cycle if met again).
    fragments: RefCell<HashMap<Name, Option<usize>>>,
}

impl Counter<'_> {
    fn selection_set(&self, set: &SelectionSet, depth: usize) -> Result<usize, String> {
        if depth > MAX_NESTING {
            return Err("the query nests too deep to count".to_string());
        }
        let mut total = 0usize;
        for item in &set.items {
            let cost = match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    // The rule counts the children before it looks at the field's directives.
                    let children = self.selection_set(&field.selection_set.node, depth + 1)?;
                    if self.excluded(&field.directives)? {
                        0
                    } else {
                        children.saturating_add(1)
                    }
                }
                Selection::InlineFragment(frag) => {
                    self.selection_set(&frag.node.selection_set.node, depth + 1)?
                }
                Selection::FragmentSpread(spread) => {
                    self.fragment(&spread.node.fragment_name.node, depth + 1)?
                }
            };
            total = total.saturating_add(cost);
        }
        Ok(total)
    }

    /// An unknown fragment adds nothing, as in the rule (validation reports it anyway).
    fn fragment(&self, name: &Name, depth: usize) -> Result<usize, String> {
        match self.fragments.borrow().get(name) {
            Some(Some(cost)) => return Ok(*cost),
            Some(None) => return Err(format!(r#"Cannot spread fragment "{name}" within itself."#)),
            None => {}
        }
        let Some(def) = self.doc.fragments.get(name) else {
            return Ok(0);
        };
        self.fragments.borrow_mut().insert(name.clone(), None);
        let cost = self.selection_set(&def.node.selection_set.node, depth)?;
        self.fragments.borrow_mut().insert(name.clone(), Some(cost));
        Ok(cost)
    }

    /// `QueryComplexity::directiveExcludesField`: the first `@deprecated`, `@include` or
    /// `@skip` decides; other directives are passed over.
    fn excluded(
        &self,
        directives: &[Positioned<async_graphql::parser::types::Directive>],
    ) -> Result<bool, String> {
        for d in directives {
            match d.node.name.node.as_str() {
                "deprecated" => return Ok(false),
                "include" => return Ok(!document::if_argument(&d.node, self.vars)?),
                "skip" => return document::if_argument(&d.node, self.vars),
                _ => {}
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(q: &str) -> usize {
        webonyx_complexity(q, None).unwrap_or_else(|e| panic!("{e}: {q}"))
    }

    /// The field set franchise asks for per media (the fake's tests use the same).
    const FULL_MEDIA: &str = "id idMal type format status episodes season seasonYear \
        startDate { year month day } title { romaji english native userPreferred } isAdult \
        relations { edges { id relationType(version: 2) node { id type format status title { romaji english native } } } }";

    #[test]
    fn each_field_is_one_plus_its_children() {
        assert_eq!(cost("{ Media(id: 1) { id } }"), 2);
        // title 1 + 3 leaves; Media 1 + id 1 + title 4.
        assert_eq!(
            cost("{ Media(id: 1) { id title { romaji english native } } }"),
            6
        );
        // Leaves 8, startDate 4, title 5, isAdult 1; relations: title 4, node 1+4+4 = 9,
        // edges 1+1+1+9 = 12, relations 13. 8+4+5+1+13 = 31 under Media: 32.
        assert_eq!(cost(&format!("{{ Media(id: 1) {{ {FULL_MEDIA} }} }}")), 32);
    }

    #[test]
    fn lists_and_page_sizes_are_not_multiplied() {
        // pageInfo 1+5 = 6, media 1+31 = 32, Page 1+6+32 = 39, whatever perPage says.
        let page = |per_page: u32| {
            format!(
                "query($ids: [Int]) {{ Page(page: 1, perPage: {per_page}) {{ \
                 pageInfo {{ total perPage currentPage lastPage hasNextPage }} \
                 media(id_in: $ids, type: ANIME) {{ {FULL_MEDIA} }} }} }}"
            )
        };
        assert_eq!(cost(&page(1)), 39);
        assert_eq!(cost(&page(50)), 39);
        // Twenty aliased roots: 20 × 32 = 640 > 500.
        let roots: String = (0..20)
            .map(|i| format!("m{i}: Media(id: {i}) {{ {FULL_MEDIA} }} "))
            .collect();
        assert_eq!(cost(&format!("{{ {roots} }}")), 640);
    }

    #[test]
    fn two_level_nested_relations() {
        // Inner relations: node{id} 2, edges 1+1(relationType)+2 = 4, relations 5.
        // Outer node: 1 + id 1 + relations 5 = 7; outer edges 1+1+7 = 9; outer relations 10;
        // Media 1 + id 1 + 10 = 12.
        let q = "{ Media(id: 1) { id relations { edges { relationType node { id \
                 relations { edges { relationType node { id } } } } } } } }";
        assert_eq!(cost(q), 12);
    }

    #[test]
    fn fragments_count_where_spread_each_time() {
        // Fragment T = title 1 + 2 leaves = 3. The rule adds it once per spread, even twice in
        // one selection set: Media 1 + id 1 + 3 + 3 = 8.
        let q = "{ Media(id: 1) { id ...T ...T } } fragment T on Media { title { romaji native } }";
        assert_eq!(cost(q), 8);
        // Inline fragments add their fields: Media 1 + id 1 + (format 1 + status 1) = 4.
        assert_eq!(
            cost("{ Media(id: 1) { id ... on Media { format status } } }"),
            4
        );
        // Nested fragments: A = id + B, B = title{romaji} = 2; A = 3; Media 1 + 3 = 4.
        let nested = "query { Media(id: 1) { ...A } } fragment A on Media { id ...B } \
                      fragment B on Media { title { romaji } }";
        assert_eq!(cost(nested), 4);
    }

    #[test]
    fn typename_and_introspection_fields_count() {
        assert_eq!(cost("{ __typename Media(id: 1) { __typename id } }"), 4);
        // __type 1 + name 1 + fields (1 + name 1 + args (1 + name 1)) = 1+1+1+1+1+1 = 6.
        assert_eq!(
            cost(r#"{ __type(name: "Media") { name fields { name args { name } } } }"#),
            6
        );
        // __schema 1 + types (1 + name 1) = 3.
        assert_eq!(cost("{ __schema { types { name } } }"), 3);
    }

    #[test]
    fn skip_and_include_follow_the_rule() {
        // A skipped field costs nothing, children included: Media 1 + id 1 = 2.
        assert_eq!(
            cost("{ Media(id: 1) { id title @skip(if: true) { romaji } } }"),
            2
        );
        assert_eq!(
            cost("{ Media(id: 1) { id title @include(if: false) { romaji } } }"),
            2
        );
        assert_eq!(
            cost("{ Media(id: 1) { id title @include(if: true) { romaji } } }"),
            4
        );
        // Variables, their defaults and values sent with the request.
        let q =
            "query($t: Boolean = false) { Media(id: 1) { id title @include(if: $t) { romaji } } }";
        assert_eq!(cost(q), 2);
        let with = webonyx_complexity_with(q, None, &serde_json::json!({"t": true}));
        assert_eq!(with, Ok(4));
        // The first @include/@skip decides (the rule returns on the first one it meets).
        assert_eq!(
            cost("{ Media(id: 1) { id title @include(if: true) @skip(if: true) { romaji } } }"),
            4
        );
        // Directives on fragments are not looked at: the fields still count.
        assert_eq!(
            cost("{ Media(id: 1) { id ... @skip(if: true) { format } } }"),
            3
        );
        // A condition with no value is an error, as AniList reports one.
        let missing = "query($t: Boolean) { Media(id: 1) { id @include(if: $t) } }";
        assert!(webonyx_complexity(missing, None).is_err());
    }

    #[test]
    fn operations_are_chosen_and_counted_alone() {
        let q = "query A { Media(id: 1) { id } } query B { Media(id: 2) { id title { romaji } } }";
        assert_eq!(webonyx_complexity(q, Some("A")), Ok(2));
        assert_eq!(webonyx_complexity(q, Some("B")), Ok(4));
        assert!(webonyx_complexity(q, None).is_err());
        assert!(webonyx_complexity("{ Media(id: 1) {", None).is_err());
        let cycle = "{ Media(id: 1) { ...A } } fragment A on Media { id ...A }";
        assert!(webonyx_complexity(cycle, None).is_err());
        assert_eq!(
            too_complex_message(500, 640),
            "Max query complexity should be 500 but got 640."
        );
    }
}
