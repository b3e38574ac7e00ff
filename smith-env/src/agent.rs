//! An install agent driven by a [`LanguageModel`], for repositories that
//! detection cannot set up. The model proposes one shell command at a time;
//! each runs in a throwaway workspace with a scratch venv; after every
//! command that succeeds, pytest collection is tried in a fresh workspace of
//! the sandbox [`EnvOptions::sandbox`] names, and the agent stops as soon as
//! it works. The commands that succeeded become the install steps of
//! an [`EnvSpec`], which [`build_environment`] then replays into the cached
//! environment, so the agent's result is verified like any other spec.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use smith_core::{
    CommandSpec, CompletionParams, Error, LanguageModel, Message, Result, RunOptions, RunOutput,
    Sandbox, Workspace,
};

use crate::build::{
    build_environment, create_venv_command, find_or_install_uv, last_chars, test_deps_line,
    translate_pip, EnvOptions, Environment, Installer,
};
use crate::collect::{collect_in, Collection};
use crate::detect::detect;
use crate::local::LocalSandbox;
use crate::process::run_command;
use crate::spec::EnvSpec;

/// Limits of one agent run.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentOptions {
    /// At most this many model replies.
    pub max_steps: usize,
    /// Time limit for each proposed command.
    pub command_timeout: Duration,
    /// Characters of command output shown to the model per step.
    pub feedback_chars: usize,
    /// Sampling parameters.
    pub params: CompletionParams,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            max_steps: 12,
            command_timeout: Duration::from_secs(15 * 60),
            feedback_chars: 3000,
            params: CompletionParams {
                temperature: 0.0,
                ..CompletionParams::default()
            },
        }
    }
}

/// One command the model proposed and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStep {
    /// The shell line (or `TEST_CMD ...` change).
    pub command: String,
    /// Its exit code (`None`: killed or not a command).
    pub exit_code: Option<i32>,
    /// Tests collected after it, if collection was tried.
    pub collected: Option<usize>,
    /// The end of its output.
    pub output: String,
}

/// The agent's result: the verified environment and the transcript.
#[derive(Debug, Clone)]
pub struct AgentOutcome {
    /// The environment built from the agent's spec.
    pub environment: Environment,
    /// What the agent tried, in order.
    pub steps: Vec<AgentStep>,
}

const SYSTEM: &str = "You set up Python repositories so that their test suite runs with pytest. \
You are in the repository root inside a fresh virtualenv that already has pytest and coverage. \
Reply with exactly one shell command in a ```sh fenced block; it runs non-interactively and you \
will see its exit code and output, and whether `pytest --collect-only` then succeeds. Use \
`pip install ...` for packages. To change the pytest arguments instead, reply with one line \
`TEST_CMD: <arguments after python>`, e.g. `TEST_CMD: -m pytest -p no:cacheprovider tests`. \
Reply `GIVE UP` if it cannot be done.";

/// What a model reply asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proposal {
    /// Run this shell line.
    Command(String),
    /// Use these pytest arguments (after `python`).
    TestCmd(Vec<String>),
    /// Stop.
    GiveUp,
}

/// Read a model reply: a fenced block's first non-comment line, a
/// `TEST_CMD:` line, `GIVE UP`, or else a line starting with `$ `.
pub fn parse_reply(reply: &str) -> Option<Proposal> {
    for line in reply.lines() {
        if let Some(rest) = line.trim().strip_prefix("TEST_CMD:") {
            let args: Vec<String> = rest.split_whitespace().map(String::from).collect();
            if !args.is_empty() {
                return Some(Proposal::TestCmd(args));
            }
        }
    }
    if let Some(start) = reply.find("```") {
        let body = &reply[start + 3..];
        let body = body.split_once('\n').map(|(_, b)| b).unwrap_or("");
        let block = body.split("```").next().unwrap_or("");
        let lines: Vec<&str> = block
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        if !lines.is_empty() {
            return Some(Proposal::Command(lines.join(" && ")));
        }
    }
    if reply.to_ascii_uppercase().contains("GIVE UP") {
        return Some(Proposal::GiveUp);
    }
    reply
        .lines()
        .find_map(|l| l.trim().strip_prefix("$ "))
        .map(|c| Proposal::Command(c.trim().to_string()))
}

/// Let `model` find the install steps for `repo`, then build and verify the
/// environment from them with `options` (cache included).
pub fn install_with_agent(
    repo: &Path,
    model: &dyn LanguageModel,
    options: &EnvOptions,
    agent: &AgentOptions,
) -> Result<AgentOutcome> {
    let repo = repo
        .canonicalize()
        .map_err(|e| Error::repo_source(repo, "cannot open repository", e))?;
    let mut spec = detect(&repo)?.pop().unwrap_or_default();
    spec.install.clear();
    spec.strategy = format!("agent:{}", model.model());
    let installer = agent_installer(options)?;
    let scratch = tempfile::Builder::new()
        .prefix("smith-agent-")
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let venv = scratch.path().join("venv");
    let fail = |reason: String| Error::environment(repo.clone(), reason);
    let short = RunOptions {
        timeout: Some(agent.command_timeout),
        max_output: 256 << 10,
        test_timeout: None,
        ..RunOptions::default()
    };
    let scratch_env = scratch_environment(&repo, &spec, &installer, &venv, &short)?;
    let sandbox = LocalSandbox::new(&scratch_env)?;
    let mut ws = sandbox.workspace()?;
    // The model's commands install (on the host, with the network); the
    // collection check imports the project's code, so it runs in a fresh
    // workspace of the sandbox the caller chose.
    let check_sandbox = options.sandbox.sandbox(&scratch_env)?;
    let check = |test_cmd: &[String]| {
        let mut check_ws = check_sandbox.workspace()?;
        collect_in(check_ws.as_mut(), test_cmd, agent.command_timeout)
    };
    let mut run_line = |line: &str| {
        ws.run(
            &CommandSpec::new("sh", ["-c", &translate_pip(line, &installer)]),
            &short,
        )
    };
    let deps = run_line(&test_deps_line(&spec))?;
    if !deps.success() {
        return Err(fail(format!(
            "cannot install test dependencies: {}",
            deps.stderr.trim()
        )));
    }
    let (steps, turns, collected) =
        converse(model, agent, &repo, &mut spec, &check, &mut run_line)?;
    if !collected.ok {
        return Err(fail(format!(
            "install agent gave up after {turns} steps; tried: {}",
            steps
                .iter()
                .map(|s| s.command.as_str())
                .collect::<Vec<_>>()
                .join(" ; ")
        )));
    }
    spec.notes.push(format!(
        "install steps found by {} in {turns} steps",
        model.model()
    ));
    let environment = build_environment(
        &repo,
        &EnvOptions {
            spec: Some(spec),
            ..options.clone()
        },
    )?;
    Ok(AgentOutcome { environment, steps })
}

/// The installer of the agent's scratch venv: uv unless turned off (pip
/// when uv cannot be had, unless uv was asked for).
fn agent_installer(options: &EnvOptions) -> Result<Installer> {
    Ok(match options.use_uv {
        Some(false) => Installer::Pip,
        _ => find_or_install_uv(&std::path::absolute(&options.cache_dir).unwrap_or_default())
            .map(Installer::Uv)
            .or_else(|e| {
                if options.use_uv == Some(true) {
                    Err(e)
                } else {
                    Ok(Installer::Pip)
                }
            })?,
    })
}

/// A new venv at `venv` for `repo`, as an environment the agent's commands
/// run in (nothing installed yet).
fn scratch_environment(
    repo: &Path,
    spec: &EnvSpec,
    installer: &Installer,
    venv: &Path,
    short: &RunOptions,
) -> Result<Environment> {
    let out = run_command(
        create_venv_command(installer, &spec.python_program(), venv),
        "create venv",
        short,
    )?;
    if !out.success() {
        return Err(Error::environment(
            repo,
            format!("cannot create the agent's venv: {}", out.stderr.trim()),
        ));
    }
    Ok(Environment {
        spec: spec.clone(),
        venv: venv.to_path_buf(),
        repo: repo.to_path_buf(),
        installer: installer.clone(),
        reused: false,
        collected: None,
        pytest_version: None,
        generated: Vec::new(),
        steps: Vec::new(),
    })
}

/// The model's turns: told why collection fails, it proposes a command
/// (run with `shell`, and kept in `spec.install` when it succeeds), a test
/// command, or gives up; until the tests collect (`check`) or
/// [`AgentOptions::max_steps`] replies. Returns the steps, the replies and
/// the last collection.
fn converse(
    model: &dyn LanguageModel,
    agent: &AgentOptions,
    repo: &Path,
    spec: &mut EnvSpec,
    check: &dyn Fn(&[String]) -> Result<Collection>,
    shell: &mut dyn FnMut(&str) -> Result<RunOutput>,
) -> Result<(Vec<AgentStep>, usize, Collection)> {
    let mut steps = Vec::new();
    let mut messages = vec![
        Message::system(SYSTEM),
        Message::user(repo_overview(repo, spec)),
    ];
    let mut collected = check(&spec.test_cmd)?;
    let mut turns = 0;
    while !collected.ok && turns < agent.max_steps {
        turns += 1;
        messages.push(Message::user(format!(
            "pytest --collect-only with `python {}` fails (exit {:?}):\n{}",
            spec.test_cmd.join(" "),
            collected.exit_code,
            last_chars(&collected.tail, agent.feedback_chars)
        )));
        let reply = model.complete(&messages, &agent.params)?.text;
        messages.push(Message::assistant(reply.clone()));
        let command = match parse_reply(&reply) {
            Some(Proposal::GiveUp) => break,
            None => {
                messages.push(Message::user(
                    "Reply with one command in a ```sh block, a TEST_CMD: line, or GIVE UP.",
                ));
                continue;
            }
            Some(Proposal::TestCmd(args)) => {
                spec.test_cmd = args;
                collected = check(&spec.test_cmd)?;
                steps.push(AgentStep {
                    command: format!("TEST_CMD: {}", spec.test_cmd.join(" ")),
                    exit_code: None,
                    collected: Some(collected.count),
                    output: String::new(),
                });
                continue;
            }
            Some(Proposal::Command(command)) => command,
        };
        let out = shell(&command)?;
        let output = last_chars(
            &format!("{}{}", out.stdout, out.stderr),
            agent.feedback_chars,
        );
        messages.push(Message::user(format!(
            "`{command}` exited with {:?}{}:\n{output}",
            out.exit_code,
            if out.timed_out { " (timed out)" } else { "" }
        )));
        if out.success() {
            spec.install.push(command.clone());
            collected = check(&spec.test_cmd)?;
        }
        steps.push(AgentStep {
            command,
            exit_code: out.exit_code,
            collected: out.success().then_some(collected.count),
            output,
        });
    }
    Ok((steps, turns, collected))
}

/// What the model is told about the repository: top-level entries and the
/// packaging files.
fn repo_overview(repo: &Path, spec: &EnvSpec) -> String {
    let mut names: Vec<String> = std::fs::read_dir(repo)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if e.path().is_dir() {
                        format!("{n}/")
                    } else {
                        n
                    }
                })
                .filter(|n| n != ".git/")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut text = format!("Repository top level: {}\n", names.join(" "));
    for file in [
        "pyproject.toml",
        "setup.py",
        "setup.cfg",
        "tox.ini",
        "requirements.txt",
    ] {
        if let Ok(content) = std::fs::read_to_string(repo.join(file)) {
            let content: String = content.chars().take(3000).collect();
            text.push_str(&format!("\n--- {file} ---\n{content}\n"));
        }
    }
    text.push_str(&format!(
        "\nTests run with: python {}\n",
        spec.test_cmd.join(" ")
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_parsed_into_proposals() {
        assert_eq!(
            parse_reply("Install it:\n```sh\n# deps\npip install six\n```\n"),
            Some(Proposal::Command("pip install six".into()))
        );
        assert_eq!(
            parse_reply("```bash\npip install a\npip install b\n```"),
            Some(Proposal::Command("pip install a && pip install b".into()))
        );
        assert_eq!(
            parse_reply("TEST_CMD: -m pytest unit"),
            Some(Proposal::TestCmd(vec![
                "-m".into(),
                "pytest".into(),
                "unit".into()
            ]))
        );
        assert_eq!(
            parse_reply("I have to GIVE UP here."),
            Some(Proposal::GiveUp)
        );
        assert_eq!(
            parse_reply("$ make install"),
            Some(Proposal::Command("make install".into()))
        );
        assert_eq!(parse_reply("no idea"), None);
    }
}
