//! A repository's Docker image, as SWE-bench and SWE-smith lay it out: the
//! environment smith detected, installed into a venv at
//! [`VENV`](crate::docker::VENV) first on `PATH`, and the repository at
//! [`TESTBED`](crate::docker::TESTBED) at its base commit (a shallow git
//! clone where the repository is a git checkout, so `git diff` and `git
//! apply` work there). Tagged with the instances' `image_name`
//! ([`image_name_for`]) and labelled with the hash of everything that went
//! into it ([`IMAGE_HASH_LABEL`]): [`build_image`] does nothing when an image
//! of that tag carries the same hash.
//!
//! The base is `python:<version>-slim` where it can be had (a registry, or
//! already loaded), else smith's own Debian base ([`LOCAL_BASE_IMAGE`],
//! built by `scripts/docker-base.sh` for engines without a registry).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use smith_core::{stable_hex, Error, Result, RunOptions};

use crate::build::Environment;
use crate::docker::{base_image_for, dockerfile_with_ca};
use crate::process::run_command;

/// The tag `scripts/docker-base.sh` gives smith's local Debian base image.
pub const LOCAL_BASE_IMAGE: &str = "smith/python-base:3";
/// The label holding the hash of an image's Dockerfile and base commit.
pub const IMAGE_HASH_LABEL: &str = "smith.env-hash";
/// The label holding the commit at `/testbed`.
pub const COMMIT_LABEL: &str = "smith.base-commit";

/// `smith/<owner>__<repo>.<commit8>`, the `image_name` of a repository's
/// instances: lower case (Docker refuses upper case in repository names),
/// characters Docker does not accept replaced by `-`.
pub fn image_name_for(repo: &str, commit: &str) -> String {
    let name: String = repo
        .replacen('/', "__", 1)
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let name = if name.is_empty() { "repo" } else { name };
    let commit = commit.to_ascii_lowercase();
    format!("smith/{name}.{}", &commit[..commit.len().min(8)])
}

/// Settings of [`build_image`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageOptions {
    /// The docker CLI.
    pub program: PathBuf,
    /// The tag to build, e.g. [`image_name_for`]'s.
    pub tag: String,
    /// The base image; `None` picks one with [`default_base_image`].
    pub base_image: Option<String>,
    /// Rebuild even when an image with the same hash exists.
    pub force: bool,
}

impl ImageOptions {
    /// Options that build `tag` with the default base.
    pub fn new(tag: impl Into<String>) -> Self {
        ImageOptions {
            program: PathBuf::from("docker"),
            tag: tag.into(),
            base_image: None,
            force: false,
        }
    }
}

/// A built (or found) image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// Its tag.
    pub tag: String,
    /// Docker's image id.
    pub id: String,
    /// The base it was built from.
    pub base_image: String,
    /// The commit at `/testbed` (empty when the repository is not a git
    /// checkout).
    pub base_commit: String,
    /// [`IMAGE_HASH_LABEL`]'s value.
    pub hash: String,
    /// Whether this call built it (false: an image with the same hash was
    /// there already).
    pub built: bool,
    /// Seconds this call took.
    pub secs: f64,
    /// Its size in bytes, as `docker image inspect` reports it.
    pub size: u64,
}

fn quick() -> RunOptions {
    RunOptions {
        timeout: Some(Duration::from_secs(120)),
        max_output: 1 << 20,
        test_timeout: None,
        ..RunOptions::default()
    }
}

/// Run `docker <args>`; its stdout, or an error naming the command.
pub(crate) fn docker(program: &Path, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let display = format!("{} {}", program.display(), args.join(" "));
    let out = run_command(cmd, &display, &quick())?;
    if out.success() {
        Ok(out.stdout)
    } else {
        Err(Error::command(display, out.stderr.trim().to_string()))
    }
}

/// Whether the engine has an image called `reference`.
pub fn image_exists(program: &Path, reference: &str) -> bool {
    docker(
        program,
        &["image", "inspect", "--format", "{{.Id}}", reference],
    )
    .is_ok()
}

/// The tag of smith's local base image: `SMITH_BASE_IMAGE` when set (as
/// for `scripts/docker-base.sh`), else [`LOCAL_BASE_IMAGE`].
pub fn local_base_image() -> String {
    std::env::var("SMITH_BASE_IMAGE")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| LOCAL_BASE_IMAGE.to_string())
}

/// The base image for `env` when none is given: `python:<version>-slim`
/// when the engine has it, else [`local_base_image`] when the engine has
/// that, else `python:<version>-slim` (for the engine to pull from a
/// registry).
pub fn default_base_image(program: &Path, env: &Environment) -> String {
    let slim = base_image_for(&env.spec);
    let local = local_base_image();
    if !image_exists(program, &slim) && image_exists(program, &local) {
        local
    } else {
        slim
    }
}

/// The commit checked out in `repo`, if it is a git checkout.
fn head_commit(repo: &Path) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "--verify", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|c| !c.is_empty())
}

/// The name the host's certificate bundle gets in the build context.
const CA_FILE: &str = ".smith-ca.crt";

/// The host's certificate bundle, the one pip and Python use here: from
/// `PIP_CERT`, `SSL_CERT_FILE` or `REQUESTS_CA_BUNDLE`, else the system's.
fn host_ca_bundle() -> Option<PathBuf> {
    let from_env = ["PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"]
        .iter()
        .filter_map(std::env::var_os)
        .map(PathBuf::from);
    let system = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ]
    .iter()
    .map(PathBuf::from);
    from_env.chain(system).find(|p| p.is_file())
}

/// The Dockerfile [`build_image`] uses for `env` on `base`: the
/// environment's ([`dockerfile_with_ca`], with the host's certificates
/// when `ca`) with the labels.
pub fn image_dockerfile(env: &Environment, base: &str, commit: &str, ca: bool) -> String {
    let mut text = dockerfile_with_ca(&env.spec, base, ca.then_some(CA_FILE));
    let hash = stable_hex(&[text.as_bytes(), commit.as_bytes()]);
    text.push_str(&format!(
        "LABEL {IMAGE_HASH_LABEL}=\"{hash}\" {COMMIT_LABEL}=\"{commit}\"\n"
    ));
    text
}

/// The hash label of a Dockerfile made by [`image_dockerfile`].
fn hash_of(dockerfile: &str) -> String {
    dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(&format!("LABEL {IMAGE_HASH_LABEL}=\"")))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string()
}

/// Build `env`'s image as `options.tag`, or find it: an image of that tag
/// whose [`IMAGE_HASH_LABEL`] matches (same spec, base and commit) is kept
/// as it is. The build context is a shallow clone of the repository at its
/// `HEAD` (a copy of the tree when it is not a git checkout), so nothing
/// but the committed tree goes into `/testbed`.
pub fn build_image(env: &Environment, options: &ImageOptions) -> Result<Image> {
    let started = Instant::now();
    let program = &options.program;
    crate::docker::docker_available(program)?;
    let base = options
        .base_image
        .clone()
        .unwrap_or_else(|| default_base_image(program, env));
    let commit = head_commit(&env.repo).unwrap_or_default();
    let ca = host_ca_bundle();
    let text = image_dockerfile(env, &base, &commit, ca.is_some());
    let hash = hash_of(&text);
    let inspect = |tag: &str| inspect_image(program, tag);
    let found = |built: bool| -> Result<Image> {
        let (id, _, size) = inspect(&options.tag).ok_or_else(|| {
            Error::environment(
                env.repo.clone(),
                format!("image {} missing after its build", options.tag),
            )
        })?;
        Ok(Image {
            tag: options.tag.clone(),
            id,
            base_image: base.clone(),
            base_commit: commit.clone(),
            hash: hash.clone(),
            built,
            secs: started.elapsed().as_secs_f64(),
            size,
        })
    };
    if !options.force {
        if let Some((_, label, _)) = inspect(&options.tag) {
            if label == hash {
                return found(false);
            }
        }
    }
    let (_scratch, context) = build_context(&env.repo, commit.is_empty())?;
    let file = add_build_files(env, &context, ca.as_deref(), &text)?;
    let mut cmd = Command::new(program);
    cmd.args(["build", "-q", "-t", &options.tag, "-f"])
        .arg(&file)
        .arg(&context);
    let display = format!("docker build -t {}", options.tag);
    let out = run_command(
        cmd,
        &display,
        &RunOptions {
            timeout: Some(Duration::from_secs(3600)),
            max_output: 1 << 20,
            test_timeout: None,
            ..RunOptions::default()
        },
    )?;
    if !out.success() {
        return Err(Error::environment(
            env.repo.clone(),
            format!(
                "{display} (base {base}) failed: {}",
                tail(&format!("{}\n{}", out.stdout, out.stderr), 40)
            ),
        ));
    }
    found(true)
}

/// The id, [`IMAGE_HASH_LABEL`] and size of the image `tag`, if there is
/// one.
fn inspect_image(program: &Path, tag: &str) -> Option<(String, String, u64)> {
    let format =
        format!("{{{{.Id}}}}\t{{{{index .Config.Labels \"{IMAGE_HASH_LABEL}\"}}}}\t{{{{.Size}}}}");
    let out = docker(program, &["image", "inspect", "--format", &format, tag]).ok()?;
    let mut parts = out.trim().split('\t');
    let id = parts.next()?.to_string();
    let label = parts.next().unwrap_or_default().to_string();
    let size = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    Some((id, label, size))
}

/// Add to the build `context` what the image needs beside the tree: the
/// files the environment's install generated, the host's CA bundle
/// (`ca`), and the Dockerfile `text` (returned: its path), both left out
/// of the image by a `.dockerignore`.
fn add_build_files(
    env: &Environment,
    context: &Path,
    ca: Option<&Path>,
    text: &str,
) -> Result<PathBuf> {
    // What the environment's install generated in the packages (a version
    // module), as an in-place install leaves it in `/testbed`.
    env.overlay_generated(context)?;
    if let Some(ca) = ca {
        let to = context.join(CA_FILE);
        std::fs::copy(ca, &to).map_err(|e| Error::io(ca, e))?;
    }
    let file = context.join(".smith.Dockerfile");
    std::fs::write(&file, text).map_err(|e| Error::io(&file, e))?;
    let ignore = context.join(".dockerignore");
    std::fs::write(&ignore, ".smith.Dockerfile\n.dockerignore\n")
        .map_err(|e| Error::io(&ignore, e))?;
    Ok(file)
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A temp directory whose `ctx` holds the repository's committed tree
/// (with a shallow `.git`), or a copy of its files when `copy` (not a git
/// checkout).
fn build_context(repo: &Path, copy: bool) -> Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::Builder::new()
        .prefix("smith-image-")
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let root = dir.path().join("ctx");
    if copy {
        std::fs::create_dir(&root).map_err(|e| Error::io(&root, e))?;
        crate::tree::copy_tree(repo, &root)?;
        return Ok((dir, root));
    }
    let mut cmd = Command::new("git");
    cmd.args(["clone", "-q", "--depth", "1", "--no-tags"])
        .arg(format!("file://{}", repo.display()))
        .arg(&root);
    let display = format!("git clone --depth 1 {}", repo.display());
    let out = run_command(cmd, &display, &quick())?;
    if !out.success() {
        return Err(Error::command(display, out.stderr.trim().to_string()));
    }
    Ok((dir, root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_follow_the_instances_and_docker_rules() {
        assert_eq!(
            image_name_for("Textualize/Rich", "ABCDEF0123456789"),
            "smith/textualize__rich.abcdef01"
        );
        assert_eq!(
            image_name_for("local/tallyho", "47b602e4aa"),
            "smith/local__tallyho.47b602e4"
        );
        assert_eq!(image_name_for("a b/c+d", "1"), "smith/a-b__c-d.1");
    }

    #[test]
    fn the_hash_label_changes_with_the_spec_base_and_commit() {
        let env = crate::conformance::fixture_environment(Path::new("/x/repo"));
        let text = image_dockerfile(&env, "smith/python-base:3", "abc", false);
        let hash = hash_of(&text);
        assert_eq!(hash.len(), 32, "{text}");
        assert!(text.contains(&format!("{COMMIT_LABEL}=\"abc\"")));
        assert_eq!(
            hash_of(&image_dockerfile(&env, "smith/python-base:3", "abc", false)),
            hash
        );
        assert_ne!(
            hash_of(&image_dockerfile(&env, "python:3-slim", "abc", false)),
            hash
        );
        assert_ne!(
            hash_of(&image_dockerfile(&env, "smith/python-base:3", "abd", false)),
            hash
        );
        let mut other = env.clone();
        other.spec.install.push("pip install -e .".into());
        assert_ne!(
            hash_of(&image_dockerfile(
                &other,
                "smith/python-base:3",
                "abc",
                false
            )),
            hash
        );
    }
}
