//! Functions, methods and classes: the units that bugs are planted in.

use serde::{Deserialize, Serialize};

/// A half-open byte range `start..end` into a UTF-8 source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ByteRange {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl ByteRange {
    /// `start..end`.
    pub fn new(start: usize, end: usize) -> Self {
        ByteRange { start, end }
    }

    /// Number of bytes covered.
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Whether the range covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `other` lies entirely within `self`.
    pub fn contains_range(&self, other: ByteRange) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// Whether the two ranges share at least one byte.
    pub fn overlaps(&self, other: ByteRange) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// What kind of definition an [`Entity`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// A module-level or nested `def`.
    Function,
    /// A module-level or nested `async def`.
    AsyncFunction,
    /// A `def` or `async def` directly inside a class.
    Method,
    /// A `class`.
    Class,
}

/// Facts about an entity that mutators and filters select on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityFlags {
    /// Defined in test code (a test file, or named `test_*`).
    pub is_test: bool,
    /// Decorated with `@property` (or a `.setter`/`.getter`/`.deleter`).
    pub is_property: bool,
    /// Its body starts with a docstring.
    pub has_docstring: bool,
    /// Its body does nothing (`pass`, `...`, `raise NotImplementedError`) or it is abstract.
    pub is_stub: bool,
    /// Defined with `async def`.
    pub is_async: bool,
}

/// A function, method or class in one file of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    /// Path of the file relative to the repository root, with `/` separators.
    pub file: String,
    /// Dotted name inside the file, e.g. `Class.method` or `outer.inner`.
    pub qualname: String,
    /// What it is.
    pub kind: EntityKind,
    /// Bytes of the whole definition, decorators included.
    pub range: ByteRange,
    /// 1-based first and last line of the definition.
    pub lines: (usize, usize),
    /// Cyclomatic complexity (1 + decision points).
    pub complexity: u32,
    /// Selection flags.
    pub flags: EntityFlags,
}

impl Entity {
    /// The repository-wide name, `path/to/mod.py::Class.method`.
    pub fn id(&self) -> String {
        format!("{}::{}", self.file, self.qualname)
    }

    /// The last component of the qualified name.
    pub fn name(&self) -> &str {
        self.qualname.rsplit('.').next().unwrap_or(&self.qualname)
    }
}

/// One Python source file, as read from the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the repository root, `/`-separated.
    pub path: String,
    /// The file's text.
    pub text: String,
}

impl SourceFile {
    /// A source file from a path and its text.
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        SourceFile {
            path: path.into(),
            text: text.into(),
        }
    }

    /// The text of `range`.
    pub fn slice(&self, range: ByteRange) -> &str {
        &self.text[range.start..range.end]
    }

    /// 1-based line number of byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        1 + self.text.as_bytes()[..offset.min(self.text.len())]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
    }
}
