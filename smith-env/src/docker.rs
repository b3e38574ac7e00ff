//! The Docker sandbox: one image per repository, built from a Dockerfile
//! generated out of the [`EnvSpec`]; one container per workspace, with the
//! workspace's host-side copy mounted at `/testbed` and `docker exec` per
//! command. The image is also what `image_name` in task instances refers to.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use smith_core::{
    stable_hex, CommandSpec, Error, Patch, Result, RunOptions, RunOutput, Sandbox, Workspace,
};

use crate::build::Environment;
use crate::local::new_env_copy;
use crate::process::run_command;
use crate::spec::{shell_quote, EnvSpec};
use crate::tree::Tree;

/// Where the repository lives inside the image (SWE-bench's convention).
pub const TESTBED: &str = "/testbed";
/// Where the venv lives inside the image.
pub const VENV: &str = "/opt/smith-venv";

/// Settings of the Docker sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerOptions {
    /// The docker CLI.
    pub program: PathBuf,
    /// Base image; `None` derives `python:<version>-slim` from the spec.
    pub base_image: Option<String>,
    /// Image tag; `None` uses [`image_name`].
    pub image: Option<String>,
    /// Allow network access in containers (off by default).
    pub network: bool,
}

impl Default for DockerOptions {
    fn default() -> Self {
        DockerOptions {
            program: PathBuf::from("docker"),
            base_image: None,
            image: None,
            network: false,
        }
    }
}

/// `python:3.11-slim` for a spec whose python is `3.11` or `python3.11`;
/// `python:3-slim` otherwise.
pub fn base_image_for(spec: &EnvSpec) -> String {
    let version = spec
        .python_program()
        .trim_start_matches("python")
        .to_string();
    if version.chars().all(|c| c.is_ascii_digit() || c == '.') && !version.is_empty() {
        format!("python:{version}-slim")
    } else {
        "python:3-slim".into()
    }
}

/// The image tag for an environment: `smith-env/<repo>:<spec hash>`.
pub fn image_name(env: &Environment) -> String {
    let repo: String = env
        .repo
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_else(|| "repo".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    let repo = if repo.is_empty() {
        "repo".to_string()
    } else {
        repo
    };
    let tag = stable_hex(&[
        env.spec.hash().as_bytes(),
        env.repo.as_os_str().as_encoded_bytes(),
    ]);
    format!("smith-env/{repo}:{}", &tag[..12])
}

/// A Dockerfile that reproduces `spec`: the repository copied to
/// [`TESTBED`], a venv at [`VENV`] first on `PATH`, the install steps, the
/// test dependencies, and the same Python settings as the other sandboxes.
pub fn dockerfile(spec: &EnvSpec, base_image: &str) -> String {
    let mut out = String::new();
    out.push_str(&format!("FROM {base_image}\n"));
    out.push_str("RUN (command -v git >/dev/null || (apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*))\n");
    out.push_str(&format!("WORKDIR {TESTBED}\nCOPY . {TESTBED}\n"));
    out.push_str(&format!("RUN python -m venv {VENV}\n"));
    let pythonpath: Vec<String> = spec
        .pythonpath
        .iter()
        .map(|p| {
            if p == "." || p.is_empty() {
                TESTBED.to_string()
            } else {
                format!("{TESTBED}/{p}")
            }
        })
        .collect();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("PATH".into(), format!("{VENV}/bin:$PATH"));
    env.insert("VIRTUAL_ENV".into(), VENV.into());
    env.insert("PYTHONPATH".into(), pythonpath.join(":"));
    env.insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
    env.insert("PYTHONHASHSEED".into(), "0".into());
    env.insert("PIP_DISABLE_PIP_VERSION_CHECK".into(), "1".into());
    env.extend(spec.env.clone());
    for (k, v) in &env {
        out.push_str(&format!("ENV {k}={}\n", docker_quote(v)));
    }
    for line in &spec.install {
        out.push_str(&format!("RUN {line}\n"));
    }
    let deps: Vec<String> = spec.test_deps.iter().map(|d| shell_quote(d)).collect();
    out.push_str(&format!("RUN pip install {}\n", deps.join(" ")));
    out
}

/// Quote an ENV value for a Dockerfile unless it is plain.
fn docker_quote(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/:._-$".contains(c))
    {
        v.to_string()
    } else {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Whether a Docker engine answers (`docker info`), with the reason if not.
pub fn docker_available(program: &Path) -> Result<()> {
    let mut cmd = Command::new(program);
    cmd.args(["info", "--format", "{{.ServerVersion}}"]);
    let display = format!("{} info", program.display());
    let out = run_command(
        cmd,
        &display,
        &RunOptions {
            timeout: Some(Duration::from_secs(30)),
            max_output: 64 << 10,
            test_timeout: None,
        },
    )?;
    if out.success() {
        Ok(())
    } else {
        Err(Error::command(display, out.stderr.trim().to_string()))
    }
}

/// Makes workspaces that are containers of the repository's image.
#[derive(Debug, Clone)]
pub struct DockerSandbox {
    env: Environment,
    options: DockerOptions,
    image: String,
}

impl DockerSandbox {
    /// Check the engine, build the image (cached by docker's layer cache)
    /// and return the sandbox.
    pub fn new(env: &Environment, options: DockerOptions) -> Result<Self> {
        docker_available(&options.program)?;
        let image = options.image.clone().unwrap_or_else(|| image_name(env));
        let base = options
            .base_image
            .clone()
            .unwrap_or_else(|| base_image_for(&env.spec));
        // Build from a clean copy so .git, venvs and caches stay out of the image.
        let context = new_env_copy(env, None, "smith-docker-ctx-")?;
        let file = context.path().join(".smith.Dockerfile");
        std::fs::write(&file, dockerfile(&env.spec, &base)).map_err(|e| Error::io(&file, e))?;
        let mut cmd = Command::new(&options.program);
        cmd.args(["build", "-q", "-t", &image, "-f"])
            .arg(&file)
            .arg(context.path());
        let display = format!("docker build -t {image}");
        let out = run_command(
            cmd,
            &display,
            &RunOptions {
                timeout: Some(Duration::from_secs(3600)),
                max_output: 1 << 20,
                test_timeout: None,
            },
        )?;
        if !out.success() {
            return Err(Error::Environment {
                path: env.repo.clone(),
                reason: format!("{display} failed: {}", out.stderr.trim()),
            });
        }
        Ok(DockerSandbox {
            env: env.clone(),
            options,
            image,
        })
    }

    /// The image workspaces run.
    pub fn image(&self) -> &str {
        &self.image
    }
}

/// `docker run` arguments that start a workspace's container.
pub fn run_args(image: &str, name: &str, host_root: &Path, network: bool) -> Vec<String> {
    // Held like the bubblewrap sandbox: read-only but for the workspace and
    // /tmp, no capabilities, no privilege gained through setuid programs,
    // and a budget for the container's whole process tree.
    let budget = crate::budget::Budget::default();
    let mut args: Vec<String> = [
        "run",
        "-d",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--name",
        name,
    ]
    .map(String::from)
    .to_vec();
    if let Some(n) = budget.processes {
        args.extend(["--pids-limit".to_string(), n.to_string()]);
    }
    if let Some(bytes) = budget.memory {
        args.extend([
            "--memory".to_string(),
            bytes.to_string(),
            "--memory-swap".to_string(),
            bytes.to_string(),
        ]);
    }
    if !network {
        args.extend(["--network".to_string(), "none".to_string()]);
    }
    args.extend([
        "-v".to_string(),
        format!("{}:{TESTBED}", host_root.display()),
        "-w".to_string(),
        TESTBED.to_string(),
        image.to_string(),
        "sleep".to_string(),
        "infinity".to_string(),
    ]);
    args
}

/// `docker exec` arguments for `command` in container `name`.
pub fn exec_args(
    name: &str,
    env: &BTreeMap<String, String>,
    command: &CommandSpec,
) -> Result<Vec<String>> {
    let cwd = match &command.cwd {
        Some(rel) => {
            let rel = crate::tree::inside_workspace(rel, "cwd")?;
            format!("{TESTBED}/{}", rel.trim_matches('/'))
        }
        None => TESTBED.to_string(),
    };
    let mut args = vec!["exec".to_string(), "-w".to_string(), cwd];
    for (k, v) in crate::local::merged_env(env, &command.env) {
        args.extend(["-e".to_string(), format!("{k}={v}")]);
    }
    args.push(name.to_string());
    args.push(command.program.clone());
    args.extend(command.args.iter().cloned());
    Ok(args)
}

impl Sandbox for DockerSandbox {
    fn name(&self) -> &str {
        "docker"
    }

    fn workspace(&self) -> Result<Box<dyn Workspace>> {
        let dir = new_env_copy(&self.env, None, "smith-docker-ws-")?;
        let name = format!(
            "smith-ws-{}",
            &stable_hex(&[
                dir.path().as_os_str().as_encoded_bytes(),
                &std::process::id().to_le_bytes()
            ])[..16]
        );
        let mut cmd = Command::new(&self.options.program);
        cmd.args(run_args(
            &self.image,
            &name,
            dir.path(),
            self.options.network,
        ));
        let out = run_command(cmd, "docker run", &RunOptions::default())?;
        if !out.success() {
            return Err(Error::command("docker run", out.stderr.trim().to_string()));
        }
        Ok(Box::new(DockerWorkspace {
            tree: Tree::new(dir.path().to_path_buf()),
            _dir: dir,
            program: self.options.program.clone(),
            container: name,
            env: self.env.spec.env.clone(),
        }))
    }
}

/// A workspace of [`DockerSandbox`]: a container removed on drop.
#[derive(Debug)]
pub struct DockerWorkspace {
    _dir: crate::local::Scratch,
    tree: Tree,
    program: PathBuf,
    container: String,
    env: BTreeMap<String, String>,
}

impl Drop for DockerWorkspace {
    fn drop(&mut self) {
        let mut cmd = Command::new(&self.program);
        cmd.args(["rm", "-f", &self.container]);
        let _ = run_command(cmd, "docker rm", &RunOptions::default());
    }
}

impl Workspace for DockerWorkspace {
    fn root(&self) -> &Path {
        self.tree.root()
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.tree.read(path)
    }

    fn write(&mut self, path: &str, contents: &[u8]) -> Result<()> {
        self.tree.write(path, contents)
    }

    fn apply(&mut self, patch: &Patch) -> Result<()> {
        self.tree.apply(patch)
    }

    fn reset(&mut self) -> Result<()> {
        self.tree.reset()
    }

    fn run(&mut self, command: &CommandSpec, options: &RunOptions) -> Result<RunOutput> {
        let mut cmd = Command::new(&self.program);
        cmd.args(exec_args(&self.container, &self.env, command)?);
        let out = run_command(cmd, &command.display(), options)?;
        if out.timed_out {
            // Killing the client leaves the process running in the container;
            // a restart kills everything in it and keeps the mount.
            let mut restart = Command::new(&self.program);
            restart.args(["restart", "-t", "0", &self.container]);
            run_command(restart, "docker restart", &RunOptions::default())?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> EnvSpec {
        let mut spec = EnvSpec {
            python: "3.12".into(),
            install: vec!["pip install -e '.[tests]'".into()],
            test_deps: vec!["pytest>=8".into(), "coverage".into()],
            pythonpath: vec!["src".into()],
            ..EnvSpec::default()
        };
        spec.env.insert("TZ".into(), "Europe/Paris".into());
        spec.env.insert("GREETING".into(), "hello world".into());
        spec
    }

    #[test]
    fn dockerfile_reproduces_the_spec() {
        let text = dockerfile(&spec(), &base_image_for(&spec()));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "FROM python:3.12-slim");
        assert!(lines.contains(&"COPY . /testbed"));
        assert!(lines.contains(&"RUN python -m venv /opt/smith-venv"));
        assert!(lines.contains(&"ENV PATH=/opt/smith-venv/bin:$PATH"));
        assert!(lines.contains(&"ENV PYTHONPATH=/testbed/src"));
        assert!(lines.contains(&"ENV PYTHONDONTWRITEBYTECODE=1"));
        assert!(lines.contains(&"ENV GREETING=\"hello world\""));
        assert!(lines.contains(&"ENV TZ=Europe/Paris"));
        let install = lines
            .iter()
            .position(|l| *l == "RUN pip install -e '.[tests]'")
            .unwrap();
        let deps = lines
            .iter()
            .position(|l| *l == "RUN pip install 'pytest>=8' coverage")
            .unwrap();
        let venv = lines.iter().position(|l| l.contains("-m venv")).unwrap();
        assert!(venv < install && install < deps, "{text}");
    }

    #[test]
    fn base_images_follow_the_python_version() {
        assert_eq!(base_image_for(&EnvSpec::default()), "python:3-slim");
        let s = EnvSpec {
            python: "python3.10".into(),
            ..EnvSpec::default()
        };
        assert_eq!(base_image_for(&s), "python:3.10-slim");
    }

    #[test]
    fn container_and_exec_arguments() {
        let run = run_args("smith-env/calc:abc", "ws1", Path::new("/tmp/ws"), false);
        assert_eq!(
            run.join(" "),
            "run -d --rm --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges \
             --name ws1 --pids-limit 1024 --memory 6442450944 --memory-swap 6442450944 \
             --network none -v /tmp/ws:/testbed -w /testbed smith-env/calc:abc sleep infinity"
        );
        assert!(!run_args("i", "n", Path::new("/w"), true).contains(&"none".to_string()));
        let mut env = BTreeMap::new();
        env.insert("A".to_string(), "1".to_string());
        let mut cmd = CommandSpec::new("python", ["-m", "pytest"]).env("B", "2");
        cmd.cwd = Some("sub".into());
        let exec = exec_args("ws1", &env, &cmd).unwrap();
        assert_eq!(
            exec.join(" "),
            "exec -w /testbed/sub -e A=1 -e B=2 ws1 python -m pytest"
        );
        cmd.cwd = Some("../etc".into());
        assert!(exec_args("ws1", &env, &cmd).is_err());
    }

    #[test]
    fn image_names_are_valid_docker_references() {
        let env = crate::conformance::fixture_environment(Path::new("/x/My Repo"));
        let name = image_name(&env);
        assert!(name.starts_with("smith-env/my-repo:"), "{name}");
        assert_eq!(name.len(), "smith-env/my-repo:".len() + 12);
        // Temp dirs are named `.tmpXXXX`; a reference cannot start with a dot.
        let hidden = image_name(&crate::conformance::fixture_environment(Path::new(
            "/x/.tmpAb",
        )));
        assert!(hidden.starts_with("smith-env/tmpab:"), "{hidden}");
    }
}
