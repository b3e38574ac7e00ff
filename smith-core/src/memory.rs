//! Deterministic in-memory implementations of every plug point: for tests,
//! for examples, and as the reference behaviour other implementations are
//! checked against.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{
    CommandSpec, Completion, CompletionParams, Edit, Entity, Error, Executor, IssueContext,
    IssueWriter, LanguageModel, Message, Mutation, Mutator, Outcome, Patch, Result, RunOptions,
    RunOutput, Sandbox, SourceFile, TestId, TestReport, TestSelection, Workspace,
};

/// A mutator that replaces the first occurrence of `from` inside an entity
/// with `to`.
#[derive(Debug, Clone)]
pub struct ReplaceMutator {
    /// Strategy name.
    pub name: String,
    /// Text to look for.
    pub from: String,
    /// Replacement.
    pub to: String,
}

impl ReplaceMutator {
    /// `name`: replace `from` with `to`.
    pub fn new(name: &str, from: &str, to: &str) -> Self {
        ReplaceMutator {
            name: name.into(),
            from: from.into(),
            to: to.into(),
        }
    }
}

impl Mutator for ReplaceMutator {
    fn name(&self) -> &str {
        &self.name
    }

    fn mutate(&self, file: &SourceFile, entity: &Entity, _seed: u64) -> Vec<Mutation> {
        let body = file.slice(entity.range);
        let Some(pos) = body.find(&self.from) else {
            return Vec::new();
        };
        let start = entity.range.start + pos;
        vec![Mutation {
            file: file.path.clone(),
            edits: vec![Edit::replacement(
                self.to.clone(),
                start,
                start + self.from.len(),
            )],
            strategy: self.name.clone(),
            description: format!(
                "replace `{}` with `{}` in {}",
                self.from, self.to, entity.qualname
            ),
            entities: vec![entity.id()],
        }]
    }
}

type Files = BTreeMap<String, Vec<u8>>;
type Handler = Arc<dyn Fn(&Files, &CommandSpec) -> RunOutput + Send + Sync>;

/// A sandbox whose workspaces are maps of file contents; commands are answered
/// by a handler function that sees the current files.
#[derive(Clone)]
pub struct MemorySandbox {
    files: Files,
    handler: Handler,
}

impl std::fmt::Debug for MemorySandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySandbox")
            .field("files", &self.files.len())
            .finish()
    }
}

impl MemorySandbox {
    /// A sandbox over `files`; every command exits 0 with no output.
    pub fn new(files: impl IntoIterator<Item = (String, String)>) -> Self {
        MemorySandbox {
            files: files
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect(),
            handler: Arc::new(|_, _| RunOutput {
                exit_code: Some(0),
                ..Default::default()
            }),
        }
    }

    /// Answer commands with `handler`.
    pub fn with_handler(
        mut self,
        handler: impl Fn(&Files, &CommandSpec) -> RunOutput + Send + Sync + 'static,
    ) -> Self {
        self.handler = Arc::new(handler);
        self
    }
}

impl Sandbox for MemorySandbox {
    fn name(&self) -> &str {
        "memory"
    }

    fn workspace(&self) -> Result<Box<dyn Workspace>> {
        Ok(Box::new(MemoryWorkspace {
            clean: self.files.clone(),
            files: self.files.clone(),
            handler: self.handler.clone(),
            root: PathBuf::from("/memory"),
        }))
    }
}

/// A workspace of [`MemorySandbox`].
pub struct MemoryWorkspace {
    clean: Files,
    files: Files,
    handler: Handler,
    root: PathBuf,
}

impl std::fmt::Debug for MemoryWorkspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryWorkspace")
            .field("files", &self.files.len())
            .finish()
    }
}

impl Workspace for MemoryWorkspace {
    fn root(&self) -> &Path {
        &self.root
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.files.get(path).cloned().ok_or_else(|| {
            Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            )
        })
    }

    fn write(&mut self, path: &str, contents: &[u8]) -> Result<()> {
        crate::workspace_rel(path, "workspace path")?;
        self.files.insert(path.to_string(), contents.to_vec());
        Ok(())
    }

    fn apply(&mut self, patch: &Patch) -> Result<()> {
        // Apply all files first, then commit, so a failing hunk leaves the tree as it was.
        let mut staged = Vec::new();
        for fp in patch.files()? {
            crate::workspace_rel(fp.path(), "patch path")?;
            let old = match self.files.get(fp.path()) {
                Some(bytes) => {
                    Some(
                        String::from_utf8(bytes.clone()).map_err(|_| Error::PatchApply {
                            path: fp.path().into(),
                            reason: "file is not UTF-8".into(),
                        })?,
                    )
                }
                None => None,
            };
            staged.push((fp.path().to_string(), fp.apply(old.as_deref())?));
        }
        for (path, new) in staged {
            match new {
                Some(text) => self.files.insert(path, text.into_bytes()),
                None => self.files.remove(&path),
            };
        }
        Ok(())
    }

    fn reset(&mut self) -> Result<()> {
        self.files = self.clean.clone();
        Ok(())
    }

    fn run(&mut self, command: &CommandSpec, _options: &RunOptions) -> Result<RunOutput> {
        Ok((self.handler)(&self.files, command))
    }
}

/// An executor over a fixed set of tests, each of which passes exactly when
/// a file contains a given text. Enough to exercise validation end to end
/// without Python.
#[derive(Debug, Clone, Default)]
pub struct ScriptedExecutor {
    tests: Vec<(TestId, String, String)>,
}

impl ScriptedExecutor {
    /// No tests yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Test `id` passes iff `file` contains `needle`.
    pub fn test(mut self, id: &str, file: &str, needle: &str) -> Self {
        self.tests
            .push((TestId::from(id), file.into(), needle.into()));
        self
    }
}

impl Executor for ScriptedExecutor {
    fn run_tests(
        &self,
        workspace: &mut dyn Workspace,
        selection: &TestSelection,
        _options: &RunOptions,
    ) -> Result<TestReport> {
        let mut report = TestReport {
            exit_code: Some(0),
            ..Default::default()
        };
        for (id, file, needle) in &self.tests {
            if let Some(ids) = selection.ids() {
                if !ids.contains(id) {
                    continue;
                }
            }
            let text = workspace.read(file).unwrap_or_default();
            let passes = String::from_utf8_lossy(&text).contains(needle.as_str());
            let outcome = if passes {
                Outcome::Passed
            } else {
                Outcome::Failed
            };
            if !passes {
                report.exit_code = Some(1);
            }
            report.outcomes.insert(id.clone(), outcome);
            report.durations.insert(id.clone(), 0.001);
        }
        report.wall_secs = Duration::from_millis(1).as_secs_f64();
        Ok(report)
    }
}

/// An issue writer that lists the failing tests. Deterministic.
#[derive(Debug, Clone, Default)]
pub struct ListingIssueWriter;

impl IssueWriter for ListingIssueWriter {
    fn name(&self) -> &str {
        "listing"
    }

    fn write(&self, context: &IssueContext) -> Result<String> {
        let names: Vec<&str> = context.failing.iter().map(|t| t.id.as_str()).collect();
        Ok(format!("These tests fail: {}", names.join(", ")))
    }
}

/// A language model that plays back scripted replies in order and records
/// every request it was sent.
#[derive(Debug, Default)]
pub struct ScriptedModel {
    replies: Mutex<VecDeque<String>>,
    requests: Mutex<Vec<Vec<Message>>>,
}

impl ScriptedModel {
    /// A model that will answer with `replies`, one per request.
    pub fn new<I, S>(replies: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ScriptedModel {
            replies: Mutex::new(replies.into_iter().map(Into::into).collect()),
            requests: Mutex::new(Vec::new()),
        }
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Vec<Message>> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl LanguageModel for ScriptedModel {
    fn model(&self) -> &str {
        "scripted"
    }

    fn complete(&self, messages: &[Message], _params: &CompletionParams) -> Result<Completion> {
        if let Ok(mut r) = self.requests.lock() {
            r.push(messages.to_vec());
        }
        let text = self
            .replies
            .lock()
            .ok()
            .and_then(|mut r| r.pop_front())
            .ok_or_else(|| Error::language_model("scripted", "no scripted reply left"))?;
        Ok(Completion {
            text,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ByteRange, EntityFlags, EntityKind, FileChange};

    fn entity(file: &str, text: &str) -> Entity {
        Entity {
            file: file.into(),
            qualname: "f".into(),
            kind: EntityKind::Function,
            range: ByteRange::new(0, text.len()),
            lines: (1, 2),
            complexity: 1,
            flags: EntityFlags::default(),
        }
    }

    #[test]
    fn scripted_executor_sees_applied_patches_and_reset() {
        let src = "def f(a, b):\n    return a + b\n";
        let sandbox = MemorySandbox::new([("m.py".to_string(), src.to_string())]);
        let exec = ScriptedExecutor::new().test("t::add", "m.py", "a + b");
        let mut ws = sandbox.workspace().unwrap();
        let before = exec
            .run_tests(&mut ws, &TestSelection::All, &RunOptions::default())
            .unwrap();
        assert_eq!(before.outcomes[&TestId::from("t::add")], Outcome::Passed);

        let m = &ReplaceMutator::new("op", "+", "-").mutate(
            &SourceFile::new("m.py", src),
            &entity("m.py", src),
            0,
        )[0];
        let after = m.apply(src).unwrap();
        ws.apply(&Patch::from_changes(&[FileChange::modified(
            "m.py", src, &after,
        )]))
        .unwrap();
        let broken = exec
            .run_tests(&mut ws, &TestSelection::All, &RunOptions::default())
            .unwrap();
        assert_eq!(broken.outcomes[&TestId::from("t::add")], Outcome::Failed);

        ws.reset().unwrap();
        assert_eq!(ws.read("m.py").unwrap(), src.as_bytes());
    }

    #[test]
    fn scripted_model_replays_and_records() {
        let m = ScriptedModel::new(["one"]);
        let lm: &dyn LanguageModel = &m;
        assert_eq!(
            lm.complete(&[Message::user("hi")], &CompletionParams::default())
                .unwrap()
                .text,
            "one"
        );
        assert!(lm
            .complete(&[Message::user("again")], &CompletionParams::default())
            .is_err());
        assert_eq!(m.requests().len(), 2);
    }
}
