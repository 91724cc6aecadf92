//! Relation-type rules of AniList's `MediaRelation` enum, kept as raw text.
//! Knows each type's inverse, whether a franchise walk follows it, and what version 1 reports.

/// The inverse a well-formed AniList entry carries on the other side of `relation_type`.
///
/// PARENT has no single inverse (the child may be a side story, spin-off or summary), so
/// generation always creates PARENT as the inverse of one of those, never on its own.
pub fn inverse(relation_type: &str) -> Option<&'static str> {
    Some(match relation_type {
        "SEQUEL" => "PREQUEL",
        "PREQUEL" => "SEQUEL",
        "SIDE_STORY" | "SPIN_OFF" | "SUMMARY" => "PARENT",
        "ALTERNATIVE" => "ALTERNATIVE",
        "COMPILATION" => "CONTAINS",
        "CONTAINS" => "COMPILATION",
        "SOURCE" => "ADAPTATION",
        "ADAPTATION" => "SOURCE",
        "CHARACTER" => "CHARACTER",
        "OTHER" => "OTHER",
        _ => return None,
    })
}

/// Whether the franchise walk described in DESIGN.md follows this edge; used to check
/// generated franchises have the size and depth they were asked for.
pub fn walkable(relation_type: &str) -> bool {
    matches!(
        relation_type,
        "SEQUEL"
            | "PREQUEL"
            | "PARENT"
            | "SIDE_STORY"
            | "SPIN_OFF"
            | "SUMMARY"
            | "ALTERNATIVE"
            | "COMPILATION"
            | "CONTAINS"
    )
}

/// What AniList reports without `relationType(version: 2)`.
///
/// SOURCE is reported as ADAPTATION (seen in the recorded v1 fixture). COMPILATION and
/// CONTAINS are "version 2 only" in AniList's docs; reporting them as OTHER is our guess.
pub fn as_version_1(relation_type: &str) -> &str {
    match relation_type {
        "SOURCE" => "ADAPTATION",
        "COMPILATION" | "CONTAINS" => "OTHER",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_pairs_are_symmetric_except_parent() {
        for t in [
            "SEQUEL",
            "PREQUEL",
            "ALTERNATIVE",
            "COMPILATION",
            "CONTAINS",
        ] {
            let inv = inverse(t).unwrap_or("none");
            assert_eq!(inverse(inv), Some(t), "{t}");
        }
        assert_eq!(inverse("SIDE_STORY"), Some("PARENT"));
        assert_eq!(inverse("PARENT"), None);
        assert_eq!(inverse("SOMETHING_NEW"), None);
    }

    #[test]
    fn version_1_hides_source() {
        assert_eq!(as_version_1("SOURCE"), "ADAPTATION");
        assert_eq!(as_version_1("SEQUEL"), "SEQUEL");
    }
}
