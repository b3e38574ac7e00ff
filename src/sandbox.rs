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
use smith_env::{
    bwrap_works, image_name_for, BwrapOptions, BwrapSandbox, DockerOptions, DockerSandbox,
    EnvSandbox, Environment, LocalSandbox,
};

use crate::repo::RepoInfo;

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
    /// Docker: a long-lived container of the repository's image per
    /// workspace (per worker).
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
        self.make_with(env, DockerOptions::default())
    }

    /// [`SandboxKind::make`] for the repository `repo`: a Docker sandbox
    /// runs (and builds, if needed) the image its instances name
    /// (`image_name`, [`image_name_for`]).
    pub fn make_for(self, env: &Environment, repo: &RepoInfo) -> Result<Chosen> {
        self.make_with(env, docker_options_for(repo))
    }

    /// [`SandboxKind::make`] with these Docker settings.
    pub fn make_with(self, env: &Environment, docker: DockerOptions) -> Result<Chosen> {
        let chosen = |sandbox: Arc<dyn Sandbox>| Chosen {
            sandbox,
            warning: None,
        };
        match self {
            SandboxKind::Local => Ok(chosen(Arc::new(LocalSandbox::new(env)?))),
            SandboxKind::Bwrap => Ok(chosen(Arc::new(BwrapSandbox::new(env)?))),
            SandboxKind::Docker => Ok(chosen(Arc::new(DockerSandbox::new(env, docker)?))),
            SandboxKind::Auto => auto(env, BwrapOptions::default(), docker),
        }
    }
}

/// Docker settings for `repo`: its image is the one its instances name.
/// `SMITH_BASE_IMAGE`, when set, names the base to build it on.
pub fn docker_options_for(repo: &RepoInfo) -> DockerOptions {
    DockerOptions {
        image: Some(image_name_for(&repo.name, &repo.base_commit)),
        base_image: std::env::var("SMITH_BASE_IMAGE")
            .ok()
            .filter(|b| !b.is_empty()),
        ..DockerOptions::default()
    }
}

impl SandboxKind {
    /// The sandbox the environment stage's collection check runs in: the
    /// same kind where the stage can make it. The stage cannot make a
    /// container before the environment exists, so `Docker` (and `Auto`)
    /// collect under bubblewrap where it works, else on the host.
    pub fn env_sandbox(self) -> EnvSandbox {
        match self {
            SandboxKind::Local => EnvSandbox::Local,
            SandboxKind::Bwrap => EnvSandbox::Bwrap(BwrapOptions::default()),
            SandboxKind::Auto | SandboxKind::Docker => {
                let options = BwrapOptions::default();
                match bwrap_works(&options) {
                    Ok(()) => EnvSandbox::Bwrap(options),
                    Err(_) => EnvSandbox::Local,
                }
            }
        }
    }
}

/// [`SandboxKind::Auto`] with these bubblewrap and Docker settings.
pub fn auto(env: &Environment, bwrap: BwrapOptions, docker: DockerOptions) -> Result<Chosen> {
    let bwrap = match BwrapSandbox::with_options(env, bwrap) {
        Ok(sandbox) => {
            return Ok(Chosen {
                sandbox: Arc::new(sandbox),
                warning: None,
            })
        }
        Err(e) => e,
    };
    let docker =
        match docker_available(&docker.program).and_then(|()| DockerSandbox::new(env, docker)) {
            Ok(sandbox) => {
                return Ok(Chosen {
                    sandbox: Arc::new(sandbox),
                    warning: None,
                })
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use smith_env::conformance::{fixture_environment, write_fixture};

    #[test]
    fn auto_falls_back_to_local_with_one_warning_naming_both_reasons() {
        let repo = tempfile::tempdir().unwrap();
        write_fixture(repo.path()).unwrap();
        let env = fixture_environment(repo.path());
        let chosen = auto(
            &env,
            BwrapOptions {
                program: "/nonexistent/smith-no-bwrap".into(),
                ..BwrapOptions::default()
            },
            DockerOptions {
                program: "/nonexistent/smith-no-docker".into(),
                ..DockerOptions::default()
            },
        )
        .unwrap();
        assert_eq!(chosen.sandbox.name(), "local");
        let warning = chosen.warning.expect("a warning");
        assert!(warning.contains("smith-no-bwrap"), "{warning}");
        assert!(warning.contains("smith-no-docker"), "{warning}");
        assert!(warning.contains("--sandbox local"), "{warning}");
    }

    #[test]
    fn auto_prefers_bubblewrap_and_says_nothing_where_it_works() {
        let repo = tempfile::tempdir().unwrap();
        write_fixture(repo.path()).unwrap();
        let env = fixture_environment(repo.path());
        if let Err(e) = smith_env::bwrap_works(&BwrapOptions::default()) {
            // scripts/setup.sh installs bubblewrap; CI has it.
            panic!("bubblewrap unavailable (run scripts/setup.sh): {e}");
        }
        let chosen = SandboxKind::Auto.make(&env).unwrap();
        assert_eq!(chosen.sandbox.name(), "bwrap");
        assert!(chosen.warning.is_none());
    }
}
