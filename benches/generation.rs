//! Candidate generation over the dev corpus (six real PyPI projects):
//! files/s, entities/s and candidates/s on one thread and on all cores.
//!
//! Fetches the corpus first (or finds it up to date) with smith's own
//! script, `scripts/corpus/fetch-corpus.sh -s dev target/smith-mutate-corpus`,
//! as the real-world test does. `cargo bench --bench generation`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_main, Criterion, Throughput};
use smith::mutate::{generate, procedural_mutators, python_files, GenerateOptions};

struct Project {
    root: PathBuf,
    files: Vec<String>,
}

fn corpus() -> Vec<Project> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cache = workspace.join("target/smith-mutate-corpus");
    let scripts = workspace.join("scripts/corpus");
    let fetched = Command::new("bash")
        .arg(scripts.join("fetch-corpus.sh"))
        .args(["-s", "dev"])
        .arg(&cache)
        .status()
        .expect("bash runs");
    assert!(
        fetched.success(),
        "fetching the dev corpus into {} failed",
        cache.display()
    );
    let manifest = std::fs::read_to_string(scripts.join("manifest.tsv"))
        .expect("the corpus manifest at scripts/corpus/manifest.tsv");
    let mut lines = manifest.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (name, src_dir, split) = (col("name"), col("src_dir"), col("split"));
    lines
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|row| row.get(split) == Some(&"dev"))
        .map(|row| {
            let root = cache.join(row[name]);
            assert!(
                root.is_dir(),
                "{} is missing after fetching the corpus",
                root.display()
            );
            let prefix = format!("{}/", row[src_dir]);
            let files = python_files(&root, &Default::default())
                .unwrap()
                .into_iter()
                .filter(|f| f.starts_with(&prefix))
                .collect();
            Project { root, files }
        })
        .collect()
}

/// (files, entities, candidates) of one pass over the corpus.
fn pass(corpus: &[Project], threads: usize) -> (usize, usize, usize) {
    let mutators = procedural_mutators();
    let options = GenerateOptions {
        threads: Some(threads),
        ..Default::default()
    };
    corpus.iter().fold((0, 0, 0), |(f, e, c), p| {
        let out = generate(
            &p.root,
            &smith::RepoRef::new("corpus/p", "0000000"),
            &p.files,
            &mutators,
            &options,
        )
        .unwrap();
        (f + out.files, e + out.entities, c + out.candidates.len())
    })
}

fn bench(c: &mut Criterion) {
    let corpus = corpus();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (files, entities, candidates) = pass(&corpus, 1);
    let mut group = c.benchmark_group("generate_dev_corpus");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(candidates as u64));
    for threads in [1, cores] {
        group.bench_function(format!("threads_{threads}"), |b| {
            b.iter(|| pass(&corpus, threads))
        });
    }
    group.finish();

    // The same numbers as rates of each unit, for the closing note.
    for threads in [1, cores] {
        let runs = 3;
        let start = Instant::now();
        for _ in 0..runs {
            pass(&corpus, threads);
        }
        let secs = start.elapsed().as_secs_f64() / runs as f64;
        println!(
            "threads={threads}: {secs:.3} s/pass | {files} files {:.0}/s | {entities} entities {:.0}/s | {candidates} candidates {:.0}/s",
            files as f64 / secs,
            entities as f64 / secs,
            candidates as f64 / secs,
        );
    }
}

mod group {
    // criterion_group! defines `pub fn benches` without a doc comment.
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
