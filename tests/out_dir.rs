//! Output directories that cannot lie: a run inside the repository it reads
//! (`cd repo && smith run .`) never copies its output into the tree and
//! leaves the repository byte-identical; a run against another commit or
//! with other settings refuses to mix its records with an earlier run's; a
//! duplicated record counts once; a second run into a directory in use
//! stops at once; a full disk is an environment error naming the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cache_dir() -> PathBuf {
    manifest_dir().join("target/test-cache/envs")
}

/// `smith args...` run in `cwd`.
fn smith_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smith"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run smith")
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every file under `dir` but `skip` (relative path → bytes), `.git`
/// included, and every directory (→ empty), so that a file or directory
/// created, removed or changed anywhere shows.
fn snapshot(dir: &Path, skip: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p == skip {
                continue;
            }
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            if e.file_type().unwrap().is_dir() {
                out.insert(rel, None);
                stack.push(p);
            } else {
                out.insert(rel, Some(std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

/// What smith said: stderr, and stdout (where `--json` puts errors).
fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    )
}

fn json(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json on stdout")
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The demo repository copied to `dir/demo` and committed: a clean git
/// repository, as a user's checkout is.
fn demo_checkout(dir: &Path) -> PathBuf {
    let repo = dir.join("demo");
    copy_dir(&manifest_dir().join("examples/demo-repo"), &repo);
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "demo"]);
    repo
}

#[test]
fn a_run_inside_the_repository_keeps_its_output_out_of_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_checkout(dir.path());
    let head = git(&repo, &["rev-parse", "HEAD"]);
    let out = repo.join("smith-out");
    let before = snapshot(&repo, &out);
    let cache = cache_dir();
    // `cd repo && smith run .`, with the default output directory.
    let run = || {
        json(&smith_in(
            &repo,
            &[
                "--json",
                "run",
                ".",
                "--cache-dir",
                cache.to_str().unwrap(),
                "--max-candidates",
                "6",
                "--baseline-runs",
                "1",
                "--no-combine",
            ],
        ))
    };
    let first = run();
    assert_eq!(first["base_commit"], head.as_str(), "{first}");
    assert!(first["instances"].as_u64().unwrap() >= 1, "{first}");
    let tree: Value =
        serde_json::from_slice(&std::fs::read(out.join("repo.json")).unwrap()).unwrap();
    let root = PathBuf::from(tree["root"].as_str().unwrap());
    assert_eq!(root, out.canonicalize().unwrap().join("repo"));
    assert!(!root.join("smith-out").exists(), "the output was copied");
    for c in records(&out.join("candidates.jsonl")) {
        for e in c["entities"].as_array().unwrap() {
            assert!(!e.as_str().unwrap().starts_with("smith-out/"), "{e}");
        }
    }
    // A second run resumes in the same place.
    let second = run();
    assert_eq!(second["instances"], first["instances"], "{second}");
    assert_eq!(second["validated"], first["validated"], "{second}");
    // Nothing in the repository changed, `.git` included.
    assert!(
        snapshot(&repo, &out) == before,
        "the repository was written"
    );
}

#[test]
fn a_run_leaves_a_clean_repository_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_checkout(dir.path());
    let before = snapshot(&repo, &repo.join(".no-such"));
    let out = dir.path().join("out");
    let summary = json(&smith_in(
        dir.path(),
        &[
            "--json",
            "run",
            repo.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--cache-dir",
            cache_dir().to_str().unwrap(),
            "--max-candidates",
            "6",
            "--baseline-runs",
            "1",
        ],
    ));
    assert!(summary["instances"].as_u64().unwrap() >= 1, "{summary}");
    let after = snapshot(&repo, &repo.join(".no-such"));
    let changed: Vec<&PathBuf> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert!(
        changed.is_empty(),
        "written into the repository: {changed:?}"
    );
}

const PYPROJECT: &str = "[project]\nname = \"tiny\"\nversion = \"0.1\"\n\n[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n\n[tool.setuptools]\npackages = [\"tiny\"]\n";
const CALC: &str = "def add(a, b):\n    return a + b\n\n\ndef clamp(x, lo, hi):\n    if x < lo:\n        return lo\n    if x > hi:\n        return hi\n    return x\n";
const CALC_TESTS: &str = "from tiny.calc import add, clamp\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\ndef test_clamp():\n    assert clamp(5, 0, 3) == 3\n    assert clamp(-1, 0, 3) == 0\n    assert clamp(2, 0, 3) == 2\n\n\ndef test_other():\n    assert add(0, 0) == 0\n";

fn tiny_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("tiny");
    for (path, text) in [
        ("pyproject.toml", PYPROJECT),
        ("tiny/__init__.py", ""),
        ("tiny/calc.py", CALC),
        ("tests/test_calc.py", CALC_TESTS),
    ] {
        let p = repo.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    repo
}

#[test]
fn records_of_another_run_are_never_mixed_and_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let repo = tiny_repo(dir.path());
    let out = dir.path().join("out");
    let cache = cache_dir();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--json",
            "run",
            repo.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--max-candidates",
            "6",
            "--baseline-runs",
            "1",
            "--no-combine",
        ];
        args.extend(extra);
        smith_in(dir.path(), &args)
    };
    let first = json(&run(&[]));
    let kept = first["kept"].as_u64().unwrap();
    assert!(kept >= 1, "{first}");

    // A record written twice (two writers, a copy-paste) counts once.
    let validations = out.join("validations.jsonl");
    let instances = out.join("instances.jsonl");
    for path in [&validations, &instances] {
        let text = std::fs::read_to_string(path).unwrap();
        let kept_line = text
            .lines()
            .find(|l| !l.contains("\"verdict\":") || l.contains("\"verdict\":\"kept\""))
            .unwrap()
            .to_string();
        std::fs::write(path, format!("{text}{kept_line}\n")).unwrap();
    }
    let again = json(&run(&[]));
    for key in ["validated", "kept", "instances", "verdicts", "strategies"] {
        assert_eq!(again[key], first[key], "{key}: {again}");
    }

    // Another seed: refused, nothing written.
    let records_before = std::fs::read(&validations).unwrap();
    let refused = run(&["--seed", "1"]);
    let err = said(&refused);
    assert_eq!(refused.status.code(), Some(3), "{err}");
    assert!(
        err.contains("seed 0 → 1") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(&validations).unwrap(), records_before);

    // A changed repository: refused, and the earlier run's tree stays.
    let old_commit = first["base_commit"].as_str().unwrap().to_string();
    std::fs::write(
        repo.join("tiny/calc.py"),
        format!("{CALC}\n\ndef double(x):\n    return 2 * x\n"),
    )
    .unwrap();
    let refused = run(&[]);
    let err = said(&refused);
    assert_eq!(refused.status.code(), Some(3), "{err}");
    assert!(err.contains("base commit"), "{err}");
    assert_eq!(git(&out.join("repo"), &["rev-parse", "HEAD"]), old_commit);
    assert_eq!(std::fs::read(&validations).unwrap(), records_before);

    // --force starts afresh: every record is of the new commit.
    let fresh = json(&run(&["--force"]));
    let new_commit = fresh["base_commit"].as_str().unwrap();
    assert_ne!(new_commit, old_commit);
    for path in [&validations, &instances, &out.join("candidates.jsonl")] {
        for r in records(path) {
            let commit = r
                .get("base_commit")
                .and_then(Value::as_str)
                .map(str::to_string);
            if let Some(commit) = commit {
                assert_eq!(commit, new_commit, "{}: {r}", path.display());
            }
            let id = r["candidate_id"]
                .as_str()
                .or(r["id"].as_str())
                .unwrap()
                .to_string();
            assert!(!id.is_empty());
        }
    }
    let candidates: Vec<String> = records(&out.join("candidates.jsonl"))
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    for v in records(&validations) {
        assert!(
            candidates.contains(&v["candidate_id"].as_str().unwrap().to_string()),
            "a validation of the old tree survived: {v}"
        );
    }
    assert_eq!(
        fresh["validated"].as_u64().unwrap() as usize,
        records(&validations).len()
    );
}

#[test]
fn a_second_run_into_a_directory_in_use_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let repo = tiny_repo(dir.path());
    let out = dir.path().join("out");
    let cache = cache_dir();
    let args = [
        "run",
        repo.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--baseline-runs",
        "1",
    ];
    let first_log = dir.path().join("first.log");
    let mut first = Command::new(env!("CARGO_BIN_EXE_smith"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&first_log).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !out.join("smith-run.json").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never started"
        );
        assert!(first.try_wait().unwrap().is_none(), "the first run ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = smith_in(dir.path(), &args);
    let still_running = first.try_wait().unwrap().is_none();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!("another smith process (pid {})", first.id())),
        "{err}"
    );
    assert!(
        still_running,
        "the first run ended before the second was refused"
    );
    let status = first.wait().unwrap();
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&first_log).unwrap_or_default()
    );
    // The first run's records are whole: every line parses, each id once.
    let validations = records(&out.join("validations.jsonl"));
    let mut ids: Vec<&str> = validations
        .iter()
        .map(|v| v["candidate_id"].as_str().unwrap())
        .collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n);
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success())
            .then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Disk full in the middle of validation: the run stops with the
/// environment's exit code and names the file it could not write. As root
/// the output directory is a small tmpfs that the test fills once the first
/// validation record is written; otherwise a record file the run writes is
/// a link to `/dev/full`, which fails every write with `ENOSPC`.
#[test]
fn a_full_disk_is_an_environment_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_dir();
    let demo = manifest_dir().join("examples/demo-repo");
    let run_into = |out: &Path| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_smith"));
        cmd.args(["run"])
            .arg(&demo)
            .arg("--out")
            .arg(out)
            .arg("--cache-dir")
            .arg(&cache)
            .args(["--max-candidates", "60", "--baseline-runs", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    };
    let (out, err) = if is_root() {
        let fs = Tmpfs::mount(&dir.path().join("fs"), "32m").expect("mount a tmpfs as root");
        let out = fs.0.join("out");
        let mut child = run_into(&out).spawn().unwrap();
        let validations = out.join("validations.jsonl");
        let started = Instant::now();
        while std::fs::read_to_string(&validations).map_or(0, |t| t.lines().count()) < 1 {
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "never validated"
            );
            assert!(child.try_wait().unwrap().is_none(), "the run ended early");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Fill the disk.
        let mut filler = std::fs::File::create(fs.0.join("filler")).unwrap();
        let block = vec![0u8; 1 << 16];
        while std::io::Write::write_all(&mut filler, &block).is_ok() {}
        let output = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(4), "{err}");
        (out, err)
    } else {
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        std::os::unix::fs::symlink("/dev/full", out.join("baseline.tmp")).unwrap();
        let output = run_into(&out).output().unwrap();
        let err = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(4), "{err}");
        (out, err)
    };
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains(out.to_str().unwrap()), "{err}");
}

#[test]
fn two_out_dirs_share_the_environment_and_give_identical_instances() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_checkout(dir.path());
    let cache = cache_dir();
    let run = |out: &Path| {
        json(&smith_in(
            dir.path(),
            &[
                "--json",
                "run",
                repo.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--cache-dir",
                cache.to_str().unwrap(),
                "--max-candidates",
                "6",
                "--baseline-runs",
                "1",
                "--no-combine",
            ],
        ))
    };
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let first = run(&one);
    let second = run(&two);
    // Each run snapshots the repository into its own out dir; the venv is
    // keyed by content, so the second run finds the first one's.
    assert_eq!(second["env_reused"], true, "{second}");
    // The stage table: every stage that had work took time, and the
    // stages account for the invocation's wall time.
    for summary in [&first, &second] {
        let stages = &summary["stages"];
        for stage in [
            "environment",
            "baseline_and_coverage",
            "generate",
            "validate",
        ] {
            assert!(stages[stage].as_f64().unwrap() > 0.0, "{stage}: {summary}");
        }
        let sum: f64 = stages
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .sum();
        let total = summary["seconds"].as_f64().unwrap();
        assert!(
            sum <= total && sum > 0.9 * total,
            "{sum} of {total}: {summary}"
        );
    }
    let venv = |out: &Path| {
        let env: Value =
            serde_json::from_slice(&std::fs::read(out.join("env.json")).unwrap()).unwrap();
        assert!(env["venv"]
            .as_str()
            .unwrap()
            .starts_with(cache.to_str().unwrap()));
        env["venv"].clone()
    };
    assert_eq!(venv(&one), venv(&two));
    let env: Value = serde_json::from_slice(&std::fs::read(two.join("env.json")).unwrap()).unwrap();
    assert_eq!(env["reused"], true, "{env}");
    // The same tasks.
    let tasks = |out: &Path| -> Vec<String> {
        let mut v: Vec<String> = records(&out.join("instances.jsonl"))
            .into_iter()
            .map(|i| {
                format!(
                    "{} {} {} {}",
                    i["instance_id"], i["patch"], i["FAIL_TO_PASS"], i["PASS_TO_PASS"]
                )
            })
            .collect();
        v.sort();
        v
    };
    assert!(!tasks(&one).is_empty(), "{first}");
    assert_eq!(tasks(&one), tasks(&two));
    assert_eq!(first["instances"], second["instances"]);
    // Where validation time went: every candidate validated is timed, and
    // the runs are counted by how they ran.
    let phases = &second["phases"];
    assert_eq!(phases["candidates"], second["validated"], "{phases}");
    assert!(phases["test_runs"].as_f64().unwrap() > 0.0, "{phases}");
    let runs = &second["runs"];
    let mut total = 0;
    for kind in ["collected", "plain", "fresh"] {
        let k = &runs[kind];
        total += k["runs"].as_u64().unwrap();
        assert!(
            k["test_seconds"].as_f64().unwrap() <= k["seconds"].as_f64().unwrap() + 1e-6,
            "{runs}"
        );
    }
    assert!(total >= 1, "{runs}");
}
