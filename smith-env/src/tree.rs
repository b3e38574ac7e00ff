//! A working copy of a repository on the host's disk: copying it in,
//! applying patches in process, and resetting exactly the files touched.
//! [`TreeWorkspace`] is the one [`Workspace`] over such a copy, shared by
//! the local, bubblewrap and Docker sandboxes, which differ only in how
//! they run commands (their [`Runner`]s).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use smith_core::{
    join_rel, CommandSpec, Error, Patch, Result, RunOptions, RunOutput, Service, Workspace,
};

use crate::local::Scratch;

/// How a [`TreeWorkspace`] runs commands: the part in which the local,
/// bubblewrap and Docker sandboxes differ. `root` is the tree's directory
/// on the host.
pub trait Runner: std::fmt::Debug + Send {
    /// Where the tree appears to commands (default: where it is on the
    /// host).
    fn command_root(&self, root: &Path) -> PathBuf {
        root.to_path_buf()
    }

    /// Run `command` over the tree to completion.
    fn run(
        &mut self,
        root: &Path,
        command: &CommandSpec,
        options: &RunOptions,
    ) -> Result<RunOutput>;

    /// Start `command` as a long-lived service over the tree.
    fn spawn(&mut self, root: &Path, command: &CommandSpec) -> Result<Box<dyn Service>>;
}

/// A [`Workspace`] whose files are a [`Tree`] in a scratch directory and
/// whose commands go to a [`Runner`]. On drop the runner goes first (a
/// Docker runner removes its container), then the directory.
#[derive(Debug)]
pub struct TreeWorkspace<R> {
    tree: Tree,
    runner: R,
    _dir: Scratch,
}

impl<R> TreeWorkspace<R> {
    /// A workspace over the copy in `dir`.
    pub(crate) fn new(dir: Scratch, runner: R) -> Self {
        TreeWorkspace {
            tree: Tree::new(dir.path().to_path_buf()),
            runner,
            _dir: dir,
        }
    }

    /// How this workspace runs commands.
    pub fn runner(&self) -> &R {
        &self.runner
    }
}

impl<R: Runner> Workspace for TreeWorkspace<R> {
    fn root(&self) -> &Path {
        self.tree.root()
    }

    fn command_root(&self) -> PathBuf {
        self.runner.command_root(self.tree.root())
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
        self.runner.run(self.tree.root(), command, options)
    }

    fn spawn(&mut self, command: &CommandSpec) -> Result<Box<dyn Service>> {
        self.runner.spawn(self.tree.root(), command)
    }
}

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

    /// Resolve a workspace-relative path, refusing ones that climb out by
    /// their words (`..`, absolute) or through a symbolic link: every
    /// existing directory on the way, and the file itself when it is a
    /// link, must resolve inside the root. A patch that edits `pkg/ext.py`
    /// where that is a link to a host file, or creates `out/new.py` where
    /// `out` is a linked directory, is refused before anything is read or
    /// written.
    fn path(&self, rel: &str) -> Result<PathBuf> {
        let rel = inside_workspace(rel, "workspace path")?;
        let path = join_rel(&self.root, rel);
        if path == self.root {
            return Err(Error::invalid(
                "workspace path",
                format!("`{rel}` names no file in the workspace"),
            ));
        }
        let root = self.canonical_root()?;
        let refuse = |target: &Path| {
            Error::invalid(
                "workspace path",
                format!(
                    "`{rel}` goes through a symbolic link to {}, outside the workspace {}",
                    target.display(),
                    self.root.display()
                ),
            )
        };
        // The deepest directory on the way that exists, with every link in
        // it followed, must be inside; the missing rest is made fresh.
        if let Some(parent) = path.parent() {
            if let Some(existing) = parent.ancestors().find(|d| d.symlink_metadata().is_ok()) {
                let real = existing
                    .canonicalize()
                    .map_err(|e| Error::io(existing, e))?;
                if !real.starts_with(&root) {
                    return Err(refuse(&real));
                }
            }
        }
        if let Ok(meta) = path.symlink_metadata() {
            if meta.file_type().is_symlink() {
                // A dangling link is refused too: writing would create its target.
                let target = path
                    .canonicalize()
                    .unwrap_or_else(|_| std::fs::read_link(&path).unwrap_or_default());
                if !target.starts_with(&root) || !target.exists() {
                    return Err(refuse(&target));
                }
            }
        }
        Ok(path)
    }

    /// The root with every link in it followed (a temp dir may be under a
    /// linked `/tmp`).
    fn canonical_root(&self) -> Result<PathBuf> {
        self.root
            .canonicalize()
            .map_err(|e| Error::io(&self.root, e))
    }
}

/// `rel` if it stays inside the workspace by its words (relative, no
/// `..`); otherwise an [`Error::Invalid`] about `what`. Every sandbox
/// checks paths and working directories it is given with this one rule;
/// [`Tree`] also refuses links that lead out.
pub(crate) fn inside_workspace<'a>(rel: &'a str, what: &str) -> Result<&'a str> {
    smith_core::workspace_rel(rel, what)
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

    /// A workspace whose `pkg/ext.py` links to a file outside and whose
    /// `outlink` links to a directory outside, as a repository may hold.
    fn tree_with_links_out() -> (tempfile::TempDir, tempfile::TempDir, Tree) {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("ext.py"), "host = 1\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pkg")).unwrap();
        std::fs::write(dir.path().join("pkg/inner.py"), "x = 1\n").unwrap();
        std::os::unix::fs::symlink(outside.path().join("ext.py"), dir.path().join("pkg/ext.py"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("outlink")).unwrap();
        // Links that stay inside are ordinary files and directories.
        std::os::unix::fs::symlink("inner.py", dir.path().join("pkg/alias.py")).unwrap();
        std::os::unix::fs::symlink("pkg", dir.path().join("pkglink")).unwrap();
        let tree = Tree::new(dir.path().to_path_buf());
        (outside, dir, tree)
    }

    fn host_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    }

    #[test]
    fn patches_through_links_that_leave_the_tree_are_refused_naming_the_path() {
        let (outside, _dir, mut tree) = tree_with_links_out();
        let before = host_files(outside.path());
        let edit = Patch::from_changes(&[FileChange::modified(
            "pkg/ext.py",
            "host = 1\n",
            "host = 2\n",
        )]);
        let err = tree.apply(&edit).unwrap_err().to_string();
        assert!(
            err.contains("pkg/ext.py") && err.contains("symbolic link"),
            "{err}"
        );
        let create = Patch::from_changes(&[FileChange {
            path: "outlink/pwned.txt".into(),
            before: None,
            after: Some("pwned\n".into()),
        }]);
        let err = tree.apply(&create).unwrap_err().to_string();
        assert!(err.contains("outlink/pwned.txt"), "{err}");
        let deeper = Patch::from_changes(&[FileChange {
            path: "outlink/new/dir/pwned.txt".into(),
            before: None,
            after: Some("pwned\n".into()),
        }]);
        assert!(tree.apply(&deeper).is_err());
        assert!(tree.write("outlink/pwned.txt", b"x").is_err());
        assert!(tree.write("pkg/ext.py", b"x").is_err());
        assert!(tree.read("pkg/ext.py").is_err(), "read a host file");
        assert_eq!(host_files(outside.path()), before, "a host file changed");
        assert_eq!(tree.touched().count(), 0);
    }

    #[test]
    fn links_that_stay_inside_the_tree_work() {
        let (_outside, dir, mut tree) = tree_with_links_out();
        tree.write("pkg/alias.py", b"x = 2\n").unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("pkg/inner.py")).unwrap(),
            b"x = 2\n"
        );
        tree.write("pkglink/made.py", b"y\n").unwrap();
        assert!(dir.path().join("pkg/made.py").is_file());
        tree.reset().unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("pkg/inner.py")).unwrap(),
            b"x = 1\n"
        );
        assert!(!dir.path().join("pkg/made.py").exists());
    }

    #[test]
    fn a_dangling_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().with_extension("smith-dangling-target");
        std::os::unix::fs::symlink(&target, dir.path().join("d.py")).unwrap();
        let mut tree = Tree::new(dir.path().to_path_buf());
        assert!(tree.write("d.py", b"x").is_err());
        assert!(!target.exists(), "created the link's target");
    }

    #[test]
    fn paths_outside_the_tree_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut tree = Tree::new(dir.path().to_path_buf());
        assert!(tree.write("../escape.py", b"x").is_err());
        assert!(tree.read("/etc/passwd").is_err());
    }
}
