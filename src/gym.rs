//! An RL episode API over task instances: reset to the buggy tree, let an
//! agent act, grade with the task's own FAIL_TO_PASS and PASS_TO_PASS tests.
//!
//! Workspaces are expensive to make (a copy of the repository) and cheap to
//! reset (only touched files are restored), so a [`Task`] keeps a pool of
//! them and episodes borrow one.
//!
//! Grading on a workspace taken back from the pool goes through the
//! executor's fork servers (for the pytest executor: a server that has
//! collected the task's test files on the buggy tree and forks a child per
//! grade, swapping in the function bodies a patch changes), prepared on the
//! buggy tree right after reset and kept with the workspace across
//! episodes. The servers' parents never run a patch's code, so nothing of
//! one episode reaches the next. A fresh interpreter grades instead where
//! a server could not see the tree exactly as a fresh run would: the
//! workspace's first episode (so that a workspace used once costs no
//! server start), a workspace an arbitrary command ran in, a patch that
//! adds, deletes or renames files or touches anything but existing `.py`
//! files, and [`Episode::grade_current`]. The executor itself falls back
//! further (a change the collected server cannot swap in goes to a plain
//! server, a lost server to a fresh interpreter).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::{
    CommandSpec, Error, Executor, FileChange, Outcome, Patch, Result, RunOptions, RunOutput,
    Sandbox, TaskInstance, TestId, TestReport, TestSelection, Workspace,
};

/// Which of a group of tests passed and which did not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResults {
    /// Tests that passed.
    pub passed: Vec<TestId>,
    /// Tests that failed, errored or did not run.
    pub failed: Vec<TestId>,
}

/// The result of grading one attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grade {
    /// Every FAIL_TO_PASS and every PASS_TO_PASS test passes.
    pub resolved: bool,
    /// Whether the model's patch applied (an unappliable patch is unresolved).
    pub applied: bool,
    /// The task's FAIL_TO_PASS tests.
    pub fail_to_pass: TestResults,
    /// The task's PASS_TO_PASS tests.
    pub pass_to_pass: TestResults,
}

impl Grade {
    /// 1.0 when resolved, else 0.0: the usual sparse reward.
    pub fn reward(&self) -> f64 {
        if self.resolved {
            1.0
        } else {
            0.0
        }
    }
}

/// Grade a run's outcomes against an instance's lists (pure), with
/// SWE-bench's rules (see [`crate::grade::TestsStatus::score`]).
pub fn grade_report(instance: &TaskInstance, outcomes: &BTreeMap<TestId, Outcome>) -> Grade {
    let status = crate::grade::TestsStatus::score(instance, outcomes);
    Grade {
        resolved: status.resolved(),
        applied: true,
        fail_to_pass: TestResults {
            passed: status.fail_to_pass.success,
            failed: status.fail_to_pass.failure,
        },
        pass_to_pass: TestResults {
            passed: status.pass_to_pass.success,
            failed: status.pass_to_pass.failure,
        },
    }
}

impl Drop for TaskShared {
    fn drop(&mut self) {
        // The executor may outlive the task: stop the servers of its
        // workspaces with them.
        if let Ok(pool) = self.pool.get_mut() {
            for ws in pool.iter() {
                self.executor.release(&**ws);
            }
        }
    }
}

/// One task, ready to run episodes. Cloning is cheap: clones share the
/// instance, the environment and the pool of workspaces, so a worker pool or
/// a long-lived environment object can hold its own handle.
#[derive(Debug, Clone)]
pub struct Task {
    shared: Arc<TaskShared>,
    options: RunOptions,
}

#[derive(Debug)]
struct TaskShared {
    instance: TaskInstance,
    bug: Patch,
    sandbox: Arc<dyn Sandbox>,
    executor: Arc<dyn Executor>,
    pool: Mutex<Vec<Box<dyn Workspace>>>,
    /// The buggy tree, untouched, that [`Episode::diff`] compares against.
    reference: OnceLock<Mutex<Box<dyn Workspace>>>,
}

impl Task {
    /// A task from an instance and the environment of its repository.
    pub fn from_instance(
        instance: TaskInstance,
        sandbox: Arc<dyn Sandbox>,
        executor: Arc<dyn Executor>,
    ) -> Self {
        let bug = Patch::from_text(instance.patch.clone());
        Task {
            shared: Arc::new(TaskShared {
                instance,
                bug,
                sandbox,
                executor,
                pool: Mutex::new(Vec::new()),
                reference: OnceLock::new(),
            }),
            options: RunOptions::default(),
        }
    }

    /// Limits for commands and test runs.
    pub fn with_run_options(mut self, options: RunOptions) -> Self {
        self.options = options;
        self
    }

    /// The instance.
    pub fn instance(&self) -> &TaskInstance {
        &self.shared.instance
    }

    /// The limits commands and test runs get.
    pub fn run_options(&self) -> &RunOptions {
        &self.options
    }

    /// Start an episode: a workspace with the bug applied. The episode holds
    /// its own handle on the task, so it can outlive this borrow.
    pub fn episode(&self) -> Result<Episode> {
        let pooled = self.shared.pool.lock().ok().and_then(|mut p| p.pop());
        let reused = pooled.is_some();
        let workspace = match pooled {
            Some(ws) => ws,
            None => self.shared.sandbox.workspace()?,
        };
        let mut episode = Episode {
            task: self.clone(),
            workspace: Some(workspace),
            dirty: false,
            reused,
            pristine: false,
        };
        episode.reset()?;
        Ok(episode)
    }

    /// Grade a patch against the buggy tree in a fresh episode.
    pub fn grade(&self, model_patch: &Patch) -> Result<Grade> {
        self.episode()?.grade(model_patch)
    }
}

/// One attempt at a task. Dropping it returns its workspace to the task's
/// pool, unless commands may have changed files reset cannot restore.
#[derive(Debug)]
pub struct Episode {
    task: Task,
    workspace: Option<Box<dyn Workspace>>,
    dirty: bool,
    /// The workspace came back from the pool (it served an earlier
    /// episode without an arbitrary command): worth fork servers.
    reused: bool,
    /// Nothing touched the workspace since the last reset (no borrow of
    /// it, no command, no test run): it holds the buggy tree.
    pristine: bool,
}

impl Episode {
    /// The task this episode attempts.
    pub fn task(&self) -> &Task {
        &self.task
    }

    fn ws(&mut self) -> &mut dyn Workspace {
        self.workspace
            .as_deref_mut()
            .expect("an episode always holds a workspace until dropped")
    }

    /// Back to the buggy tree.
    pub fn reset(&mut self) -> Result<()> {
        self.pristine = false;
        if self.dirty {
            // Commands may have written anywhere; start from a new copy.
            self.workspace = Some(self.task.shared.sandbox.workspace()?);
            self.dirty = false;
            self.reused = false;
        }
        let bug = self.task.shared.bug.clone();
        let ws = self.ws();
        ws.reset()?;
        ws.apply(&bug)?;
        self.pristine = true;
        Ok(())
    }

    /// The workspace, for reading and writing files.
    pub fn workspace(&mut self) -> &mut dyn Workspace {
        self.pristine = false;
        self.ws()
    }

    /// Run a command in the workspace, within the task's limits.
    pub fn exec(&mut self, command: &CommandSpec) -> Result<RunOutput> {
        self.make_dirty();
        let options = self.task.options.clone();
        self.ws().run(command, &options)
    }

    /// An arbitrary command is about to run: the workspace leaves the pool
    /// for good, and its helpers (fork servers) stop before the command can
    /// reach them.
    fn make_dirty(&mut self) {
        self.pristine = false;
        if !self.dirty {
            let executor = self.task.shared.executor.clone();
            executor.release(self.ws());
            self.dirty = true;
        }
    }

    /// Run a command in the workspace with limits of its own (an agent's
    /// shell command gets a shorter time limit than a test run).
    pub fn exec_with(&mut self, command: &CommandSpec, options: &RunOptions) -> Result<RunOutput> {
        self.make_dirty();
        self.ws().run(command, options)
    }

    /// The episode's changes to the buggy tree as a patch (what an agent
    /// submits): every text file of the workspace compared with an
    /// untouched copy of the buggy tree, skipping version control, caches,
    /// bytecode and smith's own `.smith/` files. Binary files are left out.
    pub fn diff(&mut self) -> Result<Patch> {
        let task = self.task.clone();
        let shared = &task.shared;
        let reference = match shared.reference.get() {
            Some(r) => r,
            None => {
                let mut ws = shared.sandbox.workspace()?;
                ws.apply(&shared.bug)?;
                // Another thread may have made one meanwhile; either will do.
                let _ = shared.reference.set(Mutex::new(ws));
                shared.reference.get().expect("the reference was just set")
            }
        };
        let reference = reference
            .lock()
            .map_err(|_| Error::invalid("episode diff", "the reference tree's lock is poisoned"))?;
        let (old, new) = (reference.root(), self.ws().root().to_path_buf());
        let mut files = BTreeSet::new();
        list_files(old, "", &mut files)?;
        list_files(&new, "", &mut files)?;
        let mut changes = Vec::new();
        for rel in &files {
            let before = read_text(old, rel);
            let after = read_text(&new, rel);
            if before != after {
                changes.push(FileChange {
                    path: rel.clone(),
                    before,
                    after,
                });
            }
        }
        Ok(Patch::from_changes(&changes))
    }

    /// Run the task's tests on the workspace as it is now, in a fresh
    /// interpreter (the tree may hold anything).
    pub fn grade_current(&mut self) -> Result<Grade> {
        let report = self.run_task_tests(false)?;
        Ok(grade_report(&self.task.shared.instance, &report.outcomes))
    }

    /// The task's FAIL_TO_PASS and PASS_TO_PASS tests.
    fn selection(&self) -> TestSelection {
        let inst = &self.task.shared.instance;
        TestSelection::Only(
            inst.fail_to_pass
                .iter()
                .chain(&inst.pass_to_pass)
                .cloned()
                .collect(),
        )
    }

    /// Run the task's tests: through the executor as it is when `forked`
    /// (its servers were prepared on this workspace's buggy tree), else
    /// through its fresh-interpreter twin.
    fn run_task_tests(&mut self, forked: bool) -> Result<TestReport> {
        let shared = self.task.shared.clone();
        let fresh = if forked {
            None
        } else {
            shared.executor.fresh()
        };
        let executor: &dyn Executor = match &fresh {
            Some(fresh) => &**fresh,
            None => &*shared.executor,
        };
        let selection = self.selection();
        let options = self.task.options.clone();
        self.pristine = false;
        executor.run_tests(self.ws(), &selection, &options)
    }

    /// Reset to the buggy tree, apply `model_patch`, run the task's tests.
    /// A patch that does not apply grades as unresolved with every test failed.
    pub fn grade(&mut self, model_patch: &Patch) -> Result<Grade> {
        Ok(self.grade_with_report(model_patch)?.0)
    }

    /// [`grade`](Episode::grade), with the test run's report (`None` when
    /// the patch did not apply) and why the patch did not apply.
    pub fn grade_with_report(
        &mut self,
        model_patch: &Patch,
    ) -> Result<(Grade, Option<TestReport>, Option<String>)> {
        // A new episode holds the buggy tree already.
        if !self.pristine {
            self.reset()?;
        }
        self.pristine = false;
        let forked = self.reused && !self.dirty && servable(model_patch);
        if forked {
            // The buggy tree, exactly as reset left it: the one state the
            // servers may start from (and compare later runs with).
            let shared = self.task.shared.clone();
            let selection = self.selection();
            shared.executor.prepare_for(self.ws(), &selection)?;
        }
        if !model_patch.is_empty() {
            if let Err(e) = self.ws().apply(model_patch) {
                let mut g = grade_report(&self.task.shared.instance, &BTreeMap::new());
                g.applied = false;
                return Ok((g, None, Some(e.to_string())));
            }
        }
        let report = self.run_task_tests(forked)?;
        let grade = grade_report(&self.task.shared.instance, &report.outcomes);
        Ok((grade, Some(report), None))
    }
}

/// Whether a fork server may grade `patch`: it only changes existing
/// Python files in place (a server compares those with what it holds and
/// swaps in or hands back; an added, deleted or renamed file, or a data file
/// read at import, it would not see).
fn servable(patch: &Patch) -> bool {
    if patch.is_empty() {
        return true;
    }
    let Ok(files) = patch.files() else {
        return false;
    };
    files
        .iter()
        .all(|f| f.old_path.is_some() && f.old_path == f.new_path && f.path().ends_with(".py"))
}

/// Directories a diff of a workspace never looks into.
fn skipped_dir(name: &str) -> bool {
    name == ".smith" || crate::env::tree::EXCLUDED_DIRS.contains(&name)
}

/// Every regular file under `root/rel`, by `/`-separated relative path.
fn list_files(root: &Path, rel: &str, out: &mut BTreeSet<String>) -> Result<()> {
    let dir = root.join(rel);
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let kind = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
        if kind.is_dir() {
            if !skipped_dir(&name) {
                list_files(root, &path, out)?;
            }
        } else if kind.is_file() && !name.ends_with(".pyc") {
            out.insert(path);
        }
    }
    Ok(())
}

/// A file's text; `None` when it is missing or not UTF-8.
fn read_text(root: &Path, rel: &str) -> Option<String> {
    String::from_utf8(std::fs::read(root.join(rel)).ok()?).ok()
}

impl Drop for Episode {
    fn drop(&mut self) {
        if self.dirty {
            // Released when it became dirty; dropped with this episode.
            return;
        }
        if let (Some(ws), Ok(mut pool)) = (self.workspace.take(), self.task.shared.pool.lock()) {
            pool.push(ws);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemorySandbox, ScriptedExecutor};
    use crate::{Candidate, FileChange};

    fn task() -> Task {
        let clean = "def add(a, b):\n    return a + b\n";
        let buggy = "def add(a, b):\n    return a - b\n";
        let patch = Patch::from_changes(&[FileChange::modified("m.py", clean, buggy)]);
        let c = Candidate::new(
            &smith_core::RepoRef::new("o/r", "abc"),
            "func_pm_op_change",
            vec!["m.py::add".into()],
            "",
            patch,
        );
        let inst = TaskInstance::new(
            &c,
            vec!["t::add".into()],
            vec!["t::other".into()],
            "add is wrong".into(),
            "img".into(),
            "2026-01-01T00:00:00Z".into(),
        );
        let sandbox = MemorySandbox::new([("m.py".to_string(), clean.to_string())]);
        let exec = ScriptedExecutor::new()
            .test("t::add", "m.py", "a + b")
            .test("t::other", "m.py", "def add");
        Task::from_instance(inst, Arc::new(sandbox), Arc::new(exec))
    }

    #[test]
    fn gold_fix_resolves_and_empty_patch_does_not() {
        let t = task();
        let gold = Patch::from_text(t.instance().patch.clone()).reverse();
        let g = t.grade(&gold).unwrap();
        assert!(g.resolved, "{g:?}");
        assert_eq!(g.reward(), 1.0);
        let g = t.grade(&Patch::from_text("")).unwrap();
        assert!(!g.resolved);
        assert_eq!(g.fail_to_pass.failed, vec![TestId::from("t::add")]);
        assert_eq!(g.pass_to_pass.passed, vec![TestId::from("t::other")]);
    }

    #[test]
    fn an_unappliable_patch_is_unresolved() {
        let t = task();
        let junk = Patch::from_changes(&[FileChange::modified("m.py", "nothing like it\n", "x\n")]);
        let g = t.grade(&junk).unwrap();
        assert!(!g.applied && !g.resolved);
    }

    #[test]
    fn episodes_reuse_workspaces() {
        let t = task();
        for _ in 0..3 {
            let mut e = t.episode().unwrap();
            let text = String::from_utf8(e.workspace().read("m.py").unwrap()).unwrap();
            assert!(text.contains("a - b"), "the bug is applied on reset");
        }
        assert_eq!(t.shared.pool.lock().unwrap().len(), 1);
    }

    #[test]
    fn episodes_outlive_their_task_handle_and_move_across_threads() {
        let mut episode = task().episode().unwrap();
        let gold = Patch::from_text(episode.task().instance().patch.clone()).reverse();
        let handle = std::thread::spawn(move || episode.grade(&gold).unwrap());
        assert!(handle.join().unwrap().resolved);
    }
}
