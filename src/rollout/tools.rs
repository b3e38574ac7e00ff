//! The agent's tools, with the names and arguments of SWE-agent's tool set
//! so that trajectories look like the ones agents are already trained on:
//! `bash` runs a command in the episode's workspace, `str_replace_editor`
//! views and edits files, `submit` ends the episode.
//!
//! Each `bash` command runs in a fresh shell at the repository root, inside
//! the task's sandbox, with a time limit of its own; long output is cut in
//! the middle with a note saying so. Editor paths are relative to the
//! repository root.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::gym::Episode;
use crate::{workspace_rel, CommandSpec, FileChange, Patch, Result, RunOptions, ToolSpec};

/// The shell tool's name.
pub const BASH: &str = "bash";
/// The file viewer and editor's name.
pub const EDITOR: &str = "str_replace_editor";
/// The tool that ends an episode.
pub const SUBMIT: &str = "submit";

/// The schemas of the three tools, as offered to the model.
pub fn tool_specs() -> Vec<ToolSpec> {
    vec![
        ToolSpec::function(
            BASH,
            "Run a command in a bash shell at the repository root and see its output. \
             Each call starts a fresh shell (no state is kept between calls), has a time \
             limit, and long output is shortened.",
            json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string", "description": "The bash command to run."}
                },
                "required": ["command"]
            }),
        ),
        ToolSpec::function(
            EDITOR,
            "View, create and edit files. `view` shows a file with line numbers (or a \
             directory's files two levels deep); `create` writes a new file; `str_replace` \
             replaces `old_str`, which must occur exactly once, with `new_str`; `insert` adds \
             `new_str` after line `insert_line` (0 = at the top); `undo_edit` reverts the last \
             edit of `path`. Paths are relative to the repository root.",
            json!({
                "type": "object",
                "properties": {
                    "command": {
                        "type": "string",
                        "enum": ["view", "create", "str_replace", "insert", "undo_edit"],
                        "description": "The command to run."
                    },
                    "path": {"type": "string", "description": "File or directory, relative to the repository root."},
                    "file_text": {"type": "string", "description": "For `create`: the file's contents."},
                    "old_str": {"type": "string", "description": "For `str_replace`: the exact text to replace."},
                    "new_str": {"type": "string", "description": "For `str_replace` and `insert`: the new text."},
                    "insert_line": {"type": "integer", "description": "For `insert`: insert after this line (0 = at the top)."},
                    "view_range": {
                        "type": "array",
                        "items": {"type": "integer"},
                        "description": "For `view` of a file: [first, last] line, 1-based; last = -1 for the end."
                    }
                },
                "required": ["command", "path"]
            }),
        ),
        ToolSpec::function(
            SUBMIT,
            "Submit your changes and end the episode. The changes you made to the repository \
             are the solution.",
            json!({"type": "object", "properties": {}, "required": []}),
        ),
    ]
}

/// Limits of the tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolLimits {
    /// Time limit of one `bash` command.
    pub bash_timeout: Duration,
    /// Longest observation, in characters; longer ones are cut in the
    /// middle with a note.
    pub max_output_chars: usize,
}

impl Default for ToolLimits {
    fn default() -> Self {
        ToolLimits {
            bash_timeout: Duration::from_secs(60),
            max_output_chars: 10_000,
        }
    }
}

/// What a tool call gave back to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The text the model sees.
    pub text: String,
    /// The call was refused or failed (bad arguments, no such file, ...).
    pub error: bool,
    /// The call was `submit`: the episode ends.
    pub submit: bool,
}

impl Observation {
    fn ok(text: impl Into<String>) -> Self {
        Observation {
            text: text.into(),
            error: false,
            submit: false,
        }
    }

    fn err(text: impl Into<String>) -> Self {
        Observation {
            text: format!("error: {}", text.into()),
            error: true,
            submit: false,
        }
    }
}

/// The tools of one episode, with the editor's undo history.
#[derive(Debug, Default)]
pub struct Tools {
    limits: ToolLimits,
    history: BTreeMap<String, Vec<Option<Vec<u8>>>>,
}

impl Tools {
    /// Tools with these limits.
    pub fn new(limits: ToolLimits) -> Self {
        Tools {
            limits,
            history: BTreeMap::new(),
        }
    }

    /// Whether `name` is one of the tools.
    pub fn knows(name: &str) -> bool {
        matches!(name, BASH | EDITOR | SUBMIT)
    }

    /// Run the tool `name` with `args` (a JSON object) in `episode`.
    /// Mistakes of the caller are observations with `error` set; only a
    /// failure of the machinery (the sandbox) is an error.
    pub fn call(&mut self, episode: &mut Episode, name: &str, args: &Value) -> Result<Observation> {
        let obs = match name {
            BASH => self.bash(episode, args)?,
            EDITOR => self.editor(episode, args)?,
            SUBMIT => Observation {
                text: "Submitted: your changes to the repository are the solution.".into(),
                error: false,
                submit: true,
            },
            other => Observation::err(format!(
                "there is no tool `{other}`; the tools are {BASH}, {EDITOR} and {SUBMIT}"
            )),
        };
        Ok(Observation {
            text: truncate(&obs.text, self.limits.max_output_chars),
            ..obs
        })
    }

    fn bash(&mut self, episode: &mut Episode, args: &Value) -> Result<Observation> {
        let Some(command) = args.get("command").and_then(Value::as_str) else {
            return Ok(Observation::err("bash needs a `command` string"));
        };
        let options = RunOptions {
            timeout: Some(self.limits.bash_timeout),
            max_output: (self.limits.max_output_chars * 4).max(64 << 10),
            test_timeout: None,
            ..RunOptions::default()
        };
        let out = episode.exec_with(&CommandSpec::new("bash", ["-c", command]), &options)?;
        let mut text = out.stdout;
        if !out.stderr.is_empty() {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&out.stderr);
        }
        if out.timed_out {
            text.push_str(&format!(
                "\n[the command was killed after its time limit of {} s]",
                self.limits.bash_timeout.as_secs_f64()
            ));
        } else if let Some(code) = out.exit_code.filter(|c| *c != 0) {
            text.push_str(&format!("\n[exit code {code}]"));
        }
        if text.trim().is_empty() {
            text = "[no output]".into();
        }
        Ok(Observation::ok(text))
    }

    fn editor(&mut self, episode: &mut Episode, args: &Value) -> Result<Observation> {
        let Some(command) = args.get("command").and_then(Value::as_str) else {
            return Ok(Observation::err(format!("{EDITOR} needs a `command`")));
        };
        let Some(raw) = args.get("path").and_then(Value::as_str) else {
            return Ok(Observation::err(format!("{EDITOR} needs a `path`")));
        };
        let root = episode.workspace().root().to_path_buf();
        let path = match relative(&root, raw) {
            Ok(p) => p,
            Err(e) => return Ok(Observation::err(e)),
        };
        let current = read_text(episode, &root, &path);
        match command {
            "view" => Ok(view(&root, &path, current, args)),
            "create" => self.create(episode, &root, &path, current, args),
            "str_replace" => self.str_replace(episode, &path, current, args),
            "insert" => self.insert(episode, &path, current, args),
            "undo_edit" => self.undo_edit(episode, &root, &path),
            other => Ok(Observation::err(format!(
                "unknown command `{other}`; use view, create, str_replace, insert or undo_edit"
            ))),
        }
    }

    /// `create`: write `file_text` to `path`, which must not exist yet.
    fn create(
        &mut self,
        episode: &mut Episode,
        root: &Path,
        path: &str,
        current: Option<String>,
        args: &Value,
    ) -> Result<Observation> {
        let Some(file_text) = text_arg(args, "file_text") else {
            return Ok(Observation::err("`create` needs `file_text`"));
        };
        if current.is_some() || crate::join_rel(root, path).exists() {
            return Ok(Observation::err(format!(
                "{path} already exists; edit it with `str_replace` or `insert`"
            )));
        }
        self.write(episode, path, None, file_text)?;
        Ok(Observation::ok(format!("Created {path}.")))
    }

    /// `str_replace`: replace the one occurrence of `old_str` in `path`
    /// (the `current` text) with `new_str`; none or several are refused.
    fn str_replace(
        &mut self,
        episode: &mut Episode,
        path: &str,
        current: Option<String>,
        args: &Value,
    ) -> Result<Observation> {
        let Some(text) = current else {
            return Ok(Observation::err(format!("no such file: {path}")));
        };
        let Some(old) = text_arg(args, "old_str") else {
            return Ok(Observation::err("`str_replace` needs `old_str`"));
        };
        let new = text_arg(args, "new_str").unwrap_or("");
        let at: Vec<usize> = text.match_indices(old).map(|(i, _)| i).collect();
        match at.as_slice() {
            [] => Ok(Observation::err(format!(
                "`old_str` does not occur verbatim in {path}; nothing was changed"
            ))),
            [i] => {
                let edited = format!("{}{new}{}", &text[..*i], &text[i + old.len()..]);
                let line = text[..*i].matches('\n').count() + 1;
                self.write(episode, path, Some(text.clone()), &edited)?;
                Ok(Observation::ok(snippet(path, &edited, line, new)))
            }
            many => {
                let lines: Vec<String> = many
                    .iter()
                    .map(|i| (text[..*i].matches('\n').count() + 1).to_string())
                    .collect();
                Ok(Observation::err(format!(
                    "`old_str` occurs {} times in {path} (lines {}); include more context so it is unique",
                    many.len(),
                    lines.join(", ")
                )))
            }
        }
    }

    /// `insert`: put `new_str` after line `insert_line` of `path` (the
    /// `current` text; 0 inserts at the top).
    fn insert(
        &mut self,
        episode: &mut Episode,
        path: &str,
        current: Option<String>,
        args: &Value,
    ) -> Result<Observation> {
        let Some(text) = current else {
            return Ok(Observation::err(format!("no such file: {path}")));
        };
        let Some(new) = text_arg(args, "new_str") else {
            return Ok(Observation::err("`insert` needs `new_str`"));
        };
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let Some(after) = args
            .get("insert_line")
            .and_then(Value::as_u64)
            .map(|n| n as usize)
            .filter(|n| *n <= lines.len())
        else {
            return Ok(Observation::err(format!(
                "`insert` needs `insert_line` between 0 and {}",
                lines.len()
            )));
        };
        let mut edited: String = lines[..after].concat();
        if !edited.is_empty() && !edited.ends_with('\n') {
            edited.push('\n');
        }
        edited.push_str(new);
        if !new.ends_with('\n') {
            edited.push('\n');
        }
        edited.push_str(&lines[after..].concat());
        self.write(episode, path, Some(text.clone()), &edited)?;
        Ok(Observation::ok(snippet(path, &edited, after + 1, new)))
    }

    /// `undo_edit`: restore `path` as it was before its last edit (remove
    /// it, when that edit created it).
    fn undo_edit(&mut self, episode: &mut Episode, root: &Path, path: &str) -> Result<Observation> {
        let Some(previous) = self.history.get_mut(path).and_then(Vec::pop) else {
            return Ok(Observation::err(format!("no edit of {path} to undo")));
        };
        match previous {
            Some(bytes) => episode.workspace().write(path, &bytes)?,
            None => {
                let file = crate::join_rel(root, path);
                std::fs::remove_file(&file).map_err(|e| crate::Error::io(&file, e))?;
            }
        }
        Ok(Observation::ok(format!("Undid the last edit of {path}.")))
    }

    fn write(
        &mut self,
        episode: &mut Episode,
        path: &str,
        before: Option<String>,
        after: &str,
    ) -> Result<()> {
        episode.workspace().write(path, after.as_bytes())?;
        self.history
            .entry(path.to_string())
            .or_default()
            .push(before.map(String::into_bytes));
        Ok(())
    }
}

/// `view`: a directory's listing, or the lines of `path` (the `current`
/// text), all of them or those of `view_range`, numbered.
fn view(root: &Path, path: &str, current: Option<String>, args: &Value) -> Observation {
    let on_disk = if path.is_empty() {
        root.to_path_buf()
    } else {
        crate::join_rel(root, path)
    };
    if on_disk.is_dir() {
        return Observation::ok(list_dir(&on_disk, path));
    }
    let Some(text) = current else {
        return Observation::err(format!("no such file: {path}"));
    };
    let lines: Vec<&str> = text.lines().collect();
    let (first, last) = match args.get("view_range") {
        None | Some(Value::Null) => (1, lines.len()),
        Some(v) => match view_range(v, lines.len()) {
            Ok(r) => r,
            Err(e) => return Observation::err(e),
        },
    };
    Observation::ok(numbered(&lines, first, last))
}

/// The string argument `key` of a tool call, if given.
fn text_arg<'a>(args: &'a Value, key: &str) -> Option<&'a str> {
    args.get(key).and_then(Value::as_str)
}

/// `raw` as a path relative to the root: `./` and a leading root prefix
/// are dropped; paths leaving the workspace are refused.
fn relative(root: &Path, raw: &str) -> std::result::Result<String, String> {
    let root_str = root.to_string_lossy();
    let mut p = raw.trim();
    if let Some(rest) = p.strip_prefix(root_str.as_ref()) {
        p = rest.trim_start_matches('/');
    }
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    let p = p.trim_end_matches('/');
    if p == "." || p.is_empty() {
        return Ok(String::new());
    }
    workspace_rel(p, "path")
        .map(str::to_string)
        .map_err(|e| format!("{e}; paths are relative to the repository root"))
}

fn read_text(episode: &mut Episode, root: &Path, path: &str) -> Option<String> {
    if path.is_empty() || crate::join_rel(root, path).is_dir() {
        return None;
    }
    let bytes = episode.workspace().read(path).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

fn view_range(v: &Value, len: usize) -> std::result::Result<(usize, usize), String> {
    let bad = || {
        format!("`view_range` must be [first, last] with 1 <= first <= last <= {len} (last = -1 for the end)")
    };
    let items = v.as_array().filter(|a| a.len() == 2).ok_or_else(bad)?;
    let first = items[0].as_i64().ok_or_else(bad)?;
    let last = items[1].as_i64().ok_or_else(bad)?;
    let last = if last == -1 { len as i64 } else { last };
    if first < 1 || last < first || last as usize > len {
        return Err(bad());
    }
    Ok((first as usize, last as usize))
}

/// Lines `first..=last` (1-based) with their numbers, as `cat -n` prints.
fn numbered(lines: &[&str], first: usize, last: usize) -> String {
    let mut out = String::new();
    for (n, line) in lines
        .iter()
        .enumerate()
        .take(last)
        .skip(first.saturating_sub(1))
    {
        out.push_str(&format!("{:>6}\t{line}\n", n + 1));
    }
    if out.is_empty() {
        out.push_str("[empty file]");
    }
    out
}

/// The edited region with a few lines around it.
fn snippet(path: &str, text: &str, line: usize, new: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let first = line.saturating_sub(4).max(1);
    let last = (line + new.lines().count() + 4).min(lines.len());
    format!(
        "The file {path} has been edited. Here are lines {first}-{last} of it:\n{}Review the change and edit again if needed.",
        numbered(&lines, first, last)
    )
}

fn skip_dir(name: &str) -> bool {
    name.starts_with('.')
        || name == "__pycache__"
        || name == "node_modules"
        || name.ends_with(".egg-info")
}

/// Files and directories under `dir`, two levels deep, hidden ones left out.
fn list_dir(dir: &Path, rel: &str) -> String {
    fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            if skip_dir(&name) {
                continue;
            }
            let path = format!("{prefix}{name}");
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(format!("{path}/"));
                if depth > 1 {
                    walk(&e.path(), &format!("{path}/"), depth - 1, out);
                }
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    let prefix = if rel.is_empty() {
        String::new()
    } else {
        format!("{rel}/")
    };
    walk(dir, &prefix, 2, &mut out);
    let shown = if rel.is_empty() { "." } else { rel };
    format!(
        "Files and directories in {shown}, two levels deep (hidden ones left out):\n{}\n",
        out.join("\n")
    )
}

/// `text` cut in the middle to at most `max` characters, with a note.
pub fn truncate(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max / 2).collect();
    let tail: String = text.chars().skip(count - max / 2).collect();
    format!(
        "{head}\n[... {} characters cut: the output was too long; narrow the command (grep, head, sed -n) or view a line range ...]\n{tail}",
        count - head.chars().count() - tail.chars().count()
    )
}

/// The text files of a tree, to diff against after the agent has worked:
/// everything but hidden directories, caches, and files that are large or
/// not UTF-8.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    files: BTreeMap<String, String>,
}

const MAX_SNAPSHOT_FILE: u64 = 2 << 20;

impl Snapshot {
    /// The text files under `root`.
    pub fn take(root: &Path) -> Self {
        fn walk(dir: &Path, prefix: &str, files: &mut BTreeMap<String, String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Ok(kind) = e.file_type() else { continue };
                let rel = format!("{prefix}{name}");
                if kind.is_dir() {
                    if !skip_dir(&name) {
                        walk(&e.path(), &format!("{rel}/"), files);
                    }
                } else if kind.is_file()
                    && !name.ends_with(".pyc")
                    && e.metadata().is_ok_and(|m| m.len() <= MAX_SNAPSHOT_FILE)
                {
                    if let Ok(text) = std::fs::read_to_string(e.path()) {
                        files.insert(rel, text);
                    }
                }
            }
        }
        let mut files = BTreeMap::new();
        walk(root, "", &mut files);
        Snapshot { files }
    }

    /// The changes from this snapshot to the tree under `root` now, leaving
    /// out the paths in `exclude`.
    pub fn diff(&self, root: &Path, exclude: &BTreeSet<String>) -> Patch {
        let now = Snapshot::take(root);
        let mut changes = Vec::new();
        for (path, before) in &self.files {
            if exclude.contains(path) {
                continue;
            }
            match now.files.get(path) {
                Some(after) if after == before => {}
                Some(after) => changes.push(FileChange::modified(path, before, after)),
                None => changes.push(FileChange {
                    path: path.clone(),
                    before: Some(before.clone()),
                    after: None,
                }),
            }
        }
        for (path, after) in &now.files {
            if !self.files.contains_key(path) && !exclude.contains(path) {
                changes.push(FileChange {
                    path: path.clone(),
                    before: None,
                    after: Some(after.clone()),
                });
            }
        }
        Patch::from_changes(&changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_output_is_cut_in_the_middle_with_a_note() {
        let text: String = (0..1000).map(|i| format!("{i}\n")).collect();
        let cut = truncate(&text, 100);
        assert!(cut.starts_with("0\n1\n"));
        assert!(cut.trim_end().ends_with("999"));
        assert!(cut.contains("characters cut"));
        assert_eq!(truncate("short", 100), "short");
    }

    #[test]
    fn views_number_lines_and_ranges_are_checked() {
        let lines = ["a", "b", "c"];
        assert_eq!(numbered(&lines, 2, 3), "     2\tb\n     3\tc\n");
        assert_eq!(view_range(&json!([2, -1]), 3).unwrap(), (2, 3));
        assert!(view_range(&json!([0, 2]), 3).is_err());
        assert!(view_range(&json!([2, 9]), 3).is_err());
    }

    #[test]
    fn paths_stay_inside_the_root() {
        let root = Path::new("/w/root");
        assert_eq!(relative(root, "./pkg/a.py").unwrap(), "pkg/a.py");
        assert_eq!(relative(root, "/w/root/pkg/a.py").unwrap(), "pkg/a.py");
        assert_eq!(relative(root, ".").unwrap(), "");
        assert!(relative(root, "../etc/passwd").is_err());
        assert!(relative(root, "/etc/passwd").is_err());
    }

    #[test]
    fn snapshots_diff_modified_added_and_deleted_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.py"), "x = 1\n").unwrap();
        std::fs::write(dir.path().join("gone.py"), "y = 2\n").unwrap();
        std::fs::write(dir.path().join("hidden_test.py"), "t\n").unwrap();
        let snap = Snapshot::take(dir.path());
        std::fs::write(dir.path().join("a.py"), "x = 2\n").unwrap();
        std::fs::remove_file(dir.path().join("gone.py")).unwrap();
        std::fs::write(dir.path().join("new.py"), "z = 3\n").unwrap();
        std::fs::remove_file(dir.path().join("hidden_test.py")).unwrap();
        std::fs::create_dir(dir.path().join("__pycache__")).unwrap();
        std::fs::write(dir.path().join("__pycache__/a.txt"), "cache").unwrap();
        let exclude = BTreeSet::from(["hidden_test.py".to_string()]);
        let patch = snap.diff(dir.path(), &exclude);
        let mut paths = patch.paths().unwrap();
        paths.sort();
        assert_eq!(paths, vec!["a.py", "gone.py", "new.py"]);
        assert!(patch.as_str().contains("+x = 2"));
    }
}
