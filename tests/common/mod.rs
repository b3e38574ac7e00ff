//! Helpers shared by the grading, compatibility and export tests: one small
//! pipeline run on the demo repository, made once and reused by every test
//! binary through a directory under `target/` guarded by a file lock.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use smith::pipeline::{Config, Pipeline};
use smith::TaskInstance;

/// The crate root.
pub(crate) fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Shared virtualenv cache for the demo repository.
pub(crate) fn env_cache() -> PathBuf {
    manifest_dir().join("target/test-cache/envs")
}

/// The pipeline output directory of a small run on the demo repository.
/// A run that is already there is resumed (nothing is redone).
pub(crate) fn demo_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let out = manifest_dir().join("target/test-cache/grade-demo-run");
        std::fs::create_dir_all(&out).unwrap();
        // Several test binaries may want the run at once; one makes it.
        let lock = std::fs::File::create(out.with_extension("lock")).unwrap();
        lock.lock().unwrap();
        let mut config = Config::new(manifest_dir().join("examples/demo-repo"), &out);
        config.cache_dir = Some(env_cache());
        config.max_candidates = Some(14);
        config.baseline_runs = 1;
        config.workers = 2;
        Pipeline::new(config).run().expect("demo pipeline runs");
        lock.unlock().unwrap();
        out
    })
}

/// The instances of the demo run.
pub(crate) fn demo_instances() -> Vec<TaskInstance> {
    smith::store::read_jsonl(&demo_run().join("instances.jsonl")).unwrap()
}
