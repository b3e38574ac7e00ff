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

/// Make (or update) the mirror at `dest` from the clean repository `repo`
/// and write one branch per instance. A branch that exists is rewritten.
pub fn export_git(
    repo: &RepoInfo,
    instances: &[TaskInstance],
    dest: &Path,
) -> Result<ExportSummary> {
    if !dest.join(".git").exists() {
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
        let parent = dest.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let src = repo.root.display().to_string();
        let to = dest.display().to_string();
        git(parent, &["clone", "-q", "--no-hardlinks", &src, &to])?;
        git(dest, &["remote", "remove", "origin"])?;
    }
    git(
        dest,
        &["checkout", "-q", "-f", "-B", "main", &repo.base_commit],
    )?;
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
