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
