//! Every strategy is a stage: `smith run --strategies
//! procedural,lm_modify,lm_rewrite,pr_mirror` against a loopback
//! OpenAI-compatible server, on a copy of the demo repository with a few
//! real commits. Kept instances of each LM strategy and of PR mirroring are
//! then re-checked independently by `scripts/reproduce.py` (fresh clones
//! and interpreters: clean, FAIL_TO_PASS and PASS_TO_PASS pass; with the
//! patch, FAIL_TO_PASS fails and PASS_TO_PASS passes).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value;

/// The last complete fenced ```python block of `prompt` (the prompt's
/// closing instructions may mention an opening fence of their own).
fn last_code_block(prompt: &str) -> Option<String> {
    let mut last = None;
    let mut from = 0;
    while let Some(at) = prompt[from..].find("```python\n") {
        let start = from + at + "```python\n".len();
        let Some(len) = prompt[start..].find("\n```") else {
            break;
        };
        last = Some(prompt[start..start + len].to_string());
        from = start + len + "\n```".len();
    }
    last
}

/// What the scripted model answers: for a rewrite prompt, the stub with a
/// body that returns nothing; for a modify prompt, the code with its first
/// operator flipped (or unchanged, which smith rejects).
fn answer(prompt: &str) -> String {
    let Some(code) = last_code_block(prompt) else {
        return "I cannot help with that.".into();
    };
    let new = if prompt.contains("lost its body") {
        let indent: String = code
            .lines()
            .last()
            .unwrap_or_default()
            .chars()
            .take_while(|c| c.is_whitespace())
            .collect();
        let trimmed = code.trim_end().trim_end_matches("...").trim_end();
        format!("{trimmed}\n{indent}return None")
    } else {
        let mut new = code.clone();
        for (from, to) in [
            (" + ", " - "),
            (" == ", " != "),
            (" < ", " >= "),
            (" > ", " <= "),
        ] {
            if let Some(at) = code.find(from) {
                new = format!("{}{to}{}", &code[..at], &code[at + from.len()..]);
                break;
            }
        }
        new
    };
    format!("```python\n{new}\n```\n")
}

/// A loopback chat-completions endpoint answering with [`answer`].
fn start_server(requests: Arc<AtomicUsize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let requests = requests.clone();
            std::thread::spawn(move || serve(stream, &requests));
        }
    });
    url
}

fn serve(stream: TcpStream, requests: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    requests.fetch_add(1, Ordering::SeqCst);
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let prompt = request["messages"][0]["content"]
        .as_str()
        .unwrap_or_default();
    let reply = serde_json::json!({
        "id": "x",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer(prompt)}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    })
    .to_string();
    let out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
    let mut stream = stream;
    let _ = stream.write_all(out.as_bytes());
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Dev",
            "-c",
            "user.email=dev@example.invalid",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let name = entry.file_name();
        if name == "__pycache__" || name == ".pytest_cache" {
            continue;
        }
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// The demo repository with history: a first commit where regular plurals
/// are wrong, a commit that fixes them, and a docs-only commit.
fn demo_with_history(dir: &Path) {
    copy_dir(&common::manifest_dir().join("examples/demo-repo"), dir);
    let text = dir.join("src/tallyho/text.py");
    let fixed = std::fs::read_to_string(&text).unwrap();
    let buggy = fixed.replace("        plural = word + \"s\"\n", "        plural = word\n");
    assert_ne!(buggy, fixed);
    std::fs::write(&text, buggy).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(
        dir,
        &[
            "commit",
            "-q",
            "-m",
            "tallyho: inventory, orders and text helpers",
        ],
    );
    std::fs::write(&text, fixed).unwrap();
    git(
        dir,
        &["commit", "-q", "-am", "Fix the plural of regular words"],
    );
    let readme = dir.join("README.md");
    let mut notes = std::fs::read_to_string(&readme).unwrap();
    notes.push_str("\nSee the tests for examples.\n");
    std::fs::write(&readme, notes).unwrap();
    git(dir, &["commit", "-q", "-am", "Docs: point at the tests"]);
}

#[test]
fn lm_and_pr_mirror_strategies_end_in_reproducible_instances() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("tallyho");
    demo_with_history(&repo);
    let out = tmp.path().join("out");
    let requests = Arc::new(AtomicUsize::new(0));
    let url = start_server(requests.clone());
    let cache = common::env_cache();
    let output = Command::new(env!("CARGO_BIN_EXE_smith"))
        .args(["--json", "run"])
        .arg(&repo)
        .arg("--out")
        .arg(&out)
        .arg("--cache-dir")
        .arg(&cache)
        .args([
            "--strategies",
            "procedural,lm_modify,lm_rewrite,pr_mirror",
            "--lm-base-url",
            &url,
            "--lm-model",
            "scripted",
            "--lm-entities",
            "12",
            "--lm-price-prompt",
            "0.001",
            "--lm-price-completion",
            "0.002",
            "--max-candidates",
            "40",
            "--baseline-runs",
            "2",
            "--workers",
            "2",
        ])
        .env_remove("SMITH_LM_BASE_URL")
        .env_remove("SMITH_LM_MODEL")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "smith run: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();

    // The LM stages asked the model and the summary counts what they spent.
    let asked = requests.load(Ordering::SeqCst) as u64;
    assert!(asked >= 2, "{summary:#}");
    assert_eq!(summary["lm"]["requests"], asked);
    assert_eq!(summary["lm"]["prompt_tokens"], 100 * asked);
    assert_eq!(summary["lm"]["completion_tokens"], 20 * asked);
    let cost = summary["lm"]["cost"].as_f64().unwrap();
    assert!(
        (cost - asked as f64 * (0.1 + 0.04) / 1000.0).abs() < 1e-9,
        "{cost}"
    );

    // Yield per strategy, the LM ones and PR mirroring among them.
    for strategy in ["lm/modify", "lm/rewrite", "pr_mirror"] {
        let s = &summary["strategies"][strategy];
        assert!(
            s["kept"].as_u64().unwrap_or(0) >= 1,
            "{strategy}: {summary:#}"
        );
    }
    assert!(summary["strategies"]
        .as_object()
        .unwrap()
        .keys()
        .any(|k| k.starts_with("func_pm_")));

    // Their instances reproduce in fresh clones and interpreters.
    let instances: Vec<Value> = smith::store::read_jsonl(&out.join("instances.jsonl")).unwrap();
    let ours: Vec<&Value> = instances
        .iter()
        .filter(|i| {
            ["lm/modify", "lm/rewrite", "pr_mirror"].contains(&i["strategy"].as_str().unwrap())
        })
        .collect();
    for strategy in ["lm/modify", "lm/rewrite", "pr_mirror"] {
        assert!(
            ours.iter().any(|i| i["strategy"] == strategy),
            "no {strategy} instance"
        );
    }
    let mirrored = ours.iter().find(|i| i["strategy"] == "pr_mirror").unwrap();
    assert!(
        mirrored["patch"]
            .as_str()
            .unwrap()
            .contains("-        plural = word + \"s\""),
        "{mirrored:#}"
    );
    let check = tmp.path().join("check");
    std::fs::create_dir_all(&check).unwrap();
    std::os::unix::fs::symlink(out.join("repo"), check.join("repo")).unwrap();
    std::fs::copy(out.join("env.json"), check.join("env.json")).unwrap();
    smith::store::write_jsonl(&check.join("instances.jsonl"), &ours).unwrap();
    let reproduce = Command::new("python3")
        .arg(common::manifest_dir().join("scripts/reproduce.py"))
        .arg(&check)
        .args(["--sample", "0", "--json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&reproduce.stdout).unwrap_or_else(|e| {
        panic!(
            "reproduce.py: {e}: {}{}",
            String::from_utf8_lossy(&reproduce.stdout),
            String::from_utf8_lossy(&reproduce.stderr)
        )
    });
    assert_eq!(report["checked"], ours.len(), "{report:#}");
    assert_eq!(report["reproduced"], ours.len(), "{report:#}");
}

#[test]
fn pr_mirror_without_history_warns_and_other_strategies_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    // Not a git repository: smith snapshots it, without history.
    let repo = tmp.path().join("tallyho");
    copy_dir(&common::manifest_dir().join("examples/demo-repo"), &repo);
    let out = tmp.path().join("out.jsonl");
    let output = Command::new(env!("CARGO_BIN_EXE_smith"))
        .args(["--json", "mutate"])
        .arg(&repo)
        .arg("--out")
        .arg(&out)
        .args(["--strategies", "func_pm_op_swap,pr_mirror"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("pr_mirror") && stderr.contains("no history"),
        "{stderr}"
    );
    let candidates: Vec<smith::Candidate> = smith::store::read_jsonl(&out).unwrap();
    assert!(!candidates.is_empty());
    assert!(candidates.iter().all(|c| c.strategy == "func_pm_op_swap"));

    // An LM strategy without an endpoint is refused before anything runs.
    let output = Command::new(env!("CARGO_BIN_EXE_smith"))
        .args(["mutate"])
        .arg(&repo)
        .arg("--out")
        .arg(tmp.path().join("lm.jsonl"))
        .args(["--strategies", "lm_modify"])
        .env_remove("SMITH_LM_BASE_URL")
        .env_remove("SMITH_LM_MODEL")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--lm-base-url"));
    assert!(!tmp.path().join("lm.jsonl").exists());
}
