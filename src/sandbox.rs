//! Choosing the sandbox that runs repository and model code: validation,
//! grading and gym episodes all take a [`SandboxKind`].
//!
//! The default, [`SandboxKind::Auto`], keeps the host read-only outside the
//! workspace: bubblewrap where it works, otherwise Docker where an engine
//! answers and the environment's image builds. Only when neither can run
//! does it fall back to the local sandbox, and then [`Chosen::warning`]
//! says so, once, for the caller to show.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use smith_core::{Result, Sandbox};
use smith_env::docker::docker_available;
use smith_env::{BwrapSandbox, DockerOptions, DockerSandbox, Environment, LocalSandbox};

/// Which sandbox runs the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxKind {
    /// Bubblewrap where it works, else Docker where it answers, else local
    /// with a warning.
    #[default]
    Auto,
    /// Temp-copy workspaces, no isolation of files or network.
    Local,
    /// Bubblewrap: read-only system, no network, no capabilities.
    Bwrap,
    /// Docker: a container per workspace.
    Docker,
}

/// The sandbox made for a [`SandboxKind`].
#[derive(Debug, Clone)]
pub struct Chosen {
    /// The sandbox.
    pub sandbox: Arc<dyn Sandbox>,
    /// Set when [`SandboxKind::Auto`] found no isolating sandbox and fell
    /// back to the local one: why, and what to do about it.
    pub warning: Option<String>,
}

impl SandboxKind {
    /// Make the sandbox of this kind over `env`. An explicit kind that
    /// cannot run here is an error naming why; `Auto` falls back.
    pub fn make(self, env: &Environment) -> Result<Chosen> {
        let chosen = |sandbox: Arc<dyn Sandbox>| Chosen {
            sandbox,
            warning: None,
        };
        match self {
            SandboxKind::Local => Ok(chosen(Arc::new(LocalSandbox::new(env)?))),
            SandboxKind::Bwrap => Ok(chosen(Arc::new(BwrapSandbox::new(env)?))),
            SandboxKind::Docker => Ok(chosen(Arc::new(DockerSandbox::new(
                env,
                DockerOptions::default(),
            )?))),
            SandboxKind::Auto => {
                let bwrap = match BwrapSandbox::new(env) {
                    Ok(sandbox) => return Ok(chosen(Arc::new(sandbox))),
                    Err(e) => e,
                };
                let docker = match docker_available(&DockerOptions::default().program)
                    .and_then(|()| DockerSandbox::new(env, DockerOptions::default()))
                {
                    Ok(sandbox) => return Ok(chosen(Arc::new(sandbox))),
                    Err(e) => e,
                };
                Ok(Chosen {
                    sandbox: Arc::new(LocalSandbox::new(env)?),
                    warning: Some(format!(
                        "no isolating sandbox works here, so repository and model code run \
                         on the host with --sandbox local (no isolation of files or network). \
                         bubblewrap: {bwrap}; docker: {docker}. Install bubblewrap \
                         (scripts/setup.sh), or pass --sandbox local to choose this knowingly."
                    )),
                })
            }
        }
    }
}
