//! `smith export --git`: a SWE-smith-style mirror of the demo run's tasks,
//! checked with plain git.

mod common;

use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
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

#[test]
fn export_writes_a_branch_per_instance_with_bug_then_hidden_tests() {
    let run = common::demo_run();
    let instances = common::demo_instances();
    let chosen = &instances[..3];
    let dir = tempfile::tempdir().unwrap();
    let picked = dir.path().join("picked.jsonl");
    smith::store::write_jsonl(&picked, chosen).unwrap();
    let mirror = dir.path().join("mirror");
    let out = Command::new(env!("CARGO_BIN_EXE_smith"))
        .args(["--json", "export", "--git"])
        .arg(&mirror)
        .arg("--run-dir")
        .arg(run)
        .arg("--instances")
        .arg(&picked)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: smith::export::ExportSummary = serde_json::from_slice(&out.stdout).unwrap();
    assert!(summary.skipped.is_empty(), "{:?}", summary.skipped);
    assert_eq!(summary.branches.len(), 3);

    // main is the clean tree the tasks were made from.
    let repo: smith::repo::RepoInfo = smith::store::read_json(&run.join("repo.json"))
        .unwrap()
        .unwrap();
    assert_eq!(git(&mirror, &["rev-parse", "main"]), repo.base_commit);
    assert_eq!(git(&mirror, &["status", "--porcelain"]), "");

    for inst in chosen {
        let b = inst.instance_id.as_str();
        assert_eq!(
            git(&mirror, &["rev-parse", &format!("{b}~2")]),
            repo.base_commit
        );
        assert_eq!(
            git(&mirror, &["log", "--format=%s", &format!("main..{b}")]),
            format!(
                "{}\n{}",
                smith::export::REMOVE_TESTS_COMMIT_MESSAGE,
                smith::export::BUG_COMMIT_MESSAGE
            )
        );
        // The first commit is the bug: the files it touches, and applying
        // its reverse gives back main's tree.
        let touched = git(
            &mirror,
            &["diff", "--name-only", &format!("{b}~2"), &format!("{b}~1")],
        );
        let theirs: Vec<String> = touched.lines().map(str::to_string).collect();
        let mut ours = smith::Patch::from_text(inst.patch.clone()).paths().unwrap();
        ours.sort();
        assert_eq!(theirs, ours);
        // The second removes the F2P test files and nothing else.
        let mut want: Vec<&str> = inst.fail_to_pass.iter().map(|t| t.file()).collect();
        want.sort_unstable();
        want.dedup();
        let removed = git(&mirror, &["diff", "--name-status", &format!("{b}~1"), b]);
        let got: Vec<String> = removed.lines().map(str::to_string).collect();
        let want: Vec<String> = want.iter().map(|f| format!("D\t{f}")).collect();
        assert_eq!(got, want);

        // Checked out, the tests are gone; HEAD~1 brings them back.
        git(&mirror, &["checkout", "-q", b]);
        let test_file = inst.fail_to_pass[0].file();
        assert!(!mirror.join(test_file).exists());
        git(&mirror, &["checkout", "-q", "HEAD~1", "--", "."]);
        assert!(mirror.join(test_file).exists());
        git(&mirror, &["checkout", "-q", "-f", "main"]);
    }

    // Exporting again rewrites the branches in place.
    let again = smith::export::export_git(&repo, chosen, &mirror).unwrap();
    assert_eq!(again.branches, summary.branches);
}

fn smith_export(cwd: &Path, args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_smith"))
        .args(["export", "--git"])
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

/// `export --git` takes a relative path with directories in it, finds the
/// run from the instances file, and never overwrites work it did not write:
/// uncommitted changes, untracked files, commits on `main`, or a repository
/// that is not its mirror.
#[test]
fn export_takes_relative_paths_and_keeps_work_it_did_not_write() {
    let run = common::demo_run();
    let instances = run.join("instances.jsonl");
    let dir = tempfile::tempdir().unwrap();
    let export = |args: &[&std::ffi::OsStr]| smith_export(dir.path(), args);
    let into_mirror = [
        "export/mirror".as_ref(),
        "--instances".as_ref(),
        instances.as_os_str(),
    ];
    let out = export(&into_mirror);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mirror = dir.path().join("export/mirror");
    let repo: smith::repo::RepoInfo = smith::store::read_json(&run.join("repo.json"))
        .unwrap()
        .unwrap();
    assert_eq!(git(&mirror, &["rev-parse", "main"]), repo.base_commit);
    // No stray clone beside it.
    let entries: Vec<_> = std::fs::read_dir(dir.path().join("export"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, ["mirror"]);

    let refused = |what: &str, expect: &str| {
        let out = export(&into_mirror);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{what}: {err}");
        assert!(err.contains(expect), "{what}: {err}");
    };
    // Local work in the mirror: an untracked file, a changed file.
    std::fs::write(mirror.join("notes.txt"), "mine\n").unwrap();
    refused("untracked file", "untracked");
    assert_eq!(
        std::fs::read_to_string(mirror.join("notes.txt")).unwrap(),
        "mine\n"
    );
    std::fs::remove_file(mirror.join("notes.txt")).unwrap();
    std::fs::write(mirror.join("README.md"), "changed\n").unwrap();
    refused("changed file", "uncommitted");
    assert_eq!(
        std::fs::read_to_string(mirror.join("README.md")).unwrap(),
        "changed\n"
    );
    // Committed on main.
    git(
        &mirror,
        &[
            "-c",
            "user.name=u",
            "-c",
            "user.email=u@u",
            "commit",
            "-qam",
            "mine",
        ],
    );
    let mine = git(&mirror, &["rev-parse", "main"]);
    refused("a commit on main", "committed on it");
    assert_eq!(git(&mirror, &["rev-parse", "main"]), mine);
    // Moved to a branch of its own, main back where smith left it: allowed.
    git(&mirror, &["branch", "-q", "mine", "main"]);
    git(&mirror, &["reset", "-q", "--hard", &repo.base_commit]);
    let out = export(&into_mirror);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(git(&mirror, &["rev-parse", "mine"]), mine);

    // A repository smith did not write.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    git(&other, &["init", "-q", "-b", "main"]);
    std::fs::write(other.join("x"), "x\n").unwrap();
    git(&other, &["add", "-A"]);
    git(
        &other,
        &[
            "-c",
            "user.name=u",
            "-c",
            "user.email=u@u",
            "commit",
            "-qm",
            "x",
        ],
    );
    let out = export(&[
        "other".as_ref(),
        "--instances".as_ref(),
        instances.as_os_str(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("did not write"), "{err}");
    assert_eq!(git(&other, &["log", "--format=%s"]), "x");
}
