//! The local sandbox: each workspace is a temporary copy of the repository,
//! commands run directly on the host with the environment's venv. No
//! isolation: use it for trusted code or inside a container.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use smith_core::{
    CommandSpec, Error, Patch, Result, RunOptions, RunOutput, Sandbox, Service, Workspace,
};

use crate::build::Environment;
use crate::process::{run_command_limited, spawn_service, DEFAULT_MEMORY_LIMIT};
use crate::tree::{copy_tree, Tree};

/// Makes temp-copy workspaces of an [`Environment`]'s repository.
#[derive(Debug, Clone)]
pub struct LocalSandbox {
    env: Environment,
    scratch: Option<PathBuf>,
    memory_limit: Option<u64>,
}

impl LocalSandbox {
    /// A sandbox over `env`'s repository; workspaces go in the system temp dir.
    pub fn new(env: &Environment) -> Result<Self> {
        if !env.repo.is_dir() {
            return Err(Error::Repo {
                path: env.repo.clone(),
                reason: "repository directory is missing".into(),
            });
        }
        Ok(LocalSandbox {
            env: env.clone(),
            scratch: None,
            memory_limit: Some(DEFAULT_MEMORY_LIMIT),
        })
    }

    /// Put workspaces under `dir` instead of the system temp dir.
    pub fn with_scratch_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.scratch = Some(dir.into());
        self
    }

    /// Cap each command's address space at `bytes` (`None`: no cap). The
    /// default is [`DEFAULT_MEMORY_LIMIT`].
    pub fn with_memory_limit(mut self, bytes: Option<u64>) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// The environment workspaces run in.
    pub fn environment(&self) -> &Environment {
        &self.env
    }
}

/// Copy the repository into a new temporary directory.
pub(crate) fn new_copy(
    repo: &Path,
    scratch: Option<&Path>,
    prefix: &str,
) -> Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    let dir = match scratch {
        Some(s) => {
            std::fs::create_dir_all(s).map_err(|e| Error::io(s, e))?;
            builder.tempdir_in(s)
        }
        None => builder.tempdir(),
    }
    .map_err(|e| Error::io(scratch.unwrap_or(&std::env::temp_dir()), e))?;
    copy_tree(repo, dir.path())?;
    Ok(dir)
}

impl Sandbox for LocalSandbox {
    fn name(&self) -> &str {
        "local"
    }

    fn workspace(&self) -> Result<Box<dyn Workspace>> {
        let dir = new_copy(&self.env.repo, self.scratch.as_deref(), "smith-ws-")?;
        let tree = Tree::new(dir.path().to_path_buf());
        let base_env = self.env.command_env(dir.path());
        Ok(Box::new(LocalWorkspace {
            _dir: dir,
            tree,
            base_env,
            memory_limit: self.memory_limit,
        }))
    }
}

/// A workspace of [`LocalSandbox`]: a temp directory removed on drop.
#[derive(Debug)]
pub struct LocalWorkspace {
    _dir: tempfile::TempDir,
    tree: Tree,
    base_env: BTreeMap<String, String>,
    memory_limit: Option<u64>,
}

/// Build the host command for `command` in `root` with `base_env`, so that
/// the local and bubblewrap sandboxes agree on semantics.
pub(crate) fn host_command(
    root: &Path,
    base_env: &BTreeMap<String, String>,
    command: &CommandSpec,
) -> Result<Command> {
    let cwd = match &command.cwd {
        Some(rel) => {
            let rel = crate::tree::inside_workspace(rel, "cwd")?;
            smith_core::join_rel(root, rel)
        }
        None => root.to_path_buf(),
    };
    let mut cmd = Command::new(&command.program);
    cmd.args(&command.args)
        .current_dir(cwd)
        .env_remove("PYTHONHOME")
        .envs(merged_env(base_env, &command.env));
    Ok(cmd)
}

/// The environment of one command: the workspace's, overridden by the
/// command's, except `PYTHONPATH`, where the command's entries go first and
/// the workspace's follow. The workspace's entries point imports at its own
/// copy of the code; dropping them would silently test the original tree.
pub(crate) fn merged_env(
    base_env: &BTreeMap<String, String>,
    command_env: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env = base_env.clone();
    for (k, v) in command_env {
        let value = match (k.as_str(), base_env.get(k)) {
            ("PYTHONPATH", Some(base)) if !base.is_empty() && !v.is_empty() => {
                format!("{v}:{base}")
            }
            _ => v.clone(),
        };
        env.insert(k.clone(), value);
    }
    env
}

impl Workspace for LocalWorkspace {
    fn root(&self) -> &Path {
        self.tree.root()
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.tree.read(path)
    }

    fn write(&mut self, path: &str, contents: &[u8]) -> Result<()> {
        self.tree.write(path, contents)
    }

    fn apply(&mut self, patch: &Patch) -> Result<()> {
        self.tree.apply(patch)
    }

    fn reset(&mut self) -> Result<()> {
        self.tree.reset()
    }

    fn run(&mut self, command: &CommandSpec, options: &RunOptions) -> Result<RunOutput> {
        let cmd = host_command(self.tree.root(), &self.base_env, command)?;
        run_command_limited(cmd, &command.display(), options, self.memory_limit)
    }

    fn spawn(&mut self, command: &CommandSpec) -> Result<Box<dyn Service>> {
        let cmd = host_command(self.tree.root(), &self.base_env, command)?;
        let service = spawn_service(cmd, &command.display(), self.memory_limit)?;
        Ok(Box::new(service))
    }
}

#[cfg(test)]
mod merge_tests {
    use super::*;

    #[test]
    fn command_pythonpath_goes_before_the_workspace_one() {
        let base = BTreeMap::from([
            ("PYTHONPATH".to_string(), "/ws/src".to_string()),
            ("A".to_string(), "1".to_string()),
        ]);
        let cmd = BTreeMap::from([
            ("PYTHONPATH".to_string(), ".smith".to_string()),
            ("A".to_string(), "2".to_string()),
        ]);
        let env = merged_env(&base, &cmd);
        assert_eq!(env["PYTHONPATH"], ".smith:/ws/src");
        assert_eq!(env["A"], "2");
    }
}
