//! How far and how wide one import walks, as a caller asks for it.

use crate::anime::RelationType;
use crate::store::ImportRules;

/// The largest `max_depth` an import may ask for.
pub(crate) const MAX_DEPTH_LIMIT: u32 = 1000;
/// The shipped `import.max_depth` (`config/default.toml` says the same; a test holds them
/// together).
const DEFAULT_MAX_DEPTH: u32 = 50;
/// The shipped `import.max_items`.
const DEFAULT_MAX_ITEMS: u32 = 1000;

/// How far and how wide one import walks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportOptions {
    /// Relation hops from the root; the root is depth 0.
    pub max_depth: u32,
    /// Most anime one import takes in, root included (at least 1).
    pub max_items: u32,
    /// The relation types the walk follows (by default SEQUEL, PREQUEL, PARENT, SIDE_STORY,
    /// SPIN_OFF, SUMMARY, ALTERNATIVE, COMPILATION and CONTAINS).
    pub followed: Vec<RelationType>,
    /// Fetch every anime again, however fresh its stored copy.
    pub force_refresh: bool,
}

/// An import option that makes no walk: which one, its value, and what would be right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InvalidImportOption {
    pub name: &'static str,
    pub value: String,
    pub expected: String,
}

impl Default for ImportOptions {
    /// The shipped defaults, as `config/default.toml` documents them.
    fn default() -> Self {
        Self {
            max_depth: DEFAULT_MAX_DEPTH,
            max_items: DEFAULT_MAX_ITEMS,
            followed: RelationType::FOLLOWED_BY_DEFAULT.to_vec(),
            force_refresh: false,
        }
    }
}

impl ImportOptions {
    pub fn with_max_depth(mut self, max_depth: u32) -> Self {
        self.max_depth = max_depth;
        self
    }

    pub fn with_max_items(mut self, max_items: u32) -> Self {
        self.max_items = max_items;
        self
    }

    pub fn with_force_refresh(mut self, force_refresh: bool) -> Self {
        self.force_refresh = force_refresh;
        self
    }

    pub fn with_followed(mut self, followed: Vec<RelationType>) -> Self {
        self.followed = followed;
        self
    }

    /// Checks the caps make a walk, naming the bad value.
    pub(crate) fn validate(&self) -> Result<(), InvalidImportOption> {
        if self.max_items == 0 {
            return Err(InvalidImportOption {
                name: "max_items",
                value: "0".into(),
                expected: "at least 1 (the root itself)".into(),
            });
        }
        if self.max_depth > MAX_DEPTH_LIMIT {
            return Err(InvalidImportOption {
                name: "max_depth",
                value: self.max_depth.to_string(),
                expected: format!("relation hops from 0 to {MAX_DEPTH_LIMIT}"),
            });
        }
        Ok(())
    }

    pub(crate) fn rules(&self) -> ImportRules {
        ImportRules {
            max_depth: self.max_depth,
            max_items: self.max_items,
            followed: self.followed.clone(),
            force_refresh: self.force_refresh,
        }
    }
}
