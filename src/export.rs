//! Export task instances as a git mirror in SWE-smith's layout, for tools
//! that expect it.
//!
//! The mirror's `main` is the clean tree at the instances' base commit. Each
//! instance is a branch named by its `instance_id`, two commits above `main`:
//! first the bug, then the removal of every test file holding one of its
//! FAIL_TO_PASS tests, so an agent checking out the branch cannot read the
//! tests that judge it. `git checkout HEAD~1 -- .` (or checking out
//! `<branch>~1`) brings the tests back for evaluation.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use smith_core::{Error, Result, TaskInstance};

use crate::repo::{git, RepoInfo};

/// Commit message of each branch's first commit.
pub const BUG_COMMIT_MESSAGE: &str = "Bug Patch";
/// Commit message of each branch's second commit.
pub const REMOVE_TESTS_COMMIT_MESSAGE: &str = "Remove F2P Tests";

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportSummary {
    /// The mirror repository.
    pub dir: PathBuf,
    /// Branches written, one per instance.
    pub branches: Vec<String>,
    /// Instances not exported, with the reason (their patch did not apply,
    /// or their base commit is not the mirror's).
    pub skipped: Vec<(String, String)>,
}

/// The git config key in which a mirror records the commit smith last set
/// its `main` to: a `main` anywhere else is someone's work.
const MAIN_KEY: &str = "smith.main";

/// Make (or update) the mirror at `dest` from the clean repository `repo`
/// and write one branch per instance. A branch that exists is rewritten.
///
/// `dest` may be relative (to the current directory). An existing
/// directory must be empty or a mirror this function wrote: a git
/// repository with uncommitted changes or untracked files, or whose `main`
/// is not where smith last put it (someone committed on it), is refused
/// and left untouched.
pub fn export_git(
    repo: &RepoInfo,
    instances: &[TaskInstance],
    dest: &Path,
) -> Result<ExportSummary> {
    let dest = std::path::absolute(dest).map_err(|e| Error::io(dest, e))?;
    let dest = dest.as_path();
    if dest.join(".git").exists() {
        check_mirror(dest)?;
    } else {
        if dest.exists()
            && std::fs::read_dir(dest)
                .map_err(|e| Error::io(dest, e))?
                .next()
                .is_some()
        {
            return Err(Error::invalid(
                dest.display().to_string(),
                "exists and is not an empty directory or a git repository",
            ));
        }
        let parent = dest.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let existed = dest.exists();
        let src = repo.root.display().to_string();
        let to = dest.display().to_string();
        let cloned = git(parent, &["clone", "-q", "--no-hardlinks", &src, &to])
            .and_then(|_| git(dest, &["remote", "remove", "origin"]));
        if let Err(e) = cloned {
            // No half-made mirror is left behind.
            let _ = if existed {
                clear_dir(dest)
            } else {
                std::fs::remove_dir_all(dest)
            };
            return Err(e);
        }
    }
    git(
        dest,
        &["checkout", "-q", "-f", "-B", "main", &repo.base_commit],
    )?;
    git(dest, &["config", MAIN_KEY, &repo.base_commit])?;
    let mut summary = ExportSummary {
        dir: dest.to_path_buf(),
        ..Default::default()
    };
    let patch_file = tempfile::NamedTempFile::new().map_err(|e| Error::io(dest, e))?;
    for inst in instances {
        if inst.base_commit != repo.base_commit {
            summary.skipped.push((
                inst.instance_id.clone(),
                format!(
                    "base commit {} is not {}",
                    inst.base_commit, repo.base_commit
                ),
            ));
            continue;
        }
        match write_branch(dest, inst, patch_file.path()) {
            Ok(()) => summary.branches.push(inst.instance_id.clone()),
            Err(e) => {
                summary
                    .skipped
                    .push((inst.instance_id.clone(), e.to_string()));
                git(dest, &["reset", "-q", "--hard"])?;
            }
        }
        git(dest, &["checkout", "-q", "-f", "main"])?;
    }
    Ok(summary)
}

/// An existing mirror may be updated only when nothing in it would be lost.
fn check_mirror(dest: &Path) -> Result<()> {
    let refuse = |reason: String| Err(Error::invalid(dest.display().to_string(), reason));
    let status = git(dest, &["status", "--porcelain"])?;
    if !status.is_empty() {
        return refuse(format!(
            "has uncommitted changes or untracked files; commit or remove them, or export into another directory:\n{status}"
        ));
    }
    let Ok(ours) = git(dest, &["config", "--get", MAIN_KEY]) else {
        return refuse(
            "is a git repository smith did not write; export into an empty or new directory".into(),
        );
    };
    match git(dest, &["rev-parse", "--verify", "-q", "refs/heads/main"]) {
        Ok(main) if main != ours => refuse(format!(
            "its main is at {main}, not where smith left it ({ours}): someone committed on it; move that work to another branch, or export into another directory"
        )),
        _ => Ok(()),
    }
}

/// Remove everything inside `dir`, keeping `dir`.
fn clear_dir(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

fn write_branch(dest: &Path, inst: &TaskInstance, patch_file: &Path) -> Result<()> {
    let id = inst.instance_id.as_str();
    git(dest, &["check-ref-format", "--branch", id])?;
    git(dest, &["checkout", "-q", "-f", "-B", id, "main"])?;
    let mut patch = inst.patch.clone();
    if !patch.ends_with('\n') {
        patch.push('\n');
    }
    std::fs::write(patch_file, patch).map_err(|e| Error::io(patch_file, e))?;
    git(
        dest,
        &["apply", "--index", &patch_file.display().to_string()],
    )?;
    git(
        dest,
        &["commit", "-q", "--allow-empty", "-m", BUG_COMMIT_MESSAGE],
    )?;
    let mut files: Vec<&str> = inst.fail_to_pass.iter().map(|t| t.file()).collect();
    files.sort_unstable();
    files.dedup();
    let present: Vec<&str> = files
        .into_iter()
        .filter(|f| dest.join(f).is_file())
        .collect();
    if !present.is_empty() {
        let mut args = vec!["rm", "-q", "--"];
        args.extend(present);
        git(dest, &args)?;
    }
    git(
        dest,
        &[
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            REMOVE_TESTS_COMMIT_MESSAGE,
        ],
    )?;
    Ok(())
}
