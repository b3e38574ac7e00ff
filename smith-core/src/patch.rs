//! Git-compatible unified diffs: made with `similar`, parsed, applied and
//! reversed in process. `git apply` accepts every patch made here.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

const NO_NEWLINE: &str = "\\ No newline at end of file";

/// One file's content before and after a change. `None` means the file does
/// not exist on that side (an added or deleted file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Path relative to the repository root, `/`-separated.
    pub path: String,
    /// Text before the change.
    pub before: Option<String>,
    /// Text after the change.
    pub after: Option<String>,
}

impl FileChange {
    /// A modification of an existing file.
    pub fn modified(
        path: impl Into<String>,
        before: impl Into<String>,
        after: impl Into<String>,
    ) -> Self {
        FileChange {
            path: path.into(),
            before: Some(before.into()),
            after: Some(after.into()),
        }
    }
}

/// A unified diff over one or more files, kept as its text (the form that
/// `git apply` and SWE-bench harnesses read).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Patch(String);

/// How a hunk line relates the two sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// Present on both sides.
    Context,
    /// Only on the old side.
    Removed,
    /// Only on the new side.
    Added,
}

/// One line of a hunk, with its line terminator (absent only at the end of a
/// file that lacks a final newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HunkLine {
    /// Which side(s) the line is on.
    pub kind: LineKind,
    /// The line including its terminator, if it has one.
    pub text: String,
}

/// A hunk: a run of changed lines with context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    /// 1-based first old line (0 when the old side is empty).
    pub old_start: usize,
    /// Old line count.
    pub old_len: usize,
    /// 1-based first new line (0 when the new side is empty).
    pub new_start: usize,
    /// New line count.
    pub new_len: usize,
    /// The lines.
    pub lines: Vec<HunkLine>,
}

/// The part of a patch about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePatch {
    /// Old path, `None` for an added file.
    pub old_path: Option<String>,
    /// New path, `None` for a deleted file.
    pub new_path: Option<String>,
    /// The hunks, in file order.
    pub hunks: Vec<Hunk>,
}

impl FilePatch {
    /// The path this patch is about (new path, or old for a deletion).
    pub fn path(&self) -> &str {
        self.new_path
            .as_deref()
            .or(self.old_path.as_deref())
            .unwrap_or_default()
    }

    /// The file patch that undoes this one.
    pub fn reversed(&self) -> FilePatch {
        FilePatch {
            old_path: self.new_path.clone(),
            new_path: self.old_path.clone(),
            hunks: self
                .hunks
                .iter()
                .map(|h| Hunk {
                    old_start: h.new_start,
                    old_len: h.new_len,
                    new_start: h.old_start,
                    new_len: h.old_len,
                    lines: h
                        .lines
                        .iter()
                        .map(|l| HunkLine {
                            kind: match l.kind {
                                LineKind::Added => LineKind::Removed,
                                LineKind::Removed => LineKind::Added,
                                LineKind::Context => LineKind::Context,
                            },
                            text: l.text.clone(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// This file's part as a patch of its own, in git's format.
    pub fn to_patch(&self) -> Patch {
        let mut text = String::new();
        write_file_patch(&mut text, self);
        Patch(text)
    }

    /// Apply the hunks to `old` (`None` if the file does not exist) and
    /// return the new text (`None` if the patch deletes the file).
    pub fn apply(&self, old: Option<&str>) -> Result<Option<String>> {
        let fail = |reason: String| Error::PatchApply {
            path: self.path().into(),
            reason,
        };
        if self.new_path.is_none() {
            return Ok(None);
        }
        let old = match (old, &self.old_path) {
            (Some(text), _) => text,
            (None, None) => "",
            (None, Some(_)) => return Err(fail("the file does not exist".into())),
        };
        let lines: Vec<&str> = old.split_inclusive('\n').collect();
        let mut out = String::with_capacity(old.len() + 64);
        let mut at = 0usize; // next unconsumed old line
        for hunk in &self.hunks {
            let want: Vec<&str> = hunk
                .lines
                .iter()
                .filter(|l| l.kind != LineKind::Added)
                .map(|l| l.text.as_str())
                .collect();
            let expected = hunk.old_start.saturating_sub(1).max(at);
            let pos = find_block(&lines, &want, at, expected).ok_or_else(|| {
                fail(format!(
                    "hunk @@ -{},{} +{},{} @@ does not match the file",
                    hunk.old_start, hunk.old_len, hunk.new_start, hunk.new_len
                ))
            })?;
            for line in &lines[at..pos] {
                out.push_str(line);
            }
            for line in hunk.lines.iter().filter(|l| l.kind != LineKind::Removed) {
                out.push_str(&line.text);
            }
            at = pos + want.len();
        }
        for line in &lines[at..] {
            out.push_str(line);
        }
        Ok(Some(out))
    }
}

/// Find `want` in `lines[from..]`, trying positions nearest `expected` first.
fn find_block(lines: &[&str], want: &[&str], from: usize, expected: usize) -> Option<usize> {
    let last = lines.len().checked_sub(want.len())?;
    if from > last {
        return None;
    }
    let fits = |pos: usize| lines[pos..pos + want.len()] == *want;
    let expected = expected.clamp(from, last);
    let max_delta = (expected - from).max(last - expected);
    for delta in 0..=max_delta {
        if let Some(p) = expected.checked_sub(delta).filter(|p| *p >= from) {
            if fits(p) {
                return Some(p);
            }
        }
        let p = expected + delta;
        if delta > 0 && p <= last && fits(p) {
            return Some(p);
        }
    }
    None
}

impl Patch {
    /// Wrap patch text as is (see [`Patch::files`] to validate it).
    pub fn from_text(text: impl Into<String>) -> Self {
        Patch(text.into())
    }

    /// The unified diff of `changes`, with three lines of context, in git's
    /// format. Files whose text does not change are left out.
    ///
    /// ```
    /// use smith_core::{FileChange, Patch};
    /// let p = Patch::from_changes(&[FileChange::modified("m.py", "a = 1\n", "a = 2\n")]);
    /// assert!(p.as_str().starts_with("diff --git a/m.py b/m.py\n"));
    /// assert_eq!(p.apply_to_text("m.py", "a = 1\n").unwrap(), "a = 2\n");
    /// assert_eq!(p.reverse().apply_to_text("m.py", "a = 2\n").unwrap(), "a = 1\n");
    /// ```
    pub fn from_changes(changes: &[FileChange]) -> Self {
        let mut text = String::new();
        for change in changes {
            if change.before == change.after {
                continue;
            }
            write_file_diff(&mut text, change);
        }
        Patch(text)
    }

    /// The diff text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }

    /// Parse the patch into per-file hunks.
    pub fn files(&self) -> Result<Vec<FilePatch>> {
        parse(&self.0)
    }

    /// Paths the patch touches, in order.
    pub fn paths(&self) -> Result<Vec<String>> {
        Ok(self.files()?.iter().map(|f| f.path().to_string()).collect())
    }

    /// Number of added plus removed lines.
    pub fn changed_lines(&self) -> usize {
        self.0
            .lines()
            .filter(|l| {
                (l.starts_with('+') && !l.starts_with("+++"))
                    || (l.starts_with('-') && !l.starts_with("---"))
            })
            .count()
    }

    /// The patch that undoes this one.
    pub fn reverse(&self) -> Patch {
        let files = match self.files() {
            Ok(files) => files,
            Err(_) => return self.clone(),
        };
        let mut text = String::new();
        for f in files {
            let reversed = f.reversed();
            write_file_patch(&mut text, &reversed);
        }
        Patch(text)
    }

    /// Apply the part of the patch about `path` to `text`.
    pub fn apply_to_text(&self, path: &str, text: &str) -> Result<String> {
        let files = self.files()?;
        let file = files
            .iter()
            .find(|f| f.path() == path)
            .ok_or_else(|| Error::PatchApply {
                path: path.into(),
                reason: "the patch does not touch this file".into(),
            })?;
        Ok(file.apply(Some(text))?.unwrap_or_default())
    }
}

impl std::fmt::Display for Patch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn write_file_diff(out: &mut String, change: &FileChange) {
    let old = change.before.as_deref().unwrap_or("");
    let new = change.after.as_deref().unwrap_or("");
    let diff = similar::TextDiff::from_lines(old, new);
    let mut hunks = Vec::new();
    for group in diff.grouped_ops(3) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let old_range = first.old_range().start..last.old_range().end;
        let new_range = first.new_range().start..last.new_range().end;
        let mut lines = Vec::new();
        for op in &group {
            for c in diff.iter_changes(op) {
                let kind = match c.tag() {
                    similar::ChangeTag::Equal => LineKind::Context,
                    similar::ChangeTag::Delete => LineKind::Removed,
                    similar::ChangeTag::Insert => LineKind::Added,
                };
                lines.push(HunkLine {
                    kind,
                    text: c.value().to_string(),
                });
            }
        }
        let start = |r: &std::ops::Range<usize>| if r.is_empty() { r.start } else { r.start + 1 };
        hunks.push(Hunk {
            old_start: start(&old_range),
            old_len: old_range.len(),
            new_start: start(&new_range),
            new_len: new_range.len(),
            lines,
        });
    }
    let file = FilePatch {
        old_path: change.before.as_ref().map(|_| change.path.clone()),
        new_path: change.after.as_ref().map(|_| change.path.clone()),
        hunks,
    };
    write_file_patch(out, &file);
}

fn write_file_patch(out: &mut String, file: &FilePatch) {
    let path = file.path();
    out.push_str(&format!("diff --git a/{path} b/{path}\n"));
    match (&file.old_path, &file.new_path) {
        (None, Some(_)) => out.push_str("new file mode 100644\n"),
        (Some(_), None) => out.push_str("deleted file mode 100644\n"),
        _ => {}
    }
    match &file.old_path {
        Some(p) => out.push_str(&format!("--- a/{p}\n")),
        None => out.push_str("--- /dev/null\n"),
    }
    match &file.new_path {
        Some(p) => out.push_str(&format!("+++ b/{p}\n")),
        None => out.push_str("+++ /dev/null\n"),
    }
    for h in &file.hunks {
        out.push_str(&format!(
            "@@ -{},{} +{},{} @@\n",
            h.old_start, h.old_len, h.new_start, h.new_len
        ));
        for line in &h.lines {
            out.push(match line.kind {
                LineKind::Context => ' ',
                LineKind::Removed => '-',
                LineKind::Added => '+',
            });
            out.push_str(&line.text);
            if !line.text.ends_with('\n') {
                out.push('\n');
                out.push_str(NO_NEWLINE);
                out.push('\n');
            }
        }
    }
}

fn strip_prefix(path: &str) -> Option<String> {
    let path = path.split('\t').next().unwrap_or(path).trim_end();
    if path == "/dev/null" {
        return None;
    }
    Some(
        path.strip_prefix("a/")
            .or_else(|| path.strip_prefix("b/"))
            .unwrap_or(path)
            .to_string(),
    )
}

fn parse_range(s: &str) -> Option<(usize, usize)> {
    match s.split_once(',') {
        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
        None => Some((s.parse().ok()?, 1)),
    }
}

/// A [`Error::PatchParse`] at 0-based line `line`.
fn parse_error(line: usize, reason: &str) -> Error {
    Error::PatchParse {
        line: line + 1,
        reason: reason.to_string(),
    }
}

fn parse(text: &str) -> Result<Vec<FilePatch>> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut files: Vec<FilePatch> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end_matches(['\n', '\r']);
        if let Some(old) = line.strip_prefix("--- ") {
            let new = lines
                .get(i + 1)
                .and_then(|l| l.trim_end_matches(['\n', '\r']).strip_prefix("+++ "))
                .ok_or_else(|| parse_error(i + 1, "`---` line not followed by `+++`"))?;
            files.push(FilePatch {
                old_path: strip_prefix(old),
                new_path: strip_prefix(new),
                hunks: Vec::new(),
            });
            i += 2;
            continue;
        }
        if let Some(rest) = line.strip_prefix("@@ -") {
            let file = files
                .last_mut()
                .ok_or_else(|| parse_error(i, "hunk before any file header"))?;
            let (hunk, next) = parse_hunk(&lines, i, rest)?;
            file.hunks.push(hunk);
            i = next;
            continue;
        }
        i += 1;
    }
    if files.is_empty() && !text.trim().is_empty() {
        return Err(parse_error(0, "no file header (`--- a/...`) found"));
    }
    Ok(files)
}

/// The hunk whose header is `lines[at]` (`rest` follows its `@@ -`), and
/// the index of the line after it.
fn parse_hunk(lines: &[&str], at: usize, rest: &str) -> Result<(Hunk, usize)> {
    let header = rest.split(" @@").next().unwrap_or("");
    let (old, new) = header
        .split_once(" +")
        .ok_or_else(|| parse_error(at, "bad hunk header"))?;
    let (old_start, old_len) = parse_range(old).ok_or_else(|| parse_error(at, "bad old range"))?;
    let (new_start, new_len) = parse_range(new).ok_or_else(|| parse_error(at, "bad new range"))?;
    let mut hunk = Hunk {
        old_start,
        old_len,
        new_start,
        new_len,
        lines: Vec::new(),
    };
    let (mut seen_old, mut seen_new) = (0, 0);
    let mut i = at + 1;
    while (seen_old < old_len || seen_new < new_len) && i < lines.len() {
        let raw = lines[i];
        let (kind, body) = match raw.as_bytes().first() {
            Some(b' ') => (LineKind::Context, &raw[1..]),
            Some(b'-') => (LineKind::Removed, &raw[1..]),
            Some(b'+') => (LineKind::Added, &raw[1..]),
            Some(b'\\') => {
                strip_last_newline(&mut hunk);
                i += 1;
                continue;
            }
            // Some tools drop the space of empty context lines.
            Some(b'\n') => (LineKind::Context, raw),
            _ => return Err(parse_error(i, "hunk ends before its line counts are met")),
        };
        match kind {
            LineKind::Context => {
                seen_old += 1;
                seen_new += 1;
            }
            LineKind::Removed => seen_old += 1,
            LineKind::Added => seen_new += 1,
        }
        hunk.lines.push(HunkLine {
            kind,
            text: body.to_string(),
        });
        i += 1;
    }
    if seen_old != old_len || seen_new != new_len {
        return Err(parse_error(i, "hunk is shorter than its header says"));
    }
    if lines.get(i).is_some_and(|l| l.starts_with('\\')) {
        strip_last_newline(&mut hunk);
        i += 1;
    }
    Ok((hunk, i))
}

fn strip_last_newline(hunk: &mut Hunk) {
    if let Some(last) = hunk.lines.last_mut() {
        if last.text.ends_with('\n') {
            last.text.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(before: &str, after: &str) {
        let p = Patch::from_changes(&[FileChange::modified("f.py", before, after)]);
        assert_eq!(
            p.apply_to_text("f.py", before).unwrap(),
            after,
            "patch:\n{p}"
        );
        assert_eq!(
            p.reverse().apply_to_text("f.py", after).unwrap(),
            before,
            "patch:\n{p}"
        );
    }

    #[test]
    fn roundtrips() {
        roundtrip("a\nb\nc\n", "a\nB\nc\n");
        roundtrip("a\nb\nc", "a\nb\nC");
        roundtrip("a\nb\nc", "a\nb\nc\n");
        roundtrip("", "x\n");
        roundtrip("x\n", "");
        roundtrip("a\r\nb\r\n", "a\r\nc\r\n");
        let long: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let changed = long.replace("line 10\n", "LINE\n").replace("line 90\n", "");
        roundtrip(&long, &changed);
    }

    #[test]
    fn no_newline_marker_is_written() {
        let p = Patch::from_changes(&[FileChange::modified("f.py", "a", "b")]);
        assert!(p.as_str().contains(NO_NEWLINE), "{p}");
    }

    #[test]
    fn applies_with_offset() {
        let p =
            Patch::from_changes(&[FileChange::modified("f.py", "a\nb\nc\nd\n", "a\nb\nX\nd\n")]);
        let shifted = "new1\nnew2\na\nb\nc\nd\n";
        assert_eq!(
            p.apply_to_text("f.py", shifted).unwrap(),
            "new1\nnew2\na\nb\nX\nd\n"
        );
        assert!(p.apply_to_text("f.py", "q\nr\n").is_err());
    }

    #[test]
    fn added_and_deleted_files() {
        let p = Patch::from_changes(&[FileChange {
            path: "new.py".into(),
            before: None,
            after: Some("x = 1\n".into()),
        }]);
        assert!(p.as_str().contains("--- /dev/null"));
        let f = &p.files().unwrap()[0];
        assert_eq!(f.apply(None).unwrap().unwrap(), "x = 1\n");
        let r = p.reverse();
        assert_eq!(r.files().unwrap()[0].apply(Some("x = 1\n")).unwrap(), None);
    }

    #[test]
    fn malformed_patches_are_errors() {
        assert!(Patch::from_text("hello").files().is_err());
        assert!(Patch::from_text("--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n")
            .files()
            .is_err());
    }
}
