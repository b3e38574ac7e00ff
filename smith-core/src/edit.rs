//! Source edits as values: replace a byte range with new text.

use serde::{Deserialize, Serialize};

use crate::{ByteRange, Error, Result};

/// Replace the bytes of `range` with `content`. Insertions have an empty
/// range, deletions an empty content.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Edit {
    /// Bytes replaced.
    pub range: ByteRange,
    /// Replacement text.
    pub content: String,
}

impl Edit {
    /// Replace `start..end` with `content`.
    pub fn replacement(content: impl Into<String>, start: usize, end: usize) -> Self {
        Edit {
            range: ByteRange::new(start, end),
            content: content.into(),
        }
    }

    /// Delete `start..end`.
    pub fn deletion(start: usize, end: usize) -> Self {
        Self::replacement(String::new(), start, end)
    }

    /// Insert `content` at `at`.
    pub fn insertion(content: impl Into<String>, at: usize) -> Self {
        Self::replacement(content, at, at)
    }
}

/// Apply `edits` to `text`: sort them, reject overlaps and ranges outside
/// the text or off character boundaries, then splice once.
///
/// ```
/// use smith_core::{apply_edits, Edit};
/// let out = apply_edits("a < b", &[Edit::replacement(">=", 2, 3)]).unwrap();
/// assert_eq!(out, "a >= b");
/// ```
pub fn apply_edits(text: &str, edits: &[Edit]) -> Result<String> {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| (e.range.start, e.range.end));
    let invalid = |reason: String| Error::InvalidEdit {
        path: Default::default(),
        reason,
    };
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for edit in sorted {
        let ByteRange { start, end } = edit.range;
        if start < at {
            return Err(invalid(format!(
                "edit at {start}..{end} overlaps an earlier edit ending at {at}"
            )));
        }
        if end < start || end > text.len() {
            return Err(invalid(format!(
                "edit {start}..{end} is outside the text of {} bytes",
                text.len()
            )));
        }
        if !text.is_char_boundary(start) || !text.is_char_boundary(end) {
            return Err(invalid(format!("edit {start}..{end} splits a character")));
        }
        out.push_str(&text[at..start]);
        out.push_str(&edit.content);
        at = end;
    }
    out.push_str(&text[at..]);
    Ok(out)
}

/// A set of non-overlapping edits to one file that plants one bug.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mutation {
    /// File, relative to the repository root.
    pub file: String,
    /// The edits, in any order.
    pub edits: Vec<Edit>,
    /// Strategy name, e.g. `func_pm_ctrl_invert_if`.
    pub strategy: String,
    /// One line saying what was changed.
    pub description: String,
    /// Ids (`file::qualname`) of the entities touched.
    pub entities: Vec<String>,
}

impl Mutation {
    /// Apply the mutation to the file's original text.
    pub fn apply(&self, text: &str) -> Result<String> {
        apply_edits(text, &self.edits).map_err(|e| match e {
            Error::InvalidEdit { reason, .. } => Error::InvalidEdit {
                path: self.file.clone().into(),
                reason,
            },
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_apply_in_any_order() {
        let text = "x = a + b\n";
        let edits = [Edit::replacement("-", 6, 7), Edit::replacement("y", 0, 1)];
        assert_eq!(apply_edits(text, &edits).unwrap(), "y = a - b\n");
    }

    #[test]
    fn overlapping_and_outside_edits_are_rejected() {
        let text = "abcdef";
        assert!(apply_edits(text, &[Edit::deletion(0, 3), Edit::deletion(2, 4)]).is_err());
        assert!(apply_edits(text, &[Edit::deletion(4, 9)]).is_err());
        assert!(apply_edits("é", &[Edit::deletion(0, 1)]).is_err());
    }

    #[test]
    fn insertion_and_deletion() {
        assert_eq!(
            apply_edits("ab", &[Edit::insertion("X", 1)]).unwrap(),
            "aXb"
        );
        assert_eq!(apply_edits("abc", &[Edit::deletion(1, 2)]).unwrap(), "ac");
    }
}
