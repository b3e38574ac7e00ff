//! Which repository, at which commit.

use std::fmt;

/// A repository (`owner/name`) at one commit: what every candidate,
/// baseline and task instance is made for, and what their ids are derived
/// from. Records keep the two as their own fields (`repo`,
/// `base_commit`), as SWE-bench's schema has them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoRef {
    /// `owner/name`.
    pub name: String,
    /// The commit of the clean tree.
    pub commit: String,
}

impl RepoRef {
    /// `name` at `commit`.
    pub fn new(name: impl Into<String>, commit: impl Into<String>) -> Self {
        RepoRef {
            name: name.into(),
            commit: commit.into(),
        }
    }
}

impl fmt::Display for RepoRef {
    /// `owner/name@commit`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.commit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_as_name_at_commit() {
        assert_eq!(
            RepoRef::new("acme/demo", "0123abcd").to_string(),
            "acme/demo@0123abcd"
        );
    }
}
