//! Opening a repository: checking it is a Python project and pinning the
//! clean tree to a commit that every task refers to.

use std::path::{Path, PathBuf};

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
    /// Whether `root` is a snapshot smith committed itself (the input was
    /// not a clean git repository); otherwise it is a clone of the input
    /// at its `HEAD`.
    pub snapshot: bool,
}

impl RepoInfo {
    /// The repository's name at its base commit.
    pub fn repo_ref(&self) -> smith_core::RepoRef {
        smith_core::RepoRef::new(&self.name, &self.base_commit)
    }
}

/// The file that marks a directory as smith's output (written by the
/// pipeline, see [`crate::pipeline`]): such a directory is never copied
/// into a snapshot, whichever run made it.
pub const RUN_RECORD: &str = "smith-run.json";

/// Whether `dir` is an output directory of some smith run.
fn is_output_dir(dir: &Path) -> bool {
    dir.join(RUN_RECORD).is_file()
}

/// Where a new copy of the repository is made in the output directory,
/// before it replaces `repo`.
const STAGED: &str = ".repo-next";

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
    git_stdout(dir, args).map(|out| out.trim().to_string())
}

/// [`git`] with its stdout as git wrote it.
pub(crate) fn git_stdout(dir: &Path, args: &[&str]) -> Result<String> {
    let mut argv: Vec<std::ffi::OsString> = vec!["-C".into(), dir.into()];
    argv.extend(
        [
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "commit.gpgsign=false",
        ]
        .iter()
        .chain(args)
        .map(Into::into),
    );
    let out = duct::cmd("git", argv)
        .env("GIT_AUTHOR_NAME", "smith")
        .env("GIT_AUTHOR_EMAIL", "smith@localhost")
        .env("GIT_COMMITTER_NAME", "smith")
        .env("GIT_COMMITTER_EMAIL", "smith@localhost")
        .env("GIT_AUTHOR_DATE", "2000-01-01T00:00:00+0000")
        .env("GIT_COMMITTER_DATE", "2000-01-01T00:00:00+0000")
        // `git status` would otherwise refresh the index of the user's
        // repository: reading it must not write to it.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin_null()
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(|e| Error::command(format!("git {}", args.join(" ")), e.to_string()))?;
    if !out.status.success() {
        return Err(Error::command(
            format!("git -C {} {}", dir.display(), args.join(" ")),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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

/// Copy the tree at `from` to `to`, leaving out virtualenvs, caches, build
/// output, smith's output directories and the directory `exclude` (this
/// run's output directory, when it is inside the repository: copying it
/// into itself never ends).
fn copy_tree(from: &Path, to: &Path, exclude: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        let src = entry.path();
        let dst = to.join(&name);
        let ty = entry.file_type().map_err(|e| Error::io(&src, e))?;
        if ty.is_dir() {
            if SKIP_DIRS.contains(&name_str.as_ref())
                || name_str.ends_with(".egg-info")
                || src == exclude
                || is_output_dir(&src)
            {
                continue;
            }
            copy_tree(&src, &dst, exclude)?;
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

/// Open the repository at `path`, with smith's output in `work_dir`.
///
/// smith never works in the repository it is given: everything it does
/// there (installing the project, running its tests) writes files. A clean
/// git repository (the path is its top level and nothing tracked is
/// modified) is cloned at `HEAD` to `work_dir/repo`, so tasks refer to the
/// repository's own commit. Anything else — a plain directory, a
/// sub-directory of another repository, a dirty tree — is copied to
/// `work_dir/repo` (without virtualenvs, caches, build output and smith's
/// output directories, `work_dir` among them when it is inside) and
/// committed there with a fixed author and date, so the same tree always
/// gets the same commit id.
///
/// Nothing is written into the repository at `path`.
pub fn open_repo(path: &Path, name: Option<&str>, work_dir: &Path) -> Result<RepoInfo> {
    open_repo_checked(path, name, work_dir, |_| Ok(()))
}

/// The repository at `path`, canonical: it must be a directory holding a
/// Python project.
fn project_root(path: &Path) -> Result<PathBuf> {
    let repo_err = |reason: &str| Error::repo(path, reason);
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
    Ok(root)
}

/// `work_dir`, made and canonical; refused when the repository at `root`
/// is the output directory or a copy smith made in it.
fn output_dir(work_dir: &Path, root: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(work_dir).map_err(|e| Error::io(work_dir, e))?;
    let out = work_dir
        .canonicalize()
        .map_err(|e| Error::io(work_dir, e))?;
    // The copy replaces `repo` in the output directory: the repository
    // cannot be that copy, or the output directory itself.
    if root == out || root.starts_with(out.join("repo")) || root.starts_with(out.join(STAGED)) {
        return Err(Error::invalid(
            "output directory",
            format!(
                "{} holds the repository {} itself; choose another output directory",
                out.display(),
                root.display()
            ),
        ));
    }
    Ok(out)
}

/// Put the tree of `root` at `staged` (in the output directory `out`) as a
/// git repository and return its commit: a `clean` repository is cloned
/// at its `HEAD`; anything else is copied and committed.
fn stage_tree(root: &Path, clean: bool, staged: &Path, out: &Path) -> Result<String> {
    if clean {
        let base_commit = git(root, &["rev-parse", "HEAD"])?;
        let (from, to) = (root.display().to_string(), staged.display().to_string());
        git(out, &["clone", "-q", "--no-checkout", &from, &to])?;
        git(staged, &["checkout", "-q", "--detach", &base_commit])?;
        Ok(base_commit)
    } else {
        copy_tree(root, staged, out)?;
        git(staged, &["init", "-q", "-b", "main"])?;
        git(staged, &["add", "-A"])?;
        git(staged, &["commit", "-q", "-m", "smith: clean tree"])?;
        git(staged, &["rev-parse", "HEAD"])
    }
}

/// [`open_repo`], with `accept` shown the repository before it replaces the
/// copy an earlier run left in `work_dir/repo`: when `accept` fails, its
/// error is returned and `work_dir` is left as it was.
pub fn open_repo_checked(
    path: &Path,
    name: Option<&str>,
    work_dir: &Path,
    accept: impl FnOnce(&RepoInfo) -> Result<()>,
) -> Result<RepoInfo> {
    let root = project_root(path)?;
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
    let out = output_dir(work_dir, &root)?;
    // The copy is made beside the current one and replaces it only once
    // accepted, so a refused repository leaves an earlier run's tree intact.
    let staged = out.join(STAGED);
    if staged.exists() {
        std::fs::remove_dir_all(&staged).map_err(|e| Error::io(&staged, e))?;
    }
    let base_commit = stage_tree(&root, clean, &staged, &out)?;
    let mut info = RepoInfo {
        root: staged.clone(),
        name,
        base_commit,
        snapshot: !clean,
    };
    if let Err(e) = accept(&info) {
        std::fs::remove_dir_all(&staged).map_err(|e| Error::io(&staged, e))?;
        return Err(e);
    }
    let snap = out.join("repo");
    if snap.exists() {
        std::fs::remove_dir_all(&snap).map_err(|e| Error::io(&snap, e))?;
    }
    std::fs::rename(&staged, &snap).map_err(|e| Error::io(&snap, e))?;
    info.root = snap;
    Ok(info)
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

    /// Every file under `dir` (relative path and bytes), `.git` included.
    fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if e.file_type().unwrap().is_dir() {
                    stack.push(p);
                } else {
                    let bytes = std::fs::read(&p).unwrap();
                    out.push((p.strip_prefix(dir).unwrap().to_path_buf(), bytes));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn an_output_directory_inside_a_plain_directory_is_left_out_of_the_snapshot() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("proj");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("m.py"), "x = 1\n").unwrap();
        let out = src.join("smith-out");
        let first = open_repo(&src, None, &out).unwrap();
        assert_eq!(first.root, out.canonicalize().unwrap().join("repo"));
        assert!(!first.root.join("smith-out").exists());
        // Again, with the first snapshot in place: same tree, same commit.
        let again = open_repo(&src, None, &out).unwrap();
        assert_eq!(again.base_commit, first.base_commit);
        assert!(!again.root.join("smith-out").exists());
        // And the same commit as with the output directory elsewhere, once
        // the pipeline has marked the first one as smith's output.
        std::fs::write(out.join(RUN_RECORD), "{}").unwrap();
        let elsewhere = open_repo(&src, None, &tmp.path().join("w")).unwrap();
        assert_eq!(elsewhere.base_commit, first.base_commit);
        assert!(!elsewhere.root.join("smith-out").exists());
    }

    #[test]
    fn a_clean_repository_is_cloned_at_head_and_never_written() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("proj");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("m.py"), "x = 1\n").unwrap();
        git(&src, &["init", "-q", "-b", "main"]).unwrap();
        git(&src, &["add", "-A"]).unwrap();
        git(&src, &["commit", "-q", "-m", "one"]).unwrap();
        let head = git(&src, &["rev-parse", "HEAD"]).unwrap();
        // Untracked files are not part of the commit, so not of the tree.
        std::fs::write(src.join("scratch.py"), "y = 2\n").unwrap();
        let before = files(&src);
        let inside = src.join("smith-out");
        let outside = tmp.path().join("w");
        for out in [&inside, &inside, &outside] {
            let repo = open_repo(&src, None, out).unwrap();
            assert_eq!(repo.base_commit, head);
            assert!(!repo.snapshot);
            assert_eq!(repo.root, out.canonicalize().unwrap().join("repo"));
            assert!(repo.root.join("m.py").is_file());
            assert!(!repo.root.join("scratch.py").exists());
            assert!(!repo.root.join("smith-out").exists());
        }
        std::fs::remove_dir_all(&inside).unwrap();
        assert_eq!(files(&src), before, "the repository was written to");
    }

    #[test]
    fn the_repository_cannot_be_its_own_output_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("proj");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("m.py"), "x = 1\n").unwrap();
        let err = open_repo(&src, None, &src).unwrap_err().to_string();
        assert!(err.contains("output directory"), "{err}");
        // Nor the copy an earlier run made in that directory; any other
        // directory inside it is fine.
        let inner = tmp.path().join("w/inner");
        std::fs::create_dir_all(&inner).unwrap();
        std::fs::write(inner.join("m.py"), "x = 1\n").unwrap();
        open_repo(&inner, None, &tmp.path().join("w")).unwrap();
        let snap = open_repo(&src, None, &tmp.path().join("w")).unwrap().root;
        let err = open_repo(&snap, None, &tmp.path().join("w"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("output directory"), "{err}");
        assert!(snap.join("m.py").is_file());
    }

    #[test]
    fn a_refused_repository_leaves_the_earlier_copy_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("proj");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("m.py"), "x = 1\n").unwrap();
        let out = tmp.path().join("out");
        let first = open_repo(&src, None, &out).unwrap();
        std::fs::write(src.join("m.py"), "x = 2\n").unwrap();
        let err = open_repo_checked(&src, None, &out, |r| {
            assert_ne!(r.base_commit, first.base_commit);
            Err(Error::invalid("repository", "changed"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("changed"), "{err}");
        assert_eq!(
            std::fs::read_to_string(first.root.join("m.py")).unwrap(),
            "x = 1\n"
        );
        assert_eq!(
            git(&first.root, &["rev-parse", "HEAD"]).unwrap(),
            first.base_commit
        );
        assert!(!out.join(".repo-next").exists());
    }
}
