//! Checks shared by the real-world tests: every candidate patch applies
//! with real `git apply`, the patched file parses, and the reverse patch
//! restores the original byte for byte.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use smith_core::{Candidate, SourceFile};
use smith_mutate::extract_entities;

/// The workspace root (the directory holding `smith-mutate/`).
pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The bundled demo repository.
pub(crate) fn demo_repo() -> PathBuf {
    let root = workspace().join("examples/demo-repo");
    assert!(
        root.is_dir(),
        "the demo repository is missing at {}",
        root.display()
    );
    root
}

/// In-process properties of every candidate: applies, changes the file,
/// parses, and reverses to the original. Runs on all cores.
pub(crate) fn check_in_process(root: &Path, candidates: &[Candidate]) {
    use rayon::prelude::*;
    let mut originals: BTreeMap<String, String> = BTreeMap::new();
    for c in candidates {
        let paths = c.patch.paths().expect("patch parses");
        assert_eq!(paths.len(), 1, "{}: one file per candidate", c.id);
        originals
            .entry(paths[0].clone())
            .or_insert_with(|| std::fs::read_to_string(root.join(&paths[0])).unwrap());
    }
    candidates.par_iter().for_each(|c| {
        let path = c.patch.paths().unwrap().remove(0);
        let original = &originals[&path];
        let patched = c
            .patch
            .apply_to_text(&path, original)
            .unwrap_or_else(|e| panic!("{} ({}): {e}\n{}", c.description, c.id, c.patch));
        assert_ne!(&patched, original, "{}", c.description);
        if let Err(e) = extract_entities(&SourceFile::new(path.clone(), patched.clone())) {
            panic!(
                "{}: patched file does not parse: {e}\n{}",
                c.description, c.patch
            );
        }
        let restored = c.patch.reverse().apply_to_text(&path, &patched).unwrap();
        assert!(
            restored == *original,
            "{}: reverse does not restore {path}",
            c.description
        );
    });
}

/// Run real `git apply` over every candidate's patch and its reverse. git
/// applies a list of patches as one series, so in a scratch copy of the
/// touched files the list `p1 r1 p2 r2 ...` (each patch followed by its
/// reverse) applies exactly when every patch applies to the clean tree and
/// every reverse undoes it; afterwards the copy must equal the original
/// byte for byte. A failing chunk is re-checked with `git apply --check`
/// one patch at a time in `root` to name the culprit.
pub(crate) fn check_git_apply(root: &Path, candidates: &[Candidate]) {
    use rayon::prelude::*;
    let scratch = tempfile::tempdir().unwrap();
    let entries: Vec<(String, PathBuf, PathBuf)> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let forward = scratch.path().join(format!("{i}.diff"));
            let reverse = scratch.path().join(format!("{i}.rev.diff"));
            std::fs::write(&forward, c.patch.as_str()).unwrap();
            std::fs::write(&reverse, c.patch.reverse().as_str()).unwrap();
            (c.patch.paths().unwrap().remove(0), forward, reverse)
        })
        .collect();
    let git_apply = |dir: &Path, args: &[&str], files: &[&PathBuf]| {
        let out = Command::new("git")
            .arg("apply")
            .args(args)
            .args(files)
            .current_dir(dir)
            .output()
            .expect("git runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let indices: Vec<usize> = (0..candidates.len()).collect();
    indices.par_chunks(300).for_each(|chunk| {
        let copy = tempfile::tempdir().unwrap();
        let touched: std::collections::BTreeSet<&String> =
            chunk.iter().map(|i| &entries[*i].0).collect();
        for path in &touched {
            let to = copy.path().join(path);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(root.join(path), to).unwrap();
        }
        let series: Vec<&PathBuf> = chunk
            .iter()
            .flat_map(|i| [&entries[*i].1, &entries[*i].2])
            .collect();
        let (ok, stderr) = git_apply(copy.path(), &[], &series);
        if ok {
            for path in touched {
                let now = std::fs::read(copy.path().join(path)).unwrap();
                assert!(
                    now == std::fs::read(root.join(path)).unwrap(),
                    "{path}: patches and reverses did not restore it"
                );
            }
            return;
        }
        for i in chunk {
            let (ok, err) = git_apply(root, &["--check"], &[&entries[*i].1]);
            let c = &candidates[*i];
            assert!(
                ok,
                "git apply --check failed for {} ({}): {err}\n{}",
                c.description, c.id, c.patch
            );
        }
        panic!("a chunk of patches failed as a series but each applies alone: {stderr}");
    });
}
