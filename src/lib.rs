//! smith turns real Python repositories into software-engineering training
//! tasks: it builds one environment per repository, plants thousands of bugs
//! in it, keeps those that break tests that passed before, and writes an
//! issue for each, in the SWE-bench / SWE-smith task schema.
//!
//! This crate is the facade: it re-exports the member crates and runs the
//! pipeline over them. The `smith` command line (feature `cli`) is one client
//! of it.
//!
//! | crate | what it does |
//! |---|---|
//! | [`core`] (`smith-core`) | data model and plug-point traits |
//! | [`mutate`] (`smith-mutate`) | Python parsing, entities, procedural mutators |
//! | [`validate`] (`smith-validate`) | pytest executor, baseline, coverage selection, classification |
//! | [`issue`] (`smith-issue`) | problem statements and leak check |
//! | [`env`](mod@env) (`smith-env`) | Python environments and sandboxes |
//!
//! ```no_run
//! use smith::pipeline::{Config, Pipeline};
//!
//! let mut config = Config::new("examples/demo-repo", "smith-out/demo");
//! config.max_candidates = Some(60);
//! let summary = Pipeline::new(config).run()?;
//! println!("{} tasks in {}", summary.instances, summary.instances_path.display());
//! # Ok::<(), smith::Error>(())
//! ```

pub use smith_core as core;
pub use smith_core::*;
pub use smith_env as env;
pub use smith_issue as issue;
pub use smith_mutate as mutate;
pub use smith_validate as validate;

pub mod export;
pub mod grade;
pub mod gym;
pub mod history;
pub mod pipeline;
pub mod repo;
pub mod rollout;
pub mod sandbox;
pub mod store;
