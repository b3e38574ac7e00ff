//! Opening a repository: checking it is a Python project and pinning the
//! clean tree to a commit that every task refers to.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, Result};

/// The repository a run works on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RepoInfo {
    /// Root of the clean tree smith works from.
    pub root: PathBuf,
    /// `owner/name`.
    pub name: String,
    /// Commit of the clean tree.
    pub base_commit: String,
    /// Whether `root` is a snapshot smith made (the input was not a clean git repository).
    pub snapshot: bool,
}

const SKIP_DIRS: &[&str] = &[
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".tox",
    ".nox",
    "build",
    "dist",
    "node_modules",
    ".eggs",
];

/// Run `git -C dir args...` with a fixed identity and dates (so commits are
/// reproducible) and no hooks; its trimmed stdout, or an error naming the
/// command with git's stderr.
pub(crate) fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .env("GIT_AUTHOR_NAME", "smith")
        .env("GIT_AUTHOR_EMAIL", "smith@localhost")
        .env("GIT_COMMITTER_NAME", "smith")
        .env("GIT_COMMITTER_EMAIL", "smith@localhost")
        .env("GIT_AUTHOR_DATE", "2000-01-01T00:00:00+0000")
        .env("GIT_COMMITTER_DATE", "2000-01-01T00:00:00+0000")
        .output()
        .map_err(|e| Error::command(format!("git {}", args.join(" ")), e.to_string()))?;
    if !out.status.success() {
        return Err(Error::command(
            format!("git -C {} {}", dir.display(), args.join(" ")),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Whether `dir` holds a Python project: packaging metadata or `.py` files.
fn is_python_project(dir: &Path) -> bool {
    if ["pyproject.toml", "setup.py", "setup.cfg"]
        .iter()
        .any(|f| dir.join(f).is_file())
    {
        return true;
    }
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if p.is_dir() && depth < 4 && !SKIP_DIRS.contains(&name.as_str()) {
                stack.push((p, depth + 1));
            } else if name.ends_with(".py") {
                return true;
            }
        }
    }
    false
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        let src = entry.path();
        let dst = to.join(&name);
        let ty = entry.file_type().map_err(|e| Error::io(&src, e))?;
        if ty.is_dir() {
            if SKIP_DIRS.contains(&name_str.as_ref()) || name_str.ends_with(".egg-info") {
                continue;
            }
            copy_tree(&src, &dst)?;
        } else if ty.is_file() {
            if name_str.ends_with(".pyc") {
                continue;
            }
            std::fs::copy(&src, &dst).map_err(|e| Error::io(&src, e))?;
        } else if ty.is_symlink() {
            let target = std::fs::read_link(&src).map_err(|e| Error::io(&src, e))?;
            std::os::unix::fs::symlink(target, &dst).map_err(|e| Error::io(&dst, e))?;
        }
    }
    Ok(())
}

fn name_from_remote(url: &str) -> Option<String> {
    let trimmed = url.trim_end_matches('/').trim_end_matches(".git");
    let mut parts = trimmed.rsplit(['/', ':']);
    let name = parts.next()?;
    let owner = parts.next()?;
    (!owner.is_empty() && !name.is_empty()).then(|| format!("{owner}/{name}"))
}

/// Open the repository at `path`.
///
/// A clean git repository (the path is its top level and nothing tracked is
/// modified) is used in place at `HEAD`. Anything else — a plain directory, a
/// sub-directory of another repository, a dirty tree — is copied to
/// `work_dir/repo` (without virtualenvs, caches and build output) and
/// committed there with a fixed author and date, so the same tree always gets
/// the same commit id.
pub fn open_repo(path: &Path, name: Option<&str>, work_dir: &Path) -> Result<RepoInfo> {
    let repo_err = |reason: &str| Error::Repo {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if !path.exists() {
        return Err(repo_err("no such file or directory"));
    }
    if !path.is_dir() {
        return Err(repo_err("not a directory"));
    }
    let root = path.canonicalize().map_err(|e| Error::io(path, e))?;
    if !is_python_project(&root) {
        return Err(repo_err(
            "not a Python project: no pyproject.toml, setup.py, setup.cfg or .py files",
        ));
    }
    let dir_name = root
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "repo".into());
    let top = git(&root, &["rev-parse", "--show-toplevel"])
        .ok()
        .map(PathBuf::from);
    let clean = top.as_deref() == Some(root.as_path())
        && git(&root, &["status", "--porcelain", "--untracked-files=no"])
            .is_ok_and(|s| s.is_empty());
    let remote_name = || {
        git(&root, &["remote", "get-url", "origin"])
            .ok()
            .and_then(|u| name_from_remote(&u))
    };
    let name = name
        .map(str::to_string)
        .or_else(|| if clean { remote_name() } else { None })
        .unwrap_or_else(|| format!("local/{dir_name}"));
    if !name.contains('/') {
        return Err(Error::invalid(
            "repository name",
            format!("`{name}` is not owner/name"),
        ));
    }
    if clean {
        let base_commit = git(&root, &["rev-parse", "HEAD"])?;
        return Ok(RepoInfo {
            root,
            name,
            base_commit,
            snapshot: false,
        });
    }
    let snap = work_dir.join("repo");
    if snap.exists() {
        std::fs::remove_dir_all(&snap).map_err(|e| Error::io(&snap, e))?;
    }
    copy_tree(&root, &snap)?;
    git(&snap, &["init", "-q", "-b", "main"])?;
    git(&snap, &["add", "-A"])?;
    git(&snap, &["commit", "-q", "-m", "smith: clean tree"])?;
    let base_commit = git(&snap, &["rev-parse", "HEAD"])?;
    let root = snap.canonicalize().map_err(|e| Error::io(&snap, e))?;
    Ok(RepoInfo {
        root,
        name,
        base_commit,
        snapshot: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_names() {
        assert_eq!(
            name_from_remote("https://host/acme/tool.git").as_deref(),
            Some("acme/tool")
        );
        assert_eq!(
            name_from_remote("git@host:acme/tool.git").as_deref(),
            Some("acme/tool")
        );
    }

    #[test]
    fn bad_paths_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope");
        let err = open_repo(&missing, None, tmp.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope") && err.contains("no such"), "{err}");
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        std::fs::write(empty.join("README.md"), "hi").unwrap();
        let err = open_repo(&empty, None, tmp.path()).unwrap_err().to_string();
        assert!(err.contains("not a Python project"), "{err}");
    }

    #[test]
    fn snapshots_are_reproducible() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("proj");
        std::fs::create_dir_all(src.join(".venv")).unwrap();
        std::fs::write(src.join("m.py"), "x = 1\n").unwrap();
        std::fs::write(src.join(".venv/junk.py"), "").unwrap();
        let a = open_repo(&src, None, &tmp.path().join("w1")).unwrap();
        let b = open_repo(&src, None, &tmp.path().join("w2")).unwrap();
        assert!(a.snapshot);
        assert_eq!(a.base_commit, b.base_commit);
        assert_eq!(a.name, "local/proj");
        assert!(!a.root.join(".venv").exists());
    }
}
