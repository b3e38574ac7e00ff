//! Properties over real code — the bundled demo repository and the dev
//! corpus of six PyPI projects — rather than hand-made fixtures.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::prelude::*;
use smith_core::Shard;
use smith_mutate::{
    generate, procedural_mutators, procedural_names, python_files, GenerateOptions, Generated,
};

fn run(root: &Path, files: &[String], options: &GenerateOptions) -> Generated {
    generate(
        root,
        &smith_core::RepoRef::new("acme/demo", "0123abcd"),
        files,
        &procedural_mutators(),
        options,
    )
    .unwrap()
}

#[test]
fn demo_repo_yields_many_candidates_that_git_applies() {
    let root = common::demo_repo();
    let files = python_files(&root, &Default::default()).unwrap();
    assert!(files.iter().all(|f| f.starts_with("src/")), "{files:?}");
    let out = run(&root, &files, &GenerateOptions::default());
    assert!(out.skipped.is_empty(), "{:?}", out.skipped);
    assert!(out.candidates.len() >= 100, "{}", out.candidates.len());
    let strategies: BTreeSet<&str> = out.candidates.iter().map(|c| c.strategy.as_str()).collect();
    assert!(strategies.len() >= 24, "{strategies:?}");
    common::check_in_process(&root, &out.candidates);
    common::check_git_apply(&root, &out.candidates);
}

#[test]
fn output_is_the_same_whatever_the_thread_count() {
    let root = common::demo_repo();
    let files = python_files(&root, &Default::default()).unwrap();
    let ids = |threads, seed| {
        let options = GenerateOptions {
            threads: Some(threads),
            seed,
            ..Default::default()
        };
        run(&root, &files, &options)
            .candidates
            .into_iter()
            .map(|c| c.id)
            .collect::<Vec<_>>()
    };
    let one = ids(1, 7);
    assert_eq!(one, ids(3, 7));
    assert_eq!(one, ids(1, 7));
    assert_ne!(one, ids(2, 8), "another seed picks other sites");
}

#[test]
fn shards_partition_the_candidates() {
    let root = common::demo_repo();
    let files = python_files(&root, &Default::default()).unwrap();
    let all: BTreeSet<String> = run(&root, &files, &GenerateOptions::default())
        .candidates
        .into_iter()
        .map(|c| c.id)
        .collect();
    let mut union = BTreeSet::new();
    for index in 0..3 {
        let options = GenerateOptions {
            shard: Shard { index, count: 3 },
            ..Default::default()
        };
        for c in run(&root, &files, &options).candidates {
            assert!(union.insert(c.id), "a candidate is in two shards");
        }
    }
    assert_eq!(union, all);
}

#[test]
fn options_cap_and_select() {
    let root = common::demo_repo();
    let files = python_files(&root, &Default::default()).unwrap();
    let options = GenerateOptions {
        strategies: Some(vec!["func_pm_op_swap".into(), "func_pm_remove_cond".into()]),
        max_per_entity: Some(1),
        max_candidates: Some(25),
        ..Default::default()
    };
    let out = run(&root, &files, &options);
    assert_eq!(out.candidates.len(), 25);
    assert_eq!(out.stats.len(), 2);
    let mut per_site: BTreeMap<(String, String), usize> = BTreeMap::new();
    for c in &out.candidates {
        *per_site
            .entry((c.entities[0].clone(), c.strategy.clone()))
            .or_default() += 1;
    }
    assert!(per_site.values().all(|n| *n == 1), "{per_site:?}");
    let unknown = GenerateOptions {
        strategies: Some(vec!["func_pm_nonsense".into()]),
        ..Default::default()
    };
    let err = generate(
        &root,
        &smith_core::RepoRef::new("a/b", "c"),
        &files,
        &procedural_mutators(),
        &unknown,
    )
    .unwrap_err();
    assert!(err.to_string().contains("func_pm_nonsense"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// For any seed, subset of strategies and cap: every candidate applies,
    /// parses and reverses, and no (entity, strategy) exceeds the cap.
    #[test]
    fn any_seed_and_selection_gives_valid_candidates(
        seed in any::<u64>(),
        pick in proptest::collection::vec(any::<bool>(), procedural_names().len()),
        cap in 1usize..4,
    ) {
        let root = common::demo_repo();
        let files = python_files(&root, &Default::default()).unwrap();
        let strategies: Vec<String> = procedural_names()
            .into_iter()
            .zip(&pick)
            .filter(|(_, keep)| **keep)
            .map(|(n, _)| n.to_string())
            .collect();
        let options = GenerateOptions {
            seed,
            strategies: Some(strategies.clone()),
            max_per_entity: Some(cap),
            ..Default::default()
        };
        let out = run(&root, &files, &options);
        let mut per_site: BTreeMap<(String, String), usize> = BTreeMap::new();
        for c in &out.candidates {
            prop_assert!(strategies.contains(&c.strategy));
            *per_site.entry((c.entities[0].clone(), c.strategy.clone())).or_default() += 1;
        }
        prop_assert!(per_site.values().all(|n| *n <= cap));
        common::check_in_process(&root, &out.candidates);
    }
}

/// The dev corpus, fetched (or found up to date) by smith's own copy of
/// the corpus script (`scripts/corpus/`) into a cache under `target/`.
fn corpus() -> (PathBuf, Vec<(String, String)>) {
    let corpus = common::workspace().join("scripts/corpus");
    let script = corpus.join("fetch-corpus.sh");
    let cache = common::workspace().join("target/smith-mutate-corpus");
    let out = Command::new("bash")
        .arg(&script)
        .args(["-s", "dev"])
        .arg(&cache)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "fetching the dev corpus failed (network down?); run {} -s dev {} by hand to see why:\n{}{}",
        script.display(),
        cache.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = std::fs::read_to_string(corpus.join("manifest.tsv")).unwrap();
    let mut lines = manifest.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (name, src_dir, split) = (col("name"), col("src_dir"), col("split"));
    let projects = lines
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|row| row.get(split) == Some(&"dev"))
        .map(|row| (row[name].to_string(), row[src_dir].to_string()))
        .collect();
    (cache, projects)
}

#[test]
fn dev_corpus_candidates_apply_parse_and_reverse() {
    let (cache, projects) = corpus();
    assert_eq!(projects.len(), 6, "{projects:?}");
    for (name, src_dir) in projects {
        let root = cache.join(&name);
        let prefix = format!("{src_dir}/");
        let files: Vec<String> = python_files(&root, &Default::default())
            .unwrap()
            .into_iter()
            .filter(|f| f.starts_with(&prefix))
            .collect();
        assert!(!files.is_empty(), "{name}: no files under {src_dir}");
        // One candidate per (entity, strategy) keeps the git checks to a
        // minute on two cores; every candidate of the run is checked.
        let options = GenerateOptions {
            max_per_entity: Some(1),
            ..Default::default()
        };
        let out = run(&root, &files, &options);
        assert!(out.skipped.is_empty(), "{name}: {:?}", out.skipped);
        assert!(
            out.candidates.len() >= 10 * files.len().min(10),
            "{name}: only {} candidates from {} files",
            out.candidates.len(),
            files.len()
        );
        common::check_in_process(&root, &out.candidates);
        common::check_git_apply(&root, &out.candidates);
    }
}
