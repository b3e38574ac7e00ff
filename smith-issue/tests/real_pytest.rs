//! End to end with real pytest: each fixture bug is applied to a copy of the
//! calc repository, pytest runs in a virtualenv this test builds (cached
//! under the target directory), and the template writer describes the
//! failures from the live log without leaking the fix.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{calc_repo, failing_tests, mutations};
use smith_core::IssueWriter;
use smith_issue::{check_leak, write_checked, Symptom, TemplateWriter};

/// A virtualenv with pytest, made once per target directory. It is built in
/// a scratch directory and renamed into place, so an interrupted build is
/// never mistaken for a finished one.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("smith-issue-pyenv");
        let python = root.join("bin/python");
        if python.exists() {
            return python;
        }
        let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("smith-issue-pyenv.tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&scratch)
            .status()
            .expect("python3 runs")
            .success();
        assert!(ok, "python3 -m venv failed");
        let ok = Command::new(scratch.join("bin/python"))
            .args(["-m", "pip", "install", "--quiet", "pytest"])
            .status()
            .expect("pip runs")
            .success();
        assert!(ok, "pip install pytest failed");
        // Another test process may have won the race; either venv works.
        if std::fs::rename(&scratch, &root).is_err() {
            let _ = std::fs::remove_dir_all(&scratch);
        }
        // A venv's scripts carry its path; call the interpreter by the
        // final path so `-m pytest` resolves inside it.
        python
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "__pycache__" {
                copy_dir(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn template_statements_from_live_pytest_runs_do_not_leak() {
    let python = python();
    let writer = TemplateWriter::new();
    let listing = TemplateWriter::new().listing_failing_tests(true);
    for m in mutations() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        copy_dir(&calc_repo(), &repo);
        std::fs::write(repo.join(&m.file), m.buggy_text(&calc_repo())).unwrap();
        let out = Command::new(python)
            .args(["-m", "pytest", "-rA", "-p", "no:cacheprovider", "tests"])
            .current_dir(&repo)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}: pytest should report failures\n{log}",
            m.name
        );

        let failing = failing_tests(&log);
        assert!(!failing.is_empty(), "{}: no failing tests\n{log}", m.name);
        let mut context = m.context(&repo, &log, 0);
        for t in &context.failing {
            assert!(t.source.is_some(), "{}: no source for {}", m.name, t.id);
            let symptom = Symptom::parse(&t.output);
            assert!(
                symptom.exception.is_some(),
                "{}: no symptom for {}\n{}",
                m.name,
                t.id,
                t.output
            );
        }

        for seed in 0..8 {
            context.seed = seed;
            let text = writer.write(&context).unwrap();
            assert_eq!(check_leak(&text, &context), None, "{}:\n{text}", m.name);
            assert!(!text.contains(m.to.trim()), "{}:\n{text}", m.name);
            assert!(!text.contains(m.from.trim()), "{}:\n{text}", m.name);
            // No test ids unless asked for.
            assert!(
                !failing.iter().any(|t| text.contains(t.as_str())),
                "{}:\n{text}",
                m.name
            );
            let listed = listing.write(&context).unwrap();
            assert_eq!(check_leak(&listed, &context), None, "{}:\n{listed}", m.name);
            assert!(
                failing.iter().any(|t| listed.contains(t.as_str())),
                "{}:\n{listed}",
                m.name
            );
            assert!(
                text.contains("```python"),
                "{}: no reproduction\n{text}",
                m.name
            );
            let checked = write_checked(&writer, &context, 3).unwrap();
            assert_eq!(checked.leaked, 0);
        }
    }
}
