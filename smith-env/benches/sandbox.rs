//! Per-run overhead of the sandboxes, the part of validation that is not the
//! tests themselves: making a workspace, apply + reset of a one-line patch,
//! and starting a trivial command (directly and under bubblewrap).

use criterion::{criterion_main, Criterion};
use smith_core::{CommandSpec, FileChange, Patch, RunOptions, Sandbox};
use smith_env::conformance::{fixture_environment, write_fixture};
use smith_env::{bwrap_works, BwrapOptions, BwrapSandbox, LocalSandbox};

fn sandboxes(repo: &std::path::Path) -> Vec<Box<dyn Sandbox>> {
    let env = fixture_environment(repo);
    let mut out: Vec<Box<dyn Sandbox>> = vec![Box::new(LocalSandbox::new(&env).unwrap())];
    if bwrap_works(&BwrapOptions::default()).is_ok() {
        out.push(Box::new(BwrapSandbox::new(&env).unwrap()));
    }
    out
}

fn bench(c: &mut Criterion) {
    let repo = tempfile::tempdir().unwrap();
    write_fixture(repo.path()).unwrap();
    let calc = std::fs::read_to_string(repo.path().join("pkg/calc.py")).unwrap();
    let patch = Patch::from_changes(&[FileChange::modified(
        "pkg/calc.py",
        calc.clone(),
        calc.replace("a + b", "a - b"),
    )]);
    let mut group = c.benchmark_group("sandbox");
    group.sample_size(20);
    for sandbox in sandboxes(repo.path()) {
        let name = sandbox.name().to_string();
        group.bench_function(format!("{name}/workspace"), |b| {
            b.iter(|| sandbox.workspace().unwrap())
        });
        let mut ws = sandbox.workspace().unwrap();
        group.bench_function(format!("{name}/apply_reset"), |b| {
            b.iter(|| {
                ws.apply(&patch).unwrap();
                ws.reset().unwrap();
            })
        });
        let cmd = CommandSpec::new("true", Vec::<String>::new());
        group.bench_function(format!("{name}/run_true"), |b| {
            b.iter(|| assert!(ws.run(&cmd, &RunOptions::default()).unwrap().success()))
        });
    }
    group.finish();
}

mod group {
    // criterion_group! defines `pub fn benches` without a doc comment.
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
