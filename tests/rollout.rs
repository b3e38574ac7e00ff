//! `smith rollout` end to end on tasks generated from the demo repository,
//! against a loopback OpenAI-compatible server started by the test that
//! plays scripted agents: one views files, fixes the bug with
//! `str_replace_editor` and submits (resolved); one submits at once
//! (unresolved); one sends malformed tool calls until the step limit. The
//! resolved attempts, and only they, reach `sft.jsonl`, which loads with
//! Hugging Face `datasets`. A rollout killed with SIGKILL and run again
//! ends with every attempt exactly once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use smith::TaskInstance;

/// What a scripted agent does.
#[derive(Debug, Clone)]
enum Script {
    /// View the file, check that the failing tests are hidden, replace the
    /// buggy text with the clean one, submit.
    Fixer {
        path: String,
        hidden: String,
        old: String,
        new: String,
    },
    /// Submit at once.
    Quitter,
    /// Arguments that are not JSON, every time.
    Garbler,
}

/// The buggy and clean text of a one-hunk bug: `(path, buggy, clean)`.
fn one_hunk(instance: &TaskInstance) -> Option<(String, String, String)> {
    let text = &instance.patch;
    if text.matches("\n@@ ").count() + usize::from(text.starts_with("@@ ")) != 1
        || text.matches("+++ ").count() != 1
    {
        return None;
    }
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("+++ b/"))?
        .trim()
        .to_string();
    let body = text.split_once("\n@@ ")?.1.split_once('\n')?.1;
    let (mut buggy, mut clean) = (Vec::new(), Vec::new());
    for line in body.lines() {
        match line.split_at_checked(1) {
            Some((" ", rest)) => {
                buggy.push(rest);
                clean.push(rest);
            }
            Some(("+", rest)) => buggy.push(rest),
            Some(("-", rest)) => clean.push(rest),
            _ if line.is_empty() => {
                buggy.push("");
                clean.push("");
            }
            _ => return None,
        }
    }
    Some((path, buggy.join("\n"), clean.join("\n")))
}

fn fail_to_pass_file(instance: &TaskInstance) -> String {
    instance.fail_to_pass[0]
        .as_str()
        .split("::")
        .next()
        .unwrap()
        .to_string()
}

/// Three instances of the demo run and their scripts: a one-hunk bug the
/// fixer fixes, and two others.
fn scenario() -> Vec<(TaskInstance, Script)> {
    let instances = common::demo_instances();
    let fixable = instances
        .iter()
        .find_map(|i| {
            let (path, old, new) = one_hunk(i)?;
            // The text to replace must be unique in the buggy file.
            let clean = std::fs::read_to_string(
                PathBuf::from(
                    smith::store::read_json::<Value>(&common::demo_run().join("repo.json"))
                        .unwrap()
                        .unwrap()["root"]
                        .as_str()
                        .unwrap(),
                )
                .join(&path),
            )
            .ok()?;
            let buggy = clean.replacen(&new, &old, 1);
            (buggy.matches(&old).count() == 1).then(|| {
                (
                    i.clone(),
                    Script::Fixer {
                        hidden: fail_to_pass_file(i),
                        path,
                        old,
                        new,
                    },
                )
            })
        })
        .expect("a one-hunk bug in the demo run");
    let others: Vec<&TaskInstance> = instances
        .iter()
        .filter(|i| i.instance_id != fixable.0.instance_id)
        .take(2)
        .collect();
    assert_eq!(others.len(), 2, "too few instances in the demo run");
    vec![
        fixable,
        (others[0].clone(), Script::Quitter),
        (others[1].clone(), Script::Garbler),
    ]
}

fn call(id: &str, name: &str, arguments: Value) -> Value {
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments.to_string()}})
}

/// The scripted reply to a chat completions request.
fn reply(scripts: &BTreeMap<String, Script>, request: &Value) -> Value {
    let messages = request["messages"].as_array().expect("messages");
    let user = messages[1]["content"].as_str().unwrap_or_default();
    let id = user
        .lines()
        .find_map(|l| l.strip_prefix("task: "))
        .expect("the instance template names the task");
    let step = messages.iter().filter(|m| m["role"] == "assistant").count();
    assert!(
        request["tools"].as_array().is_some_and(|t| t.len() == 3),
        "three tools offered"
    );
    let calls = match &scripts[id] {
        Script::Fixer {
            path,
            hidden,
            old,
            new,
        } => match step {
            0 => vec![call(
                "v",
                "str_replace_editor",
                json!({"command": "view", "path": path}),
            )],
            1 => vec![call(
                "b",
                "bash",
                json!({"command": format!("test -e {hidden} && echo visible || echo hidden")}),
            )],
            2 => vec![call(
                "e",
                "str_replace_editor",
                json!({"command": "str_replace", "path": path, "old_str": old, "new_str": new}),
            )],
            _ => vec![call("s", "submit", json!({}))],
        },
        Script::Quitter => vec![call("s", "submit", json!({}))],
        Script::Garbler => vec![json!({
            "id": format!("g{step}"),
            "type": "function",
            "function": {"name": "bash", "arguments": format!("{{\"command\": ls{step}")}
        })],
    };
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": null, "tool_calls": calls},
            "finish_reason": "tool_calls"
        }],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
    })
}

/// A loopback OpenAI-compatible server playing `scripts`, each reply after
/// `delay`. Its base URL.
fn serve(scripts: BTreeMap<String, Script>, delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let scripts = Arc::new(scripts);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let scripts = scripts.clone();
            std::thread::spawn(move || {
                let _ = handle(stream, &scripts, delay);
            });
        }
    });
    url
}

fn handle(
    mut stream: TcpStream,
    scripts: &BTreeMap<String, Script>,
    delay: Duration,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            if line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        std::thread::sleep(delay);
        let text = reply(scripts, &request).to_string();
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        )?;
        stream.flush()?;
    }
}

struct Setup {
    url: String,
    slow_url: String,
    instances: PathBuf,
    template: PathBuf,
    scripts: BTreeMap<String, Script>,
    _dir: tempfile::TempDir,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let scenario = scenario();
        let dir = tempfile::tempdir().unwrap();
        let instances = dir.path().join("instances.jsonl");
        let list: Vec<&TaskInstance> = scenario.iter().map(|(i, _)| i).collect();
        smith::store::write_jsonl(&instances, &list).unwrap();
        let template = dir.path().join("instance.txt");
        std::fs::write(
            &template,
            "task: {{instance_id}}\nRepository {{repo}}, current directory.\n\n{{problem_statement}}\n",
        )
        .unwrap();
        let scripts: BTreeMap<String, Script> = scenario
            .into_iter()
            .map(|(i, s)| (i.instance_id, s))
            .collect();
        Setup {
            url: serve(scripts.clone(), Duration::ZERO),
            slow_url: serve(scripts.clone(), Duration::from_millis(200)),
            instances,
            template,
            scripts,
            _dir: dir,
        }
    })
}

fn rollout_command(s: &Setup, url: &str, out: &Path, attempts: usize) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smith"));
    cmd.args(["--json", "rollout", "--run-dir"])
        .arg(common::demo_run())
        .arg("--instances")
        .arg(&s.instances)
        .arg("--out")
        .arg(out)
        .args(["--attempts", &attempts.to_string()])
        .args(["--workers", "2", "--max-steps", "4", "--sandbox", "local"])
        .args(["--lm-base-url", url, "--lm-model", "scripted"])
        .arg("--instance-template")
        .arg(&s.template)
        .env_remove("SMITH_LM_BASE_URL")
        .env_remove("SMITH_LM_MODEL");
    cmd
}

fn summary(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "smith rollout failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).expect("JSON summary")
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn scripted_agents_resolve_quit_and_garble_and_only_resolved_attempts_reach_sft() {
    let s = setup();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("rollout");
    let sum = summary(&rollout_command(s, &s.url, &out, 2).output().unwrap());
    assert_eq!(sum["attempts"], 6, "{sum:#}");
    assert_eq!(sum["attempts_run"], 6);
    assert_eq!(sum["resolved"], 2, "{sum:#}");
    assert_eq!(sum["instances_resolved"], 1);
    assert_eq!(sum["exit_reasons"]["submitted"], 4);
    assert_eq!(sum["exit_reasons"]["max_steps"], 2);
    assert_eq!(
        sum["errors"]["malformed_arguments"], 8,
        "4 steps x 2 attempts"
    );
    // Costs on the demo, for the record (run with --nocapture to see them).
    eprintln!(
        "tool latency {}; mean reset {} s; mean grade {} s",
        sum["tool_latency"], sum["mean_reset_seconds"], sum["mean_grade_seconds"]
    );

    let trajectories = read_jsonl(&out.join("trajectories.jsonl"));
    assert_eq!(trajectories.len(), 6);
    let mut resolved_ids = BTreeSet::new();
    for t in &trajectories {
        let script = &s.scripts[t["instance_id"].as_str().unwrap()];
        let messages = t["messages"].as_array().unwrap();
        assert_eq!(messages[0]["role"], "system");
        assert_eq!(messages[1]["role"], "user");
        assert_eq!(t["tools"].as_array().unwrap().len(), 3);
        assert_eq!(t["model"], "scripted");
        match script {
            Script::Fixer { path, .. } => {
                assert_eq!(t["resolved"], true, "{t:#}");
                assert_eq!(t["reward"], 1.0);
                assert_eq!(t["exit_reason"], "submitted");
                assert_eq!(t["steps"], 4);
                assert!(t["patch"].as_str().unwrap().contains(path.as_str()));
                // The view numbers lines; the failing tests' file is hidden.
                assert!(messages[3]["content"]
                    .as_str()
                    .unwrap()
                    .contains("     1\t"));
                assert_eq!(messages[5]["content"].as_str().unwrap().trim(), "hidden");
                assert!(messages[7]["content"]
                    .as_str()
                    .unwrap()
                    .contains("has been edited"));
                resolved_ids.insert(t["traj_id"].as_str().unwrap().to_string());
            }
            Script::Quitter => {
                assert_eq!(t["resolved"], false);
                assert_eq!(t["exit_reason"], "submitted");
                assert_eq!(t["patch"], "");
                assert_eq!(t["steps"], 1);
            }
            Script::Garbler => {
                assert_eq!(t["resolved"], false);
                assert_eq!(t["exit_reason"], "max_steps");
                assert_eq!(t["steps"], 4);
                assert_eq!(t["errors"]["malformed_arguments"], 4);
                let answer = messages[3]["content"].as_str().unwrap();
                assert!(answer.contains("not valid JSON"), "{answer}");
            }
        }
        assert_eq!(t["prompt_tokens"], 100 * t["steps"].as_u64().unwrap());
    }

    let sft = out.join("sft.jsonl");
    let sft_ids: BTreeSet<String> = read_jsonl(&sft)
        .iter()
        .map(|r| r["traj_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        sft_ids, resolved_ids,
        "sft.jsonl holds exactly the resolved attempts"
    );

    // The real `datasets` reads the file; every record's conversation is
    // in order: system, user, then each assistant's tool calls answered by
    // tool results with their ids, ending with submit.
    let loaded = load_with_datasets(&sft);
    assert_eq!(loaded.len(), resolved_ids.len());
    for record in &loaded {
        let messages = record["messages"].as_array().unwrap();
        let roles: Vec<&str> = messages
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(
            roles,
            [
                "system",
                "user",
                "assistant",
                "tool",
                "assistant",
                "tool",
                "assistant",
                "tool",
                "assistant",
                "tool"
            ]
        );
        for pair in messages[2..].chunks(2) {
            let call = &pair[0]["tool_calls"][0];
            assert_eq!(pair[1]["tool_call_id"], call["id"]);
            assert_eq!(pair[1]["name"], call["function"]["name"]);
            let args: Value =
                serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
            assert!(args.is_object());
        }
        let names: Vec<&str> = messages[2..]
            .iter()
            .step_by(2)
            .map(|m| m["tool_calls"][0]["function"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["str_replace_editor", "bash", "str_replace_editor", "submit"]
        );
        let tools: Vec<&str> = record["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(tools, ["bash", "str_replace_editor", "submit"]);
    }

    // A re-run has nothing left to do; --max-per-instance trims sft.jsonl.
    let mut again = rollout_command(s, &s.url, &out, 2);
    again.args(["--max-per-instance", "1"]);
    let sum = summary(&again.output().unwrap());
    assert_eq!(sum["attempts_run"], 0);
    assert_eq!(sum["attempts_resumed"], 6);
    assert_eq!(sum["sft_records"], 1);
    assert_eq!(read_jsonl(&out.join("trajectories.jsonl")).len(), 6);
}

#[test]
fn a_rollout_killed_mid_run_resumes_with_no_attempt_lost_or_repeated() {
    let s = setup();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("rollout");
    let traj = out.join("trajectories.jsonl");
    let attempts = 3;
    let total = attempts * s.scripts.len();
    let mut child = rollout_command(s, &s.slow_url, &out, attempts)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let lines = || {
        std::fs::read_to_string(&traj)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    while lines() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no attempts written"
        );
        assert!(child.try_wait().unwrap().is_none(), "rollout ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = lines();
    assert!(before < total, "the kill came after the last attempt");

    let sum = summary(&rollout_command(s, &s.url, &out, attempts).output().unwrap());
    let records = read_jsonl(&traj);
    let ids: Vec<String> = records
        .iter()
        .map(|r| r["traj_id"].as_str().unwrap().to_string())
        .collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), total, "{ids:?}");
    assert_eq!(unique.len(), total, "no attempt twice: {ids:?}");
    let expected: BTreeSet<String> = s
        .scripts
        .keys()
        .flat_map(|id| (0..attempts).map(move |a| smith::rollout::traj_id(id, a)))
        .collect();
    assert_eq!(
        unique.into_iter().cloned().collect::<BTreeSet<_>>(),
        expected
    );
    assert_eq!(sum["attempts"], total);
    assert!(sum["attempts_resumed"].as_u64().unwrap() >= 2);
    assert_eq!(
        sum["attempts_run"].as_u64().unwrap() + sum["attempts_resumed"].as_u64().unwrap(),
        total as u64
    );
    assert_eq!(sum["resolved"], attempts, "every fixer attempt resolves");
}

/// The interpreter of a venv with Hugging Face `datasets` installed.
fn datasets_python() -> PathBuf {
    let venv = common::manifest_dir().join("target/test-cache/datasets-venv");
    let python = venv.join("bin/python");
    let ready = venv.join(".smith-ready");
    std::fs::create_dir_all(venv.parent().unwrap()).unwrap();
    let lock = std::fs::File::create(venv.with_extension("lock")).unwrap();
    lock.lock().unwrap();
    if !ready.exists() {
        let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
        if !python.exists() {
            assert!(ok(Command::new("python3").args(["-m", "venv"]).arg(&venv)));
        }
        assert!(
            ok(Command::new(&python).args(["-m", "pip", "install", "-q", "datasets"])),
            "pip install datasets"
        );
        std::fs::write(&ready, "").unwrap();
    }
    lock.unlock().unwrap();
    python
}

/// Load a JSONL file with `datasets.load_dataset("json", ...)`; its rows.
fn load_with_datasets(path: &Path) -> Vec<Value> {
    let cache = tempfile::tempdir().unwrap();
    let script = "import json, sys\n\
from datasets import load_dataset\n\
ds = load_dataset('json', data_files=sys.argv[1], split='train', cache_dir=sys.argv[2])\n\
print(json.dumps([dict(r) for r in ds]))\n";
    let out = Command::new(datasets_python())
        .arg("-c")
        .arg(script)
        .arg(path)
        .arg(cache.path())
        .env("HF_DATASETS_OFFLINE", "1")
        .env("HF_HOME", cache.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "datasets failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
