//! How far and how wide one import walks, as a caller asks for it.

use crate::anime::RelationType;
use crate::store::ImportRules;

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

impl Default for ImportOptions {
    /// The shipped defaults, as `config/default.toml` documents them.
    fn default() -> Self {
        crate::config::Settings::default().import_options()
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
    pub(crate) fn validate(&self) -> Result<(), crate::Error> {
        if self.max_items == 0 {
            return Err(crate::Error::InvalidOption {
                name: "max_items",
                value: "0".into(),
                expected: "at least 1 (the root itself)".into(),
            });
        }
        if self.max_depth > crate::config::MAX_DEPTH_LIMIT {
            return Err(crate::Error::InvalidOption {
                name: "max_depth",
                value: self.max_depth.to_string(),
                expected: "relation hops from 0 to 1000".into(),
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
