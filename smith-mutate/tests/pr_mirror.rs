//! PR mirror on a real git history built here: code commits are undone on
//! the current tree (in process, or by a scripted model when the code has
//! moved on), test/docs-only commits are skipped, and the candidates are
//! validated with real pytest in a venv.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use smith_core::memory::ScriptedModel;
use smith_core::Candidate;
use smith_mutate::{
    is_library_path, mirror_commit, mirror_history, parse_git_log, HistoryCommit, MirrorOptions,
    MirrorOutcome, MirrorSkip, GIT_LOG_FORMAT,
};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "smith")
        .env("GIT_AUTHOR_EMAIL", "smith@example.invalid")
        .env("GIT_COMMITTER_NAME", "smith")
        .env("GIT_COMMITTER_EMAIL", "smith@example.invalid")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn commit(dir: &Path, files: &[(&str, &str)], message: &str) {
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
}

const CALC_V1: &str = "\
def add(a, b):
    return a + b


def clamp(x, lo, hi):
    return max(lo, min(x, hi))


def mean(xs):
    return sum(xs) / len(xs)
";

const TESTS_V1: &str = "\
from pkg.calc import add, clamp, mean


def test_add():
    assert add(2, 3) == 5


def test_clamp():
    assert clamp(5, 0, 3) == 3


def test_mean():
    assert mean([1, 2, 3]) == 2
";

/// The file after every commit below; the model's answer for the commit
/// whose reverse no longer applies is this file without that change.
const CALC_NOW: &str = "\
def add(a, b):
    return float(a) + float(b)


def clamp(x, lo, hi):
    if lo > hi:
        lo, hi = hi, lo
    return max(lo, min(x, hi))


def mean(values):
    if not values:
        return 0.0
    total = sum(values)
    return total / len(values)
";

const CALC_NOW_WITHOUT_EMPTY_CHECK: &str = "\
def add(a, b):
    return float(a) + float(b)


def clamp(x, lo, hi):
    if lo > hi:
        lo, hi = hi, lo
    return max(lo, min(x, hi))


def mean(values):
    total = sum(values)
    return total / len(values)
";

/// Builds the history; returns the repo dir.
fn history() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    commit(
        d,
        &[
            ("pkg/__init__.py", ""),
            ("pkg/calc.py", CALC_V1),
            ("tests/test_calc.py", TESTS_V1),
            ("README.md", "calc\n"),
        ],
        "initial",
    );
    let calc2 = CALC_V1.replace(
        "def mean(xs):\n    return",
        "def mean(xs):\n    if not xs:\n        return 0.0\n    return",
    );
    let tests2 = format!("{TESTS_V1}\n\ndef test_mean_empty():\n    assert mean([]) == 0.0\n");
    commit(
        d,
        &[("pkg/calc.py", &calc2), ("tests/test_calc.py", &tests2)],
        "mean of an empty list is 0",
    );
    let calc3 = calc2.replace(
        "def clamp(x, lo, hi):\n",
        "def clamp(x, lo, hi):\n    if lo > hi:\n        lo, hi = hi, lo\n",
    );
    let tests3 =
        format!("{tests2}\n\ndef test_clamp_reversed_bounds():\n    assert clamp(-1, 3, 0) == 0\n");
    commit(
        d,
        &[("pkg/calc.py", &calc3), ("tests/test_calc.py", &tests3)],
        "clamp: accept bounds in either order",
    );
    let tests4 = format!("{tests3}\n\ndef test_add_negative():\n    assert add(-2, -3) == -5\n");
    commit(d, &[("tests/test_calc.py", &tests4)], "tests: negative add");
    commit(
        d,
        &[
            ("README.md", "calc\n\nSmall math.\n"),
            ("docs/usage.md", "use it\n"),
        ],
        "docs: usage",
    );
    let calc6 = calc3.replace("return a + b", "return float(a) + float(b)");
    let tests6 =
        format!("{tests4}\n\ndef test_add_strings():\n    assert add(\"1.5\", 2) == 3.5\n");
    commit(
        d,
        &[("pkg/calc.py", &calc6), ("tests/test_calc.py", &tests6)],
        "add: accept numeric strings",
    );
    let calc7 = calc6.replace(
        "def mean(xs):\n    if not xs:\n        return 0.0\n    return sum(xs) / len(xs)\n",
        "def mean(values):\n    if not values:\n        return 0.0\n    total = sum(values)\n    return total / len(values)\n",
    );
    assert_eq!(calc7, CALC_NOW);
    commit(d, &[("pkg/calc.py", &calc7)], "mean: clearer names");
    dir
}

fn log(dir: &Path) -> Vec<HistoryCommit> {
    parse_git_log(&git(dir, &["log", "--no-merges", "-p", GIT_LOG_FORMAT]))
}

fn current(dir: &Path) -> impl Fn(&str) -> Option<String> + '_ {
    move |p: &str| std::fs::read_to_string(dir.join(p)).ok()
}

#[test]
fn library_paths() {
    for p in ["pkg/calc.py", "src/pkg/sub/mod.py"] {
        assert!(is_library_path(p), "{p}");
    }
    for p in [
        "tests/test_calc.py",
        "pkg/tests/helpers.py",
        "conftest.py",
        "setup.py",
        "docs/conf.py",
        "README.md",
        "pyproject.toml",
        ".github/x.py",
    ] {
        assert!(!is_library_path(p), "{p}");
    }
}

#[test]
fn history_is_mirrored_and_test_only_commits_are_skipped() {
    let repo = history();
    let d = repo.path();
    let commits = log(d);
    assert_eq!(commits.len(), 7);
    assert_eq!(commits[0].message, "mean: clearer names");
    let head = git(d, &["rev-parse", "HEAD"]).trim().to_string();
    let options = MirrorOptions::new(smith_core::RepoRef::new("acme/calc", head.clone()));
    let by_message = |m: &str| commits.iter().find(|c| c.message == m).unwrap();

    // Test-only and docs-only commits (and the initial one, which only adds
    // files) are skipped without asking the model.
    let model = ScriptedModel::new(Vec::<String>::new());
    for m in ["tests: negative add", "docs: usage", "initial"] {
        let out = mirror_commit(by_message(m), &current(d), Some(&model), &options).unwrap();
        assert_eq!(
            out,
            MirrorOutcome::Skipped(MirrorSkip::NoLibraryChange),
            "{m}"
        );
    }
    assert!(model.requests().is_empty());

    // Still-matching reverses apply in process.
    let MirrorOutcome::Candidate {
        candidate,
        via_model,
    } = mirror_commit(
        by_message("clamp: accept bounds in either order"),
        &current(d),
        None,
        &options,
    )
    .unwrap()
    else {
        panic!("clamp commit not mirrored")
    };
    assert!(via_model.is_empty());
    assert_eq!(candidate.strategy, "pr_mirror");
    assert_eq!(candidate.base_commit, head);
    assert_eq!(candidate.entities, ["pkg/calc.py::clamp"]);
    let undone = candidate
        .patch
        .apply_to_text("pkg/calc.py", CALC_NOW)
        .unwrap();
    assert_eq!(
        undone,
        CALC_NOW.replace("    if lo > hi:\n        lo, hi = hi, lo\n", "")
    );

    // The empty-list commit no longer applies (the function was renamed
    // since): skipped without a model, rewritten by the model with one.
    let empty = by_message("mean of an empty list is 0");
    assert!(matches!(
        mirror_commit(empty, &current(d), None, &options).unwrap(),
        MirrorOutcome::Skipped(MirrorSkip::DoesNotApply(p)) if p == "pkg/calc.py"
    ));
    let model = ScriptedModel::new([format!("```python\n{CALC_NOW_WITHOUT_EMPTY_CHECK}```")]);
    let MirrorOutcome::Candidate {
        candidate,
        via_model,
    } = mirror_commit(empty, &current(d), Some(&model), &options).unwrap()
    else {
        panic!("model fallback not used")
    };
    assert_eq!(via_model, ["pkg/calc.py"]);
    assert_eq!(candidate.entities, ["pkg/calc.py::mean"]);
    let prompt = &model.requests()[0][0].content;
    assert!(
        prompt.contains("-    return sum(xs) / len(xs)") || prompt.contains("+    if not xs:"),
        "{prompt}"
    );
    assert!(prompt.contains("def mean(values):"), "{prompt}");

    // A model answer that is not code is a skip, not a candidate.
    let bad = ScriptedModel::new(["Sorry, I can't."]);
    assert!(matches!(
        mirror_commit(empty, &current(d), Some(&bad), &options).unwrap(),
        MirrorOutcome::Skipped(MirrorSkip::DoesNotApply(_))
    ));
}

/// A venv with pytest, made once under cargo's test scratch dir.
fn pytest_python() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pr-mirror-venv");
    let python = dir.join("bin/python");
    if python.exists() {
        return python;
    }
    let staging = dir.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&staging)
        .status()
        .unwrap()
        .success();
    assert!(ok, "python3 -m venv failed");
    let ok = Command::new(staging.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "pytest",
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok, "pip install pytest failed");
    // Another test process may have won the race; either venv works.
    if std::fs::rename(&staging, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    python
}

/// Failing test ids of a pytest run in `dir`.
fn failing_tests(python: &Path, dir: &Path) -> BTreeSet<String> {
    let out = Command::new(python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-rA",
            "-p",
            "no:cacheprovider",
            "tests",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("FAILED "))
        .map(|l| l.split(" - ").next().unwrap_or(l).to_string())
        .collect()
}

#[test]
fn mirrored_candidates_break_the_tests_of_their_commit() {
    let repo = history();
    let d = repo.path();
    let commits = log(d);
    let head = git(d, &["rev-parse", "HEAD"]).trim().to_string();
    let options = MirrorOptions::new(smith_core::RepoRef::new("acme/calc", head));
    let model = ScriptedModel::new([format!("```python\n{CALC_NOW_WITHOUT_EMPTY_CHECK}```")]);
    let (candidates, skipped) =
        mirror_history(&commits, &current(d), Some(&model), &options).unwrap();
    // 4 code commits mirrored; initial, tests-only and docs-only skipped.
    assert_eq!(candidates.len(), 4, "{skipped:?}");
    assert_eq!(skipped.get("no_library_change"), Some(&3), "{skipped:?}");

    let python = pytest_python();
    assert!(failing_tests(&python, d).is_empty(), "clean tree must pass");
    let by_entity = |e: &str| -> &Candidate {
        candidates
            .iter()
            .find(|c| c.entities == [e] && !c.description.contains("clearer names"))
            .unwrap()
    };
    let expect = [
        ("pkg/calc.py::add", "tests/test_calc.py::test_add_strings"),
        (
            "pkg/calc.py::clamp",
            "tests/test_calc.py::test_clamp_reversed_bounds",
        ),
        ("pkg/calc.py::mean", "tests/test_calc.py::test_mean_empty"),
    ];
    for (entity, test) in expect {
        let c = by_entity(entity);
        std::fs::write(d.join("bug.diff"), c.patch.as_str()).unwrap();
        git(d, &["apply", "bug.diff"]);
        let failing = failing_tests(&python, d);
        git(d, &["checkout", "--", "."]);
        assert_eq!(
            failing,
            BTreeSet::from([test.to_string()]),
            "{entity}:\n{}",
            c.patch
        );
    }
    // The pure refactoring commit mirrors into a change no test notices.
    let rename = candidates
        .iter()
        .find(|c| c.description.contains("clearer names"))
        .unwrap();
    std::fs::write(d.join("bug.diff"), rename.patch.as_str()).unwrap();
    git(d, &["apply", "bug.diff"]);
    assert!(failing_tests(&python, d).is_empty());
}
