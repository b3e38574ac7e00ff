//! The environment stage leaves the input repository byte-identical, and
//! with the bubblewrap sandbox the project's code it imports to check
//! collection cannot write outside its workspace either.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use smith_env::{
    build_environment, bwrap_works, BwrapOptions, EnvOptions, EnvSandbox, Environment,
};

/// Every file and symlink under `root` (`.git` included) with its bytes.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if kind.is_dir() {
                out.insert(rel.join(""), Vec::new());
                walk(root, &path, out);
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(rel, target.as_os_str().as_encoded_bytes().to_vec());
            } else {
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=smith",
            "-c",
            "user.email=smith@example.invalid",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `leaves-no-trace` fixture as a git repository tagged `v1.2.3`, its
/// conftest told to write to `targets` as well.
fn tagged_fixture(targets: &[&Path]) -> tempfile::TempDir {
    let repo = common::copy_fixture("leaves-no-trace");
    let lines: Vec<String> = targets.iter().map(|t| t.display().to_string()).collect();
    std::fs::write(repo.path().join("probe_targets.txt"), lines.join("\n")).unwrap();
    git(repo.path(), &["init", "--quiet"]);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "--quiet", "-m", "fixture"]);
    git(repo.path(), &["tag", "v1.2.3"]);
    repo
}

fn installed_version(env: &Environment) -> String {
    let out = common::run_in_workspace(
        env,
        &[
            "-c",
            "import importlib.metadata as m; print(m.version('trace-demo'))",
        ],
    );
    assert!(out.success(), "{}", out.stderr);
    out.stdout.trim().to_string()
}

#[test]
fn building_leaves_the_input_repository_byte_identical() {
    let repo = tagged_fixture(&[]);
    let before = snapshot(repo.path());
    let env = build_environment(repo.path(), &EnvOptions::new(common::cache_dir()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(env.collected, Some(1), "{:#?}", env.steps);
    let after = snapshot(repo.path());
    let added: Vec<&PathBuf> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let changed: Vec<&PathBuf> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        added.is_empty() && changed.is_empty(),
        "added {added:?}, changed or removed {changed:?}"
    );
    // The build saw the repository's git history: the version comes from
    // its tag, as it would in the repository itself.
    assert_eq!(installed_version(&env), "1.2.3");
    // The version module the build wrote into its tree is laid over every
    // workspace, so the package imports from a copy of the repository.
    assert_eq!(env.generated, ["src/trace_demo/_version.py"]);
    let out = common::run_in_workspace(
        &env,
        &["-c", "import trace_demo; print(trace_demo.__version__)"],
    );
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "1.2.3");
    let _ = std::fs::remove_dir_all(&env.venv);
}

#[test]
fn under_bubblewrap_the_collection_check_writes_nowhere_outside_its_workspace() {
    bwrap_works(&BwrapOptions::default()).expect("bubblewrap (scripts/setup.sh installs it)");
    let home = PathBuf::from(std::env::var_os("HOME").expect("HOME"));
    let repo_dir = tempfile::Builder::new()
        .prefix("smith-env-no-trace-")
        .tempdir()
        .unwrap();
    let probe_name = format!(
        "smith-env-probe-{}",
        repo_dir.path().file_name().unwrap().to_string_lossy()
    );
    let in_home = home.join(&probe_name);
    let repo = tagged_fixture(&[&in_home, &repo_dir.path().join("probe")]);
    let in_repo = repo.path().join("outside-write.txt");
    // The conftest reads its targets from the workspace copy; add the
    // original repository's own path (known only now) to them.
    let mut targets = std::fs::read_to_string(repo.path().join("probe_targets.txt")).unwrap();
    targets.push('\n');
    targets.push_str(&in_repo.display().to_string());
    std::fs::write(repo.path().join("probe_targets.txt"), targets).unwrap();
    git(repo.path(), &["commit", "--quiet", "-am", "targets"]);
    let before = snapshot(repo.path());

    let mut options = EnvOptions::new(common::cache_dir());
    options.sandbox = EnvSandbox::Bwrap(BwrapOptions::default());
    let env = build_environment(repo.path(), &options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(env.collected, Some(1), "{:#?}", env.steps);
    assert!(!in_home.exists(), "the check wrote {}", in_home.display());
    assert!(!in_repo.exists(), "the check wrote {}", in_repo.display());
    assert!(
        !repo_dir.path().join("probe").exists(),
        "the check wrote into another directory of the host"
    );
    assert_eq!(snapshot(repo.path()), before);

    // The same fixture built with the local sandbox does write to the home
    // directory (the check imports the conftest on the host): the probe
    // above is one that would have shown a write.
    let mut local = EnvOptions::new(common::cache_dir());
    local.rebuild = true;
    let env_local = build_environment(repo.path(), &local).unwrap();
    let wrote = in_home.exists();
    let _ = std::fs::remove_file(&in_home);
    let _ = std::fs::remove_file(&in_repo);
    assert!(wrote, "the probe never wrote, so it shows nothing");
    let _ = std::fs::remove_dir_all(&env.venv);
    let _ = std::fs::remove_dir_all(&env_local.venv);
}
