//! A working copy of a repository on the host's disk: copying it in,
//! applying patches in process, and resetting exactly the files touched.
//! Shared by the local and bubblewrap sandboxes, which differ only in how
//! they run commands.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use smith_core::{join_rel, Error, Patch, Result};

/// Directory names never copied into a workspace: version control, venvs,
/// caches. Bytecode caches in particular must not leak in, because a stale
/// `.pyc` of a same-size edit could be loaded instead of the mutated source.
pub const EXCLUDED_DIRS: &[&str] = &[
    ".git",
    ".hg",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
];

/// Copy `from` into `to` (which must exist), skipping [`EXCLUDED_DIRS`] and
/// `*.pyc`. Symlinks are recreated, not followed.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let entries = std::fs::read_dir(from).map_err(|e| Error::io(from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let name = entry.file_name();
        let src = entry.path();
        let dst = to.join(&name);
        let kind = entry.file_type().map_err(|e| Error::io(&src, e))?;
        if kind.is_dir() {
            if EXCLUDED_DIRS.iter().any(|x| name == *x) {
                continue;
            }
            std::fs::create_dir(&dst).map_err(|e| Error::io(&dst, e))?;
            copy_tree(&src, &dst)?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&src).map_err(|e| Error::io(&src, e))?;
            std::os::unix::fs::symlink(&target, &dst).map_err(|e| Error::io(&dst, e))?;
        } else if kind.is_file() {
            if name.to_string_lossy().ends_with(".pyc") {
                continue;
            }
            std::fs::copy(&src, &dst).map_err(|e| Error::io(&src, e))?;
        }
    }
    Ok(())
}

/// A tree on disk plus the original bytes of every file changed through it
/// (`None`: the file did not exist).
#[derive(Debug)]
pub struct Tree {
    root: PathBuf,
    originals: BTreeMap<String, Option<Vec<u8>>>,
    /// Directories created for new files, deepest last; removed on reset.
    created_dirs: Vec<PathBuf>,
}

impl Tree {
    /// Track changes to the tree at `root`.
    pub fn new(root: PathBuf) -> Self {
        Tree {
            root,
            originals: BTreeMap::new(),
            created_dirs: Vec::new(),
        }
    }

    /// The tree's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Files changed since the last reset, workspace-relative.
    pub fn touched(&self) -> impl Iterator<Item = &str> {
        self.originals.keys().map(String::as_str)
    }

    /// Read a workspace-relative file.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>> {
        let path = self.path(rel)?;
        std::fs::read(&path).map_err(|e| Error::io(path, e))
    }

    /// Write a workspace-relative file, remembering what was there.
    pub fn write(&mut self, rel: &str, contents: &[u8]) -> Result<()> {
        self.remember(rel)?;
        let path = self.path(rel)?;
        if let Some(parent) = path.parent() {
            let mut missing: Vec<PathBuf> = parent
                .ancestors()
                .take_while(|d| !d.exists())
                .map(Path::to_path_buf)
                .collect();
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            missing.reverse();
            self.created_dirs.extend(missing);
        }
        std::fs::write(&path, contents).map_err(|e| Error::io(path, e))
    }

    /// Apply `patch` all-or-nothing: every file is patched in memory first.
    pub fn apply(&mut self, patch: &Patch) -> Result<()> {
        let mut staged = Vec::new();
        for fp in patch.files()? {
            let rel = fp.path().to_string();
            let path = self.path(&rel)?;
            let old = match std::fs::read(&path) {
                Ok(bytes) => Some(String::from_utf8(bytes).map_err(|_| Error::PatchApply {
                    path: PathBuf::from(&rel),
                    reason: "file is not UTF-8".into(),
                })?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(Error::io(path, e)),
            };
            staged.push((rel, fp.apply(old.as_deref())?));
        }
        for (rel, new) in staged {
            match new {
                Some(text) => self.write(&rel, text.as_bytes())?,
                None => {
                    self.remember(&rel)?;
                    let path = self.path(&rel)?;
                    std::fs::remove_file(&path).map_err(|e| Error::io(path, e))?;
                }
            }
        }
        Ok(())
    }

    /// Restore every remembered file to its original bytes (or absence).
    pub fn reset(&mut self) -> Result<()> {
        for (rel, original) in std::mem::take(&mut self.originals) {
            let path = self.path(&rel)?;
            match original {
                Some(bytes) => std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?,
                None => match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(path, e)),
                },
            }
        }
        // Deepest first; a directory something else filled stays.
        for dir in std::mem::take(&mut self.created_dirs).iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
        Ok(())
    }

    fn remember(&mut self, rel: &str) -> Result<()> {
        if self.originals.contains_key(rel) {
            return Ok(());
        }
        let path = self.path(rel)?;
        let original = match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(path, e)),
        };
        self.originals.insert(rel.to_string(), original);
        Ok(())
    }

    /// Resolve a workspace-relative path, refusing ones that climb out.
    fn path(&self, rel: &str) -> Result<PathBuf> {
        Ok(join_rel(
            &self.root,
            inside_workspace(rel, "workspace path")?,
        ))
    }
}

/// `rel` if it stays inside the workspace (relative, no `..`); otherwise an
/// [`Error::Invalid`] about `what`. Every sandbox checks paths and working
/// directories it is given with this one rule.
pub(crate) fn inside_workspace<'a>(rel: &'a str, what: &str) -> Result<&'a str> {
    if rel.starts_with('/') || rel.split('/').any(|p| p == "..") {
        return Err(Error::invalid(
            what,
            format!("`{rel}` is not inside the workspace"),
        ));
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use smith_core::FileChange;

    #[test]
    fn copy_skips_git_venv_and_bytecode() {
        let from = tempfile::tempdir().unwrap();
        for p in [
            ".git/HEAD",
            ".venv/bin/python",
            "pkg/__pycache__/m.cpython-311.pyc",
            "pkg/m.py",
            "stray.pyc",
        ] {
            let path = from.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        let to = tempfile::tempdir().unwrap();
        copy_tree(from.path(), to.path()).unwrap();
        assert!(to.path().join("pkg/m.py").is_file());
        for gone in [".git", ".venv", "pkg/__pycache__", "stray.pyc"] {
            assert!(!to.path().join(gone).exists(), "{gone} was copied");
        }
    }

    #[test]
    fn apply_then_reset_restores_modified_added_and_deleted_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.py"), "x = 1\n").unwrap();
        std::fs::write(dir.path().join("gone.py"), "y = 2\n").unwrap();
        let mut tree = Tree::new(dir.path().to_path_buf());
        let patch = Patch::from_changes(&[
            FileChange::modified("a.py", "x = 1\n", "x = 2\n"),
            FileChange {
                path: "gone.py".into(),
                before: Some("y = 2\n".into()),
                after: None,
            },
        ]);
        tree.apply(&patch).unwrap();
        assert_eq!(tree.read("a.py").unwrap(), b"x = 2\n");
        tree.write("new/file.py", b"z").unwrap();
        tree.reset().unwrap();
        assert_eq!(tree.read("a.py").unwrap(), b"x = 1\n");
        assert_eq!(tree.read("gone.py").unwrap(), b"y = 2\n");
        assert!(
            !dir.path().join("new").exists(),
            "created directory left behind"
        );
        assert_eq!(tree.touched().count(), 0);
    }

    #[test]
    fn failing_hunk_leaves_the_tree_untouched() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.py"), "x = 1\n").unwrap();
        std::fs::write(dir.path().join("b.py"), "other\n").unwrap();
        let mut tree = Tree::new(dir.path().to_path_buf());
        let patch = Patch::from_changes(&[
            FileChange::modified("a.py", "x = 1\n", "x = 2\n"),
            FileChange::modified("b.py", "not what is there\n", "y\n"),
        ]);
        assert!(tree.apply(&patch).is_err());
        assert_eq!(tree.read("a.py").unwrap(), b"x = 1\n");
    }

    #[test]
    fn paths_outside_the_tree_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut tree = Tree::new(dir.path().to_path_buf());
        assert!(tree.write("../escape.py", b"x").is_err());
        assert!(tree.read("/etc/passwd").is_err());
    }
}
