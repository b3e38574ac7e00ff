//! The OpenAI-compatible client against a real HTTP server on 127.0.0.1
//! that plays scripted replies and counts the requests it receives.
#![cfg(feature = "lm")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smith_core::{CompletionParams, LanguageModel, Message};
use smith_issue::{OpenAiClient, OpenAiConfig};

#[derive(Clone)]
struct Reply {
    delay: Duration,
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn ok(text: &str) -> Reply {
    Reply {
        delay: Duration::ZERO,
        status: 200,
        headers: vec![],
        body: serde_json::json!({
            "id": "x",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
        })
        .to_string(),
    }
}

fn status(code: u16) -> Reply {
    Reply {
        delay: Duration::ZERO,
        status: code,
        headers: vec![],
        body: format!("{{\"error\":\"status {code}\"}}"),
    }
}

#[derive(Debug, Clone)]
struct Seen {
    headers: Vec<String>,
    body: serde_json::Value,
}

/// A loopback server: the n-th request gets `replies[n]` (the last reply
/// repeats). Each connection is served on its own thread.
struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    peak: Arc<AtomicUsize>,
}

impl Server {
    fn start(replies: Vec<Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let peak = Arc::new(AtomicUsize::new(0));
        let inflight = Arc::new(AtomicUsize::new(0));
        let (seen2, peak2) = (seen.clone(), peak.clone());
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { continue };
                let reply = replies[n.min(replies.len() - 1)].clone();
                let (seen, peak, inflight) = (seen2.clone(), peak2.clone(), inflight.clone());
                std::thread::spawn(move || {
                    let now = inflight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    serve(stream, &reply, &seen);
                    inflight.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Server { url, seen, peak }
    }

    fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, reply: &Reply, seen: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        headers.push(line);
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    seen.lock().unwrap().push(Seen {
        headers,
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    });
    std::thread::sleep(reply.delay);
    let mut out = format!(
        "HTTP/1.1 {} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&reply.body);
    let mut stream = stream;
    let _ = stream.write_all(out.as_bytes());
}

fn config(server: &Server) -> OpenAiConfig {
    let mut c = OpenAiConfig::new(server.url.clone(), "test-model");
    c.backoff = Duration::from_millis(5);
    c.max_backoff = Duration::from_millis(50);
    c.timeout = Duration::from_secs(5);
    c
}

fn ask(client: &OpenAiClient) -> smith_core::Result<smith_core::Completion> {
    client.complete(
        &[Message::system("be brief"), Message::user("hello")],
        &CompletionParams {
            seed: Some(7),
            ..Default::default()
        },
    )
}

#[test]
fn success_returns_text_tokens_and_sends_the_request_shape() {
    let server = Server::start(vec![ok("an issue")]);
    std::env::set_var("SMITH_ISSUE_TEST_KEY_A", "sekret");
    let client = OpenAiClient::new(
        config(&server)
            .api_key_env("SMITH_ISSUE_TEST_KEY_A")
            .prices(1.0, 2.0),
    )
    .unwrap();
    assert!(!format!("{client:?}").contains("sekret"));
    let c = ask(&client).unwrap();
    assert_eq!(c.text, "an issue");
    assert_eq!(
        (c.prompt_tokens, c.completion_tokens, c.cached),
        (12, 5, false)
    );

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0]
            .headers
            .iter()
            .any(|h| h == "POST /v1/chat/completions HTTP/1.1"),
        "{:?}",
        seen[0].headers
    );
    assert!(seen[0]
        .headers
        .iter()
        .any(|h| h.eq_ignore_ascii_case("authorization: Bearer sekret")));
    let body = &seen[0].body;
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][1]["content"], "hello");
    assert_eq!(body["seed"], 7);
    assert_eq!(body["max_tokens"], 2048);

    let usage = client.usage();
    assert_eq!(
        (usage.requests, usage.prompt_tokens, usage.completion_tokens),
        (1, 12, 5)
    );
    let cost = usage.cost.unwrap();
    assert!((cost - (0.012 + 0.010)).abs() < 1e-9, "{cost}");
}

#[test]
fn rate_limit_then_success_is_retried() {
    let mut limited = status(429);
    limited.headers.push(("Retry-After", "0".into()));
    let server = Server::start(vec![limited, ok("after retry")]);
    let client = OpenAiClient::new(config(&server)).unwrap();
    assert_eq!(ask(&client).unwrap().text, "after retry");
    assert_eq!(server.requests(), 2);
    let usage = client.usage();
    assert_eq!((usage.requests, usage.retries, usage.failures), (2, 1, 0));
}

#[test]
fn server_errors_until_give_up() {
    let server = Server::start(vec![status(500), status(503)]);
    let mut c = config(&server);
    c.max_retries = 2;
    let client = OpenAiClient::new(c).unwrap();
    let err = ask(&client).unwrap_err().to_string();
    assert!(err.contains("test-model"), "{err}");
    assert!(err.contains("gave up after 3 attempts"), "{err}");
    assert!(err.contains("HTTP 503"), "{err}");
    assert_eq!(server.requests(), 3);
    assert_eq!(client.usage().failures, 1);
}

#[test]
fn client_errors_are_not_retried() {
    let server = Server::start(vec![status(400)]);
    let client = OpenAiClient::new(config(&server)).unwrap();
    let err = ask(&client).unwrap_err().to_string();
    assert!(err.contains("HTTP 400"), "{err}");
    assert_eq!(server.requests(), 1);
}

#[test]
fn malformed_json_is_an_error_without_retry() {
    let mut bad = ok("");
    bad.body = "{\"choices\": [".into();
    let server = Server::start(vec![bad]);
    let client = OpenAiClient::new(config(&server)).unwrap();
    let err = ask(&client).unwrap_err().to_string();
    assert!(err.contains("malformed JSON"), "{err}");
    assert_eq!(server.requests(), 1);
}

#[test]
fn slow_reply_past_the_timeout_fails() {
    let mut slow = ok("too late");
    slow.delay = Duration::from_secs(3);
    let server = Server::start(vec![slow]);
    let mut c = config(&server);
    c.timeout = Duration::from_millis(300);
    c.max_retries = 1;
    let client = OpenAiClient::new(c).unwrap();
    let err = ask(&client).unwrap_err().to_string();
    assert!(err.contains("gave up after 2 attempts"), "{err}");
    assert!(
        err.to_lowercase().contains("timeout") || err.contains("timed out"),
        "{err}"
    );
    assert_eq!(client.usage().retries, 1);
}

#[test]
fn cache_hit_sends_no_request() {
    let cache = tempfile::tempdir().unwrap();
    let server = Server::start(vec![ok("cached answer"), ok("second answer")]);
    let first = OpenAiClient::new(config(&server).cache_dir(cache.path())).unwrap();
    assert!(!ask(&first).unwrap().cached);
    assert_eq!(server.requests(), 1);

    // A new client (a re-run) over the same cache sends nothing.
    let rerun = OpenAiClient::new(config(&server).cache_dir(cache.path())).unwrap();
    let again = ask(&rerun).unwrap();
    assert_eq!((again.text.as_str(), again.cached), ("cached answer", true));
    assert_eq!(server.requests(), 1);
    let usage = rerun.usage();
    assert_eq!(
        (usage.requests, usage.cache_hits, usage.prompt_tokens),
        (0, 1, 0)
    );

    // Another seed is another request.
    let other = rerun
        .complete(
            &[Message::user("hello")],
            &CompletionParams {
                seed: Some(8),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        (other.text.as_str(), other.cached),
        ("second answer", false)
    );
    assert_eq!(server.requests(), 2);
}

#[test]
fn concurrency_limit_holds_over_http() {
    let mut slow = ok("x");
    slow.delay = Duration::from_millis(60);
    let server = Server::start(vec![slow]);
    let mut c = config(&server);
    c.max_concurrency = 2;
    let client = Arc::new(OpenAiClient::new(c).unwrap());
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let client = client.clone();
            std::thread::spawn(move || {
                client
                    .complete(
                        &[Message::user(format!("q{i}"))],
                        &CompletionParams::default(),
                    )
                    .map(|c| c.text)
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap().unwrap(), "x");
    }
    assert_eq!(server.requests(), 6);
    let peak = server.peak.load(Ordering::SeqCst);
    assert!((1..=2).contains(&peak), "peak {peak}");
}

#[test]
fn missing_key_variable_and_bad_urls_are_reported() {
    let err = OpenAiClient::new(
        OpenAiConfig::new("http://127.0.0.1:9/v1", "m").api_key_env("SMITH_ISSUE_TEST_UNSET_VAR"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("SMITH_ISSUE_TEST_UNSET_VAR"), "{err}");
    assert!(OpenAiClient::new(OpenAiConfig::new("ftp://x", "m")).is_err());
}

#[test]
fn lm_issue_writer_over_http() {
    use smith_core::{
        Candidate, FailingTest, FileChange, IssueContext, IssueWriter, Patch, TestId,
    };
    use smith_issue::LmIssueWriter;

    let server = Server::start(vec![ok(
        "Sure! Here is the issue:\n\n```markdown\nadd() subtracts\n\n`add(1, 2)` gives -1.\n```",
    )]);
    let client = OpenAiClient::new(config(&server)).unwrap();
    let writer = LmIssueWriter::new(client);
    let patch = Patch::from_changes(&[FileChange::modified(
        "calc.py",
        "def add(a, b):\n    return a + b\n",
        "def add(a, b):\n    return a - b\n",
    )]);
    let context = IssueContext {
        candidate: Candidate::new(
            &smith_core::RepoRef::new("o/calc", "c"),
            "s",
            vec![],
            "",
            patch,
        ),
        failing: vec![FailingTest {
            id: TestId::from("tests/test_calc.py::test_add"),
            source: Some("def test_add():\n    assert add(1, 2) == 3\n".into()),
            output: "E       assert -1 == 3\n".into(),
        }],
        original_code: vec![],
        seed: 3,
    };
    let text = writer.write(&context).unwrap();
    assert_eq!(text, "add() subtracts\n\n`add(1, 2)` gives -1.");
    let body = &server.seen()[0].body;
    let prompt = body["messages"][1]["content"].as_str().unwrap();
    assert!(prompt.contains("-    return a + b"), "{prompt}");
    assert!(prompt.contains("assert add(1, 2) == 3"), "{prompt}");
    assert!(prompt.contains("E       assert -1 == 3"), "{prompt}");
    assert_eq!(body["seed"], 3);
}
