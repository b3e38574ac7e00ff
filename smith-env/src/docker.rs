//! The Docker sandbox: one image per repository ([`crate::image`]), built
//! from a Dockerfile generated out of the [`EnvSpec`]; one long-lived
//! container per workspace (a worker keeps its workspace, and so its
//! container, for all its candidates: `reset` restores the tree without
//! restarting anything), with the workspace's host-side copy mounted at
//! `/testbed` and `docker exec` per command. Containers have no network,
//! no capabilities, a read-only root and limits on CPUs, memory and
//! processes. Every command runs under a small `sh` wrapper that kills
//! what the command left behind in the container when it ends (processes
//! are found by a per-run variable in their environment), so a run ends
//! every process it started, and a timed-out run or a dropped service ends
//! without touching the container's other processes (fork servers).
//!
//! Containers are labelled with their owner (`smith.owner`: pid, start time
//! and PID namespace). Each one has a watcher on the host, in a process
//! group of its own, that removes it when smith's end of a pipe closes: on
//! exit, on Ctrl-C and on a kill. Containers whose owner is gone anyway
//! (the machine lost power) are removed by the next sandbox made.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use smith_core::{
    stable_hex, CommandSpec, Error, Result, RunOptions, RunOutput, Sandbox, Service, Workspace,
};

use crate::build::{python_env, Environment};
use crate::image::{build_image, docker, ImageOptions};
use crate::local::{new_env_copy, owner_gone, owner_stamp};
use crate::process::run_command;
use crate::service::ChildService;
use crate::spec::{shell_quote, EnvSpec};
use crate::tree::{Runner, TreeWorkspace};

/// Where the repository lives inside the image (SWE-bench's convention).
pub const TESTBED: &str = "/testbed";
/// Where the venv lives inside the image.
pub const VENV: &str = "/opt/smith-venv";

/// Settings of the Docker sandbox.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerOptions {
    /// The docker CLI.
    pub program: PathBuf,
    /// Base image; `None` picks one with
    /// [`default_base_image`](crate::image::default_base_image).
    pub base_image: Option<String>,
    /// Image tag; `None` uses [`image_name`]. The pipeline passes the
    /// instances' `image_name` ([`image_name_for`](crate::image::image_name_for)).
    pub image: Option<String>,
    /// Allow network access in containers (off by default).
    pub network: bool,
    /// CPUs per container (`--cpus`); `None`: no limit.
    pub cpus: Option<f64>,
    /// Memory per container in bytes (`--memory`, swap included);
    /// `None`: no limit.
    pub memory: Option<u64>,
    /// Processes per container (`--pids-limit`); `None`: no limit.
    pub processes: Option<u64>,
}

impl Default for DockerOptions {
    /// No network; 2 CPUs, and the memory and process limits of
    /// [`Budget::default`](crate::budget::Budget::default), per container.
    fn default() -> Self {
        let budget = crate::budget::Budget::default();
        DockerOptions {
            program: PathBuf::from("docker"),
            base_image: None,
            image: None,
            network: false,
            cpus: Some(2.0),
            memory: budget.memory,
            processes: budget.processes,
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
    dockerfile_with_ca(spec, base_image, None)
}

/// [`dockerfile`], and when `ca` names a certificate bundle in the build
/// context (copied to `/testbed` with everything else), that bundle moved
/// to `/opt/smith-ca.crt` and given to pip (`PIP_CERT`), so installs work
/// behind the same TLS-inspecting proxy as the host's.
pub fn dockerfile_with_ca(spec: &EnvSpec, base_image: &str, ca: Option<&str>) -> String {
    let mut out = String::new();
    out.push_str(&format!("FROM {base_image}\n"));
    out.push_str("RUN (command -v git >/dev/null || (apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*))\n");
    out.push_str(&format!("WORKDIR {TESTBED}\nCOPY . {TESTBED}\n"));
    if let Some(ca) = ca {
        out.push_str(&format!(
            "RUN mv {TESTBED}/{ca} /opt/smith-ca.crt\nENV PIP_CERT=/opt/smith-ca.crt\n"
        ));
    }
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
    env.insert("PIP_NO_CACHE_DIR".into(), "1".into());
    env.extend(spec.env.clone());
    for (k, v) in &env {
        out.push_str(&format!("ENV {k}={}\n", docker_quote(v)));
    }
    for line in &spec.install {
        out.push_str(&format!("RUN {line}\n"));
    }
    let deps: Vec<String> = spec.test_deps.iter().map(|d| shell_quote(d)).collect();
    out.push_str(&format!("RUN pip install {}\n", deps.join(" ")));
    // The installs honour PYTHONDONTWRITEBYTECODE; compiled once here, the
    // installed modules are not compiled again by every test run (the
    // workspace's own files never are).
    out.push_str(&format!(
        "RUN python -I -m compileall -q -j 0 {VENV}/lib >/dev/null || true\n"
    ));
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
            ..RunOptions::default()
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
    /// Check the engine, build the image (or find it built with the same
    /// environment, see [`build_image`]), remove containers of dead runs,
    /// and return the sandbox.
    pub fn new(env: &Environment, options: DockerOptions) -> Result<Self> {
        docker_available(&options.program)?;
        let image = options.image.clone().unwrap_or_else(|| image_name(env));
        let mut build = ImageOptions::new(image.clone());
        build.program = options.program.clone();
        build.base_image = options.base_image.clone();
        build_image(env, &build)?;
        remove_orphaned_containers(&options.program);
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

/// The label naming a container's owner: `pid start-time pid-namespace`
/// of the process that made it.
pub const OWNER_LABEL: &str = "smith.owner";

/// Remove containers whose owner is a process of this PID namespace that
/// is gone, once per process.
fn remove_orphaned_containers(program: &Path) {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| {
        let format = format!("{{{{.Names}}}}\t{{{{.Label \"{OWNER_LABEL}\"}}}}");
        let filter = format!("label={OWNER_LABEL}");
        let Ok(list) = docker(
            program,
            &["ps", "-a", "--filter", &filter, "--format", &format],
        ) else {
            return;
        };
        for line in list.lines() {
            if let Some((name, owner)) = line.split_once('\t') {
                if owner_gone(owner) {
                    let _ = docker(program, &["rm", "-f", name]);
                }
            }
        }
    });
}

/// `docker run` arguments that start a workspace's long-lived container
/// `name`, owned by `owner` (`pid start-time pid-namespace` of the
/// creating process), as the caller's uid.
pub fn run_args(
    image: &str,
    name: &str,
    host_root: &Path,
    options: &DockerOptions,
    owner: &str,
) -> Vec<String> {
    // Held like the bubblewrap sandbox: read-only but for the workspace,
    // /tmp and $HOME, no capabilities, no privilege gained through setuid
    // programs, and limits for the container's whole process tree.
    let mut args: Vec<String> = [
        "run",
        "-d",
        "--init",
        "--read-only",
        "--tmpfs",
        "/tmp:rw,exec,nosuid,size=2g",
        "--tmpfs",
        "/root:rw,exec,nosuid,size=256m",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--name",
        name,
        "--label",
    ]
    .map(String::from)
    .to_vec();
    args.push(format!("{OWNER_LABEL}={owner}"));
    args.extend(["--user".to_string(), caller_ids()]);
    if let Some(cpus) = options.cpus {
        args.extend(["--cpus".to_string(), format!("{cpus}")]);
    }
    if let Some(n) = options.processes {
        args.extend(["--pids-limit".to_string(), n.to_string()]);
    }
    if let Some(bytes) = options.memory {
        args.extend([
            "--memory".to_string(),
            bytes.to_string(),
            "--memory-swap".to_string(),
            bytes.to_string(),
        ]);
    }
    if !options.network {
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

/// `uid:gid` of this process: files the container writes in the workspace
/// belong to the caller.
fn caller_ids() -> String {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    format!("{uid}:{gid}")
}

/// The variable that marks every process of one run inside a container.
pub const RUN_VAR: &str = "SMITH_RUN_ID";

/// Kill every process of the container (but this shell) whose environment
/// holds `RUN_VAR=$1` (a timed-out run, a dropped service), pass after pass
/// until a pass finds none (a fork bomb forks while it is being killed), at
/// most 50 passes; `$left` is 0 when none is left.
const KILL_RUN: &str = r#"left=1; n=0; while [ $left = 1 ] && [ $n -lt 50 ]; do left=0; n=$((n+1)); for d in /proc/[0-9]*; do p=${d#/proc/}; [ "$p" = "$$" ] && continue; if grep -qsxz "SMITH_RUN_ID=$1" "$d/environ"; then kill -9 "$p" 2>/dev/null && left=1; fi; done; done"#;

/// The supervisor every command runs under, `python3 -I -S -c SUPERVISOR
/// <run id> <program> <args>...`: a child subreaper (orphans of the
/// command are handed to it, not to the container's init) that runs the
/// command with the run's mark in its environment, and once it exits
/// kills every descendant left, then exits with the command's status.
const SUPERVISOR: &str = r#"import ctypes, os, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)
os.environ['SMITH_RUN_ID'] = sys.argv[1]
child = os.fork()
if child == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    except OSError as e:
        sys.stderr.write('smith: cannot run %s: %s\n' % (sys.argv[2], e))
        os._exit(127)
while True:
    pid, status = os.waitpid(-1, 0)
    if pid == child:
        break
code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
me = str(os.getpid())
def children():
    out = []
    for name in os.listdir('/proc'):
        if name.isdigit():
            try:
                stat = open('/proc/%s/stat' % name).read()
            except OSError:
                continue
            if stat.rsplit(') ', 1)[1].split()[1] == me:
                out.append(int(name))
    return out
while True:
    kids = children()
    if not kids:
        break
    for k in kids:
        try:
            os.kill(k, 9)
        except OSError:
            pass
    for k in kids:
        try:
            os.waitpid(k, 0)
        except OSError:
            pass
sys.exit(code)
"#;

/// A run id no other run of this process uses.
fn run_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `docker exec` arguments for `command` in container `name`.
pub fn exec_args(
    name: &str,
    env: &BTreeMap<String, String>,
    command: &CommandSpec,
    run: &str,
    interactive: bool,
) -> Result<Vec<String>> {
    let cwd = match &command.cwd {
        Some(rel) => {
            let rel = crate::tree::inside_workspace(rel, "cwd")?;
            format!("{TESTBED}/{}", rel.trim_matches('/'))
        }
        None => TESTBED.to_string(),
    };
    let mut args = vec!["exec".to_string()];
    if interactive {
        args.push("-i".to_string());
    }
    args.extend(["-w".to_string(), cwd]);
    for (k, v) in crate::local::merged_env(env, &command.env) {
        args.extend(["-e".to_string(), format!("{k}={v}")]);
    }
    args.extend([
        name.to_string(),
        "python3".to_string(),
        "-I".to_string(),
        "-S".to_string(),
        "-c".to_string(),
        SUPERVISOR.to_string(),
        run.to_string(),
    ]);
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
        let owner = owner_stamp(std::process::id()).unwrap_or_default();
        // The watcher first: a container never exists without one.
        let watcher = Watcher::start(&self.options.program, &name)?;
        let mut cmd = Command::new(&self.options.program);
        cmd.args(run_args(
            &self.image,
            &name,
            dir.path(),
            &self.options,
            &owner,
        ));
        let out = run_command(cmd, "docker run", &RunOptions::default())?;
        if !out.success() {
            return Err(Error::command(
                format!("docker run {}", self.image),
                out.stderr.trim().to_string(),
            ));
        }
        let mut env = python_env(Path::new(VENV), Path::new(TESTBED), &self.env.spec);
        env.insert(
            "PATH".into(),
            format!("{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        );
        env.insert("HOME".into(), "/root".into());
        let runner = DockerRunner {
            program: self.options.program.clone(),
            container: name,
            env,
            watcher,
        };
        Ok(Box::new(TreeWorkspace::new(dir, runner)))
    }
}

/// A host process, in a process group of its own (Ctrl-C in a terminal
/// does not reach it), that removes a container once its stdin closes:
/// when the workspace is dropped, or when smith ends in any way.
#[derive(Debug)]
struct Watcher {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Watcher {
    fn start(program: &Path, container: &str) -> Result<Watcher> {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "read _; exec \"$0\" rm -f \"$1\" >/dev/null 2>&1",
            &program.display().to_string(),
            container,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::command_source("sh (container watcher)", "", e))?;
        let stdin = child.stdin.take();
        Ok(Watcher { child, stdin })
    }

    /// Remove the container now and wait until it is gone.
    fn finish(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"done\n");
        }
        let _ = self.child.wait();
    }
}

/// A workspace of [`DockerSandbox`]: a long-lived container removed on drop.
pub type DockerWorkspace = TreeWorkspace<DockerRunner>;

impl DockerWorkspace {
    /// The container's name.
    pub fn container(&self) -> &str {
        &self.runner().container
    }
}

/// How a [`DockerWorkspace`] runs commands: `docker exec` in its
/// long-lived container, which sees the workspace at `/testbed`. The
/// container is removed when the runner is dropped.
#[derive(Debug)]
pub struct DockerRunner {
    program: PathBuf,
    container: String,
    env: BTreeMap<String, String>,
    watcher: Watcher,
}

impl Drop for DockerRunner {
    fn drop(&mut self) {
        self.watcher.finish();
    }
}

/// Kill the processes of run `run` in `container`; where that fails (the
/// container's process limit leaves no room to start the killer, or
/// processes survive), restart the container, which ends everything in it.
fn kill_run(program: &Path, container: &str, run: &str) {
    let script = format!("{KILL_RUN}; [ $left = 0 ]");
    if docker(
        program,
        &["exec", container, "sh", "-c", &script, "smith", run],
    )
    .is_err()
    {
        let _ = docker(program, &["restart", "-t", "0", container]);
    }
}

impl Runner for DockerRunner {
    fn command_root(&self, _root: &Path) -> PathBuf {
        PathBuf::from(TESTBED)
    }

    fn run(
        &mut self,
        _root: &Path,
        command: &CommandSpec,
        options: &RunOptions,
    ) -> Result<RunOutput> {
        let run = run_id();
        let mut cmd = Command::new(&self.program);
        cmd.args(exec_args(&self.container, &self.env, command, &run, false)?);
        let out = run_command(cmd, &command.display(), options)?;
        if out.timed_out {
            // Killing the client leaves the command running in the
            // container; end it (and only it) there.
            kill_run(&self.program, &self.container, &run);
        }
        Ok(out)
    }

    fn spawn(&mut self, _root: &Path, command: &CommandSpec) -> Result<Box<dyn Service>> {
        let run = run_id();
        let mut cmd = Command::new(&self.program);
        cmd.args(exec_args(&self.container, &self.env, command, &run, true)?)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .map_err(|e| Error::command_source(command.display(), "", e))?;
        Ok(Box::new(DockerService {
            inner: Some(ChildService::new(child, command.display())?),
            program: self.program.clone(),
            container: self.container.clone(),
            run,
        }))
    }
}

/// A service in a container: the `docker exec -i` client's pipes, and on
/// drop, once the client is gone, the service's processes in the container
/// killed.
#[derive(Debug)]
struct DockerService {
    inner: Option<ChildService>,
    program: PathBuf,
    container: String,
    run: String,
}

impl Service for DockerService {
    fn send(&mut self, line: &str) -> Result<()> {
        match &mut self.inner {
            Some(s) => s.send(line),
            None => Err(Error::command("docker exec", "service ended")),
        }
    }

    fn receive(&mut self, timeout: Duration) -> Result<Option<String>> {
        match &mut self.inner {
            Some(s) => s.receive(timeout),
            None => Err(Error::command("docker exec", "service ended")),
        }
    }
}

impl Drop for DockerService {
    fn drop(&mut self) {
        drop(self.inner.take());
        kill_run(&self.program, &self.container, &self.run);
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
        let compile = lines.iter().position(|l| l.contains("compileall")).unwrap();
        assert!(deps < compile, "{text}");
        assert!(lines[compile].contains("/opt/smith-venv/lib"), "{text}");
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
        let options = DockerOptions {
            cpus: Some(1.5),
            memory: Some(1 << 30),
            processes: Some(256),
            ..DockerOptions::default()
        };
        let run = run_args(
            "smith/calc.abc",
            "ws1",
            Path::new("/tmp/ws"),
            &options,
            "7 99 pid:[1]",
        )
        .join(" ");
        for part in [
            "run -d --init --read-only ",
            " --cap-drop ALL --security-opt no-new-privileges ",
            " --name ws1 --label smith.owner=7 99 pid:[1] --user ",
            " --cpus 1.5 --pids-limit 256 --memory 1073741824 --memory-swap 1073741824 ",
            " --network none -v /tmp/ws:/testbed -w /testbed smith/calc.abc sleep infinity",
        ] {
            assert!(run.contains(part), "{part:?} not in {run}");
        }
        let open = DockerOptions {
            network: true,
            cpus: None,
            ..DockerOptions::default()
        };
        let run = run_args("i", "n", Path::new("/w"), &open, "o");
        assert!(!run.contains(&"none".to_string()));
        assert!(!run.contains(&"--cpus".to_string()));
        let mut env = BTreeMap::new();
        env.insert("A".to_string(), "1".to_string());
        let mut cmd = CommandSpec::new("python", ["-m", "pytest"]).env("B", "2");
        cmd.cwd = Some("sub".into());
        let exec = exec_args("ws1", &env, &cmd, "r1", false).unwrap();
        assert_eq!(
            exec[..11].join(" "),
            "exec -w /testbed/sub -e A=1 -e B=2 ws1 python3 -I -S"
        );
        assert_eq!(
            exec[11..].join(" "),
            "-c ".to_string() + SUPERVISOR + " r1 python -m pytest"
        );
        assert_eq!(exec_args("ws1", &env, &cmd, "r1", true).unwrap()[1], "-i");
        cmd.cwd = Some("../etc".into());
        assert!(exec_args("ws1", &env, &cmd, "r1", false).is_err());
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
