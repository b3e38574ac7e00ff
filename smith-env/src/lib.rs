//! Python environments and sandboxes for smith.
//!
//! [`build_environment`] turns a repository directory into a ready venv: it
//! reads a user-written [`EnvSpec`] (`smith-env.toml`) or detects one
//! (PEP 621 extras and PEP 735 groups that name tests, all together first,
//! setup.cfg extras, requirements files, tox/nox deps, a plain editable
//! install), installs with uv or pip from a scratch copy of the repository
//! (never writing into it), always adds pytest (at the version the project
//! declares) and coverage, and checks that pytest collects tests in a
//! workspace of the sandbox [`EnvOptions::sandbox`] names, through a plugin
//! of smith's ([`collect_in`]) rather than pytest's terminal output. When a
//! project's conftest needs hooks an older pytest had, the check is retried
//! under older releases; the version that worked is
//! [`Environment::pytest_version`]. The result is cached by the
//! repository's packaging files.
//!
//! The sandboxes implement [`smith_core::Sandbox`]: [`LocalSandbox`] copies
//! the repository into temp directories and runs commands on the host;
//! [`BwrapSandbox`] runs them under bubblewrap (user namespace without
//! capabilities, read-only system, no network, own PID namespace);
//! [`DockerSandbox`] in long-lived containers of the repository's image
//! ([`build_image`]). Every command's whole process tree is
//! held to a [`Budget`] and ends with it ([`budget`]); patches and writes
//! never leave the workspace, not even through symbolic links
//! ([`tree`]). [`conformance`] is the test suite every sandbox passes.
//!
//! ```no_run
//! use smith_core::{RunOptions, Sandbox};
//! use smith_env::{build_environment, EnvOptions, LocalSandbox};
//!
//! # fn main() -> smith_core::Result<()> {
//! let env = build_environment("path/to/repo".as_ref(), &EnvOptions::default())?;
//! let sandbox = LocalSandbox::new(&env)?;
//! let mut ws = sandbox.workspace()?;
//! let out = ws.run(&env.test_command(), &RunOptions::default())?;
//! assert!(out.success());
//! # Ok(()) }
//! ```

pub mod agent;
pub mod budget;
mod build;
mod bwrap;
mod collect;
pub mod conformance;
pub mod detect;
pub mod docker;
pub mod image;
mod local;
pub mod process;
mod service;
mod spec;
pub mod tree;

pub use agent::{install_with_agent, AgentOptions, AgentOutcome, AgentStep};
pub use budget::{Budget, Enforcement};
pub use build::{
    build_environment, build_environment_with, default_cache_dir, find_or_install_uv, BuildStep,
    EnvOptions, EnvSandbox, Environment, Installer, STAMP_FILE,
};
pub use bwrap::{
    bwrap_works, BwrapOptions, BwrapRunner, BwrapSandbox, BwrapWorkspace, SANDBOX_UID,
};
pub use collect::{collect_in, plugin_module, Collection};
pub use docker::{DockerOptions, DockerSandbox};
pub use image::{build_image, image_name_for, Image, ImageOptions, LOCAL_BASE_IMAGE};
pub use local::{LocalRunner, LocalSandbox, LocalWorkspace};
pub use service::ChildService;
pub use spec::{default_test_cmd, requirement_name, shell_quote, EnvSpec, SPEC_FILE_NAMES};
pub use tree::{Runner, TreeWorkspace};
