//! A [`LanguageModel`] over any OpenAI-compatible `/v1/chat/completions`
//! endpoint (hosted services, vLLM, llama.cpp, Ollama, ...), without a vendor
//! SDK.
//!
//! Every request is bounded: a timeout, a limited number of retries with
//! exponential backoff on 429 and 5xx replies (honouring `Retry-After`), and
//! a concurrency limit shared by all threads using the client. Replies are
//! cached on disk by a stable hash of (model, messages, parameters), so a
//! re-run of a stage sends nothing. Token use (and cost, given prices) is
//! counted for run summaries.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use smith_core::{
    stable_hex, ChatMessage, Completion, CompletionParams, Error, LanguageModel, Message, Result,
    ToolCall, ToolCompletion, ToolSpec,
};

/// How to reach and use an OpenAI-compatible endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiConfig {
    /// Base URL up to and including the API version, e.g.
    /// `http://127.0.0.1:8000/v1`; `/chat/completions` is appended unless
    /// already there.
    pub base_url: String,
    /// Model name sent with every request.
    pub model: String,
    /// Name of the environment variable holding the API key (`None`: send
    /// no `Authorization` header, as local servers expect).
    pub api_key_env: Option<String>,
    /// Limit for one request, from connecting to the last byte of the reply.
    pub timeout: Duration,
    /// Retries after the first attempt, for 429, 5xx, timeouts and dropped
    /// connections.
    pub max_retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// Longest wait between attempts (also caps `Retry-After`).
    pub max_backoff: Duration,
    /// Requests in flight at once, across all threads.
    pub max_concurrency: usize,
    /// Directory of the response cache (`None`: no cache).
    pub cache_dir: Option<PathBuf>,
    /// Price per 1000 prompt tokens, for cost accounting.
    pub prompt_cost_per_1k: Option<f64>,
    /// Price per 1000 completion tokens, for cost accounting.
    pub completion_cost_per_1k: Option<f64>,
}

impl OpenAiConfig {
    /// A configuration with defaults: 120 s timeout, 4 retries from 1 s
    /// backoff up to 30 s, 4 requests at once, no key, no cache, no prices.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        OpenAiConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key_env: None,
            timeout: Duration::from_secs(120),
            max_retries: 4,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_concurrency: 4,
            cache_dir: None,
            prompt_cost_per_1k: None,
            completion_cost_per_1k: None,
        }
    }

    /// Read the API key from this environment variable.
    pub fn api_key_env(mut self, var: impl Into<String>) -> Self {
        self.api_key_env = Some(var.into());
        self
    }

    /// Cache replies in this directory.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Count cost at these prices per 1000 prompt and completion tokens.
    pub fn prices(mut self, prompt_per_1k: f64, completion_per_1k: f64) -> Self {
        self.prompt_cost_per_1k = Some(prompt_per_1k);
        self.completion_cost_per_1k = Some(completion_per_1k);
        self
    }

    fn endpoint(&self) -> String {
        let base = self.base_url.trim_end_matches('/');
        if base.ends_with("/chat/completions") {
            base.to_string()
        } else {
            format!("{base}/chat/completions")
        }
    }
}

/// What a client has spent so far, for run summaries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// HTTP requests sent (retries included).
    pub requests: u64,
    /// Completions answered from the cache (nothing sent).
    pub cache_hits: u64,
    /// Retries after 429, 5xx, timeouts or dropped connections.
    pub retries: u64,
    /// Completions that failed after all attempts.
    pub failures: u64,
    /// Prompt tokens of completions actually sent.
    pub prompt_tokens: u64,
    /// Completion tokens of completions actually sent.
    pub completion_tokens: u64,
    /// Cost of the sent completions, when prices are configured.
    pub cost: Option<f64>,
}

/// An OpenAI-compatible chat completions client. Share it between threads
/// (`&`, `Arc`); the concurrency limit and the counters are shared too.
pub struct OpenAiClient {
    config: OpenAiConfig,
    endpoint: String,
    api_key: Option<String>,
    agent: ureq::Agent,
    slots: Semaphore,
    usage: Mutex<Usage>,
}

impl std::fmt::Debug for OpenAiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("OpenAiClient")
            .field("endpoint", &self.endpoint)
            .field("model", &self.config.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl OpenAiClient {
    /// A client for `config`. Fails if the key's environment variable is
    /// named but not set, or if the URL needs TLS and the `tls` feature is
    /// off.
    pub fn new(config: OpenAiConfig) -> Result<Self> {
        let fail = |reason: String| Error::language_model(config.model.clone(), reason);
        let api_key = match &config.api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                fail(format!(
                    "environment variable `{var}` (the API key) is not set"
                ))
            })?),
            None => None,
        };
        let endpoint = config.endpoint();
        if endpoint.starts_with("https://") && !cfg!(feature = "tls") {
            return Err(fail(format!(
                "{endpoint} needs TLS; build smith-issue with the `tls` feature"
            )));
        }
        if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
            return Err(Error::invalid(
                "LM base URL",
                format!("`{}` is not an http(s) URL", config.base_url),
            ));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(OpenAiClient {
            slots: Semaphore::new(config.max_concurrency.max(1)),
            endpoint,
            api_key,
            agent,
            usage: Mutex::new(Usage::default()),
            config,
        })
    }

    /// Spending so far.
    pub fn usage(&self) -> Usage {
        self.usage.lock().map(|u| u.clone()).unwrap_or_default()
    }

    /// The cache key of a request: a stable hash of model, messages and
    /// parameters.
    pub fn cache_key(&self, messages: &[Message], params: &CompletionParams) -> String {
        let messages = serde_json::to_string(messages).unwrap_or_default();
        let params = serde_json::to_string(params).unwrap_or_default();
        stable_hex(&[
            self.config.model.as_bytes(),
            messages.as_bytes(),
            params.as_bytes(),
        ])
    }

    fn cache_path(&self, key: &str) -> Option<PathBuf> {
        self.config
            .cache_dir
            .as_ref()
            .map(|dir| dir.join(&key[..2]).join(format!("{key}.json")))
    }

    fn error(&self, reason: impl Into<String>) -> Error {
        Error::language_model(self.config.model.clone(), reason)
    }

    /// The error of a request that failed for `failure`, its reason after
    /// `prefix` (when there is one) and its cause kept as the source.
    fn failed(&self, prefix: Option<String>, failure: Failure) -> Error {
        let reason = match (prefix, failure.reason.is_empty()) {
            (None, _) => failure.reason,
            (Some(prefix), true) if failure.cause.is_some() => prefix,
            (Some(prefix), _) => format!("{prefix}: {}", failure.reason),
        };
        match failure.cause {
            Some(cause) => Error::language_model_source(self.config.model.clone(), reason, cause),
            None => self.error(reason),
        }
    }

    fn count(&self, f: impl FnOnce(&mut Usage)) {
        if let Ok(mut usage) = self.usage.lock() {
            f(&mut usage);
        }
    }

    /// Send one request with retries; the reply body of a success.
    fn send(&self, body: &serde_json::Value) -> Result<String> {
        let mut attempt = 0u32;
        loop {
            let outcome = {
                let _slot = self.slots.acquire();
                self.count(|u| u.requests += 1);
                let mut request = self
                    .agent
                    .post(&self.endpoint)
                    .header("Content-Type", "application/json");
                if let Some(key) = &self.api_key {
                    request = request.header("Authorization", &format!("Bearer {key}"));
                }
                match request.send_json(body) {
                    Ok(mut response) => {
                        let status = response.status().as_u16();
                        let retry_after = response
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .map(Duration::from_secs);
                        let text = response.body_mut().read_to_string();
                        match (status, text) {
                            (200..=299, Ok(text)) => return Ok(text),
                            (200..=299, Err(e)) => {
                                Attempt::Retry(Failure::caused("reading the reply", e), None)
                            }
                            (429 | 500..=599, text) => Attempt::Retry(
                                Failure::said(format!(
                                    "HTTP {status}: {}",
                                    snippet(&text.unwrap_or_default())
                                )),
                                retry_after,
                            ),
                            (_, text) => Attempt::Fatal(Failure::said(format!(
                                "HTTP {status}: {}",
                                snippet(&text.unwrap_or_default())
                            ))),
                        }
                    }
                    Err(
                        e @ (ureq::Error::Timeout(_)
                        | ureq::Error::Io(_)
                        | ureq::Error::ConnectionFailed),
                    ) => Attempt::Retry(Failure::caused("", e), None),
                    Err(e) => Attempt::Fatal(Failure::caused("", e)),
                }
            };
            match outcome {
                Attempt::Retry(reason, retry_after) if attempt < self.config.max_retries => {
                    let backoff = self
                        .config
                        .backoff
                        .saturating_mul(1u32 << attempt.min(20))
                        .min(self.config.max_backoff);
                    let wait = retry_after.map_or(backoff, |r| r.min(self.config.max_backoff));
                    tracing::debug!(model = %self.config.model, attempt, %reason, ?wait, "retrying LM request");
                    self.count(|u| u.retries += 1);
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                Attempt::Retry(failure, _) => {
                    return Err(self.failed(
                        Some(format!("gave up after {} attempts", attempt + 1)),
                        failure,
                    ))
                }
                Attempt::Fatal(failure) => return Err(self.failed(None, failure)),
            }
        }
    }
}

enum Attempt {
    Retry(Failure, Option<Duration>),
    Fatal(Failure),
}

/// Why one request failed: what happened and the error behind it, if any.
struct Failure {
    reason: String,
    cause: Option<ureq::Error>,
}

impl Failure {
    fn said(reason: String) -> Self {
        Failure {
            reason,
            cause: None,
        }
    }

    fn caused(reason: &str, cause: ureq::Error) -> Self {
        Failure {
            reason: reason.to_string(),
            cause: Some(cause),
        }
    }
}

/// `reason: cause`, or whichever of the two is there (as the error's
/// message will say it).
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.cause {
            None => f.write_str(&self.reason),
            Some(cause) if self.reason.is_empty() => write!(f, "{cause}"),
            Some(cause) => write!(f, "{}: {cause}", self.reason),
        }
    }
}

fn snippet(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

/// A cached reply, as stored on disk.
#[derive(Debug, Serialize, Deserialize)]
struct CacheEntry {
    model: String,
    text: String,
    prompt_tokens: u64,
    completion_tokens: u64,
}

impl LanguageModel for OpenAiClient {
    fn model(&self) -> &str {
        &self.config.model
    }

    fn complete(&self, messages: &[Message], params: &CompletionParams) -> Result<Completion> {
        let key = self.cache_key(messages, params);
        let cache_path = self.cache_path(&key);
        if let Some(path) = &cache_path {
            if let Some(entry) = read_cache(path) {
                self.count(|u| u.cache_hits += 1);
                return Ok(Completion {
                    text: entry.text,
                    prompt_tokens: entry.prompt_tokens,
                    completion_tokens: entry.completion_tokens,
                    cached: true,
                });
            }
        }

        let mut body = serde_json::json!({
            "model": self.config.model,
            "messages": messages,
            "temperature": params.temperature,
        });
        if let Some(max) = params.max_tokens {
            body["max_tokens"] = max.into();
        }
        if let Some(seed) = params.seed {
            body["seed"] = seed.into();
        }
        let reply = self
            .send(&body)
            .and_then(|text| parse_reply(&text).map_err(|r| self.error(r)));
        let completion = match reply {
            Ok(c) => c,
            Err(e) => {
                self.count(|u| u.failures += 1);
                return Err(e);
            }
        };
        self.spend(completion.prompt_tokens, completion.completion_tokens);
        if let Some(path) = &cache_path {
            let entry = CacheEntry {
                model: self.config.model.clone(),
                text: completion.text.clone(),
                prompt_tokens: completion.prompt_tokens,
                completion_tokens: completion.completion_tokens,
            };
            write_cache(path, &entry)?;
        }
        Ok(completion)
    }

    fn complete_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
        params: &CompletionParams,
    ) -> Result<ToolCompletion> {
        self.complete_tools(messages, tools, params)
    }
}

impl OpenAiClient {
    /// Count tokens and their cost (when prices are configured); the cost.
    fn spend(&self, prompt_tokens: u64, completion_tokens: u64) -> Option<f64> {
        let (p_cost, c_cost) = (
            self.config.prompt_cost_per_1k,
            self.config.completion_cost_per_1k,
        );
        let cost = (p_cost.is_some() || c_cost.is_some()).then(|| {
            prompt_tokens as f64 / 1000.0 * p_cost.unwrap_or(0.0)
                + completion_tokens as f64 / 1000.0 * c_cost.unwrap_or(0.0)
        });
        self.count(|u| {
            u.prompt_tokens += prompt_tokens;
            u.completion_tokens += completion_tokens;
            if let Some(cost) = cost {
                u.cost = Some(u.cost.unwrap_or(0.0) + cost);
            }
        });
        cost
    }

    /// [`LanguageModel::complete_with_tools`]: never cached, since agents
    /// sample several attempts from the same first conversation.
    fn complete_tools(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
        params: &CompletionParams,
    ) -> Result<ToolCompletion> {
        let mut body = serde_json::json!({
            "model": self.config.model,
            "messages": messages,
            "temperature": params.temperature,
        });
        if !tools.is_empty() {
            body["tools"] = serde_json::to_value(tools)
                .map_err(|e| Error::invalid("tool schemas", e.to_string()))?;
            body["tool_choice"] = "auto".into();
        }
        if let Some(max) = params.max_tokens {
            body["max_tokens"] = max.into();
        }
        if let Some(seed) = params.seed {
            body["seed"] = seed.into();
        }
        let reply = self
            .send(&body)
            .and_then(|text| parse_tool_reply(&text).map_err(|r| self.error(r)));
        let mut completion = match reply {
            Ok(c) => c,
            Err(e) => {
                self.count(|u| u.failures += 1);
                return Err(e);
            }
        };
        completion.cost = self.spend(completion.prompt_tokens, completion.completion_tokens);
        Ok(completion)
    }
}

/// The assistant message and token counts of a chat completions reply to a
/// request with tools. Arguments a server sends as a JSON object rather
/// than as text are written back as text; calls without an id get one.
fn parse_tool_reply(text: &str) -> std::result::Result<ToolCompletion, String> {
    let json: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("malformed JSON reply ({e}): {}", snippet(text)))?;
    let message = json
        .pointer("/choices/0/message")
        .ok_or_else(|| format!("reply has no choices[0].message: {}", snippet(text)))?;
    let content = message
        .get("content")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    let mut calls = Vec::new();
    if let Some(list) = message
        .get("tool_calls")
        .and_then(serde_json::Value::as_array)
    {
        for (n, call) in list.iter().enumerate() {
            let id = call
                .get("id")
                .and_then(serde_json::Value::as_str)
                .filter(|s| !s.is_empty())
                .map_or_else(|| format!("call_{n}"), str::to_string);
            let name = call
                .pointer("/function/name")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            let arguments = match call.pointer("/function/arguments") {
                Some(serde_json::Value::String(s)) => s.clone(),
                None | Some(serde_json::Value::Null) => String::new(),
                Some(other) => other.to_string(),
            };
            calls.push(ToolCall::new(id, name, arguments));
        }
    }
    let tokens = |name: &str| {
        json.pointer(&format!("/usage/{name}"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    Ok(ToolCompletion {
        message: ChatMessage::assistant(content, calls),
        prompt_tokens: tokens("prompt_tokens"),
        completion_tokens: tokens("completion_tokens"),
        cost: None,
    })
}

/// The text and token counts of a chat completions reply.
fn parse_reply(text: &str) -> std::result::Result<Completion, String> {
    let json: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("malformed JSON reply ({e}): {}", snippet(text)))?;
    let content = json
        .pointer("/choices/0/message/content")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| format!("reply has no choices[0].message.content: {}", snippet(text)))?;
    let tokens = |name: &str| {
        json.pointer(&format!("/usage/{name}"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    Ok(Completion {
        text: content.to_string(),
        prompt_tokens: tokens("prompt_tokens"),
        completion_tokens: tokens("completion_tokens"),
        cached: false,
    })
}

fn read_cache(path: &Path) -> Option<CacheEntry> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Write through a temporary file and rename, so a killed run never leaves
/// a half-written entry that later runs would trust.
fn write_cache(path: &Path, entry: &CacheEntry) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let json =
        serde_json::to_string(entry).map_err(|e| Error::invalid("cache entry", e.to_string()))?;
    std::fs::write(&tmp, json).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// A counting semaphore: `acquire` blocks while `permits` requests are in
/// flight.
#[derive(Debug)]
struct Semaphore {
    free: Mutex<usize>,
    released: Condvar,
}

impl Semaphore {
    fn new(permits: usize) -> Self {
        Semaphore {
            free: Mutex::new(permits),
            released: Condvar::new(),
        }
    }

    fn acquire(&self) -> Permit<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.released.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        Permit(self)
    }
}

struct Permit<'a>(&'a Semaphore);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut free = self.0.free.lock().unwrap_or_else(|p| p.into_inner());
        *free += 1;
        self.0.released.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn semaphore_bounds_concurrency() {
        let sem = Arc::new(Semaphore::new(2));
        let inside = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (sem, inside, peak) = (sem.clone(), inside.clone(), peak.clone());
                std::thread::spawn(move || {
                    let _p = sem.acquire();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn endpoint_appends_the_path_once() {
        assert_eq!(
            OpenAiConfig::new("http://h/v1/", "m").endpoint(),
            "http://h/v1/chat/completions"
        );
        assert_eq!(
            OpenAiConfig::new("http://h/v1/chat/completions", "m").endpoint(),
            "http://h/v1/chat/completions"
        );
    }

    #[test]
    fn replies_are_parsed_or_explained() {
        let ok = parse_reply(r#"{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#).unwrap();
        assert_eq!(
            (ok.text.as_str(), ok.prompt_tokens, ok.completion_tokens),
            ("hi", 3, 1)
        );
        assert!(parse_reply("{nope").unwrap_err().contains("malformed JSON"));
        let tools = parse_tool_reply(
            r#"{"choices":[{"message":{"content":null,"tool_calls":[
                {"id":"a","type":"function","function":{"name":"bash","arguments":"{\"command\":\"ls\"}"}},
                {"function":{"name":"submit","arguments":{}}}]}}],
                "usage":{"prompt_tokens":7,"completion_tokens":2}}"#,
        )
        .unwrap();
        assert_eq!(tools.message.content, None);
        assert_eq!(
            tools.message.tool_calls[0].function.arguments,
            r#"{"command":"ls"}"#
        );
        assert_eq!(tools.message.tool_calls[1].id, "call_1");
        assert_eq!(tools.message.tool_calls[1].function.arguments, "{}");
        assert_eq!((tools.prompt_tokens, tools.completion_tokens), (7, 2));
        assert!(parse_tool_reply(r#"{"choices":[]}"#).is_err());
        assert!(parse_reply(r#"{"choices":[]}"#)
            .unwrap_err()
            .contains("choices[0]"));
    }
}
