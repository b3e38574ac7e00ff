//! The language-model issue writer: a prompt built from the bug patch, the
//! source of one failing test and its output, sent to any
//! [`LanguageModel`]; the reply is cleaned of code fences and preambles.
//!
//! Prompts are templates with `{{name}}` placeholders. The defaults ship in
//! the crate (`prompts/issue_system.md`, `prompts/issue_user.md`); users
//! replace either file with [`PromptTemplates::from_dir`] or
//! [`PromptTemplates::from_files`]. Placeholders: `repo`, `instance`,
//! `patch`, `test_id`, `test_source`, `test_output`, `failing_tests`.

use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;
use smith_core::{
    stable_hash, CompletionParams, Error, FailingTest, IssueContext, IssueWriter, LanguageModel,
    Message, Result,
};

const DEFAULT_SYSTEM: &str = include_str!("../prompts/issue_system.md");
const DEFAULT_USER: &str = include_str!("../prompts/issue_user.md");
const PLACEHOLDERS: &[&str] = &[
    "repo",
    "instance",
    "patch",
    "test_id",
    "test_source",
    "test_output",
    "failing_tests",
];

/// The system and user prompt templates of [`LmIssueWriter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptTemplates {
    /// The system message template.
    pub system: String,
    /// The user message template.
    pub user: String,
}

impl Default for PromptTemplates {
    fn default() -> Self {
        PromptTemplates {
            system: DEFAULT_SYSTEM.to_string(),
            user: DEFAULT_USER.to_string(),
        }
    }
}

impl PromptTemplates {
    /// Templates from `dir/system.md` and `dir/user.md`; a file that is not
    /// there keeps its default.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let pick = |name: &str| {
            let path = dir.join(name);
            path.exists().then_some(path)
        };
        Self::from_files(pick("system.md").as_deref(), pick("user.md").as_deref())
    }

    /// Templates from the given files; `None` keeps the default.
    pub fn from_files(system: Option<&Path>, user: Option<&Path>) -> Result<Self> {
        let read = |path: &Path| std::fs::read_to_string(path).map_err(|e| Error::io(path, e));
        let mut templates = PromptTemplates::default();
        if let Some(path) = system {
            templates.system = read(path)?;
        }
        if let Some(path) = user {
            templates.user = read(path)?;
        }
        templates.validate()?;
        Ok(templates)
    }

    /// Fail on a `{{name}}` that is not a known placeholder (a typo would
    /// otherwise reach the model verbatim).
    pub fn validate(&self) -> Result<()> {
        for (which, text) in [("system", &self.system), ("user", &self.user)] {
            for caps in placeholder_re().captures_iter(text) {
                let name = &caps[1];
                if !PLACEHOLDERS.contains(&name) {
                    return Err(Error::invalid(
                        format!("{which} prompt template"),
                        format!(
                            "unknown placeholder `{{{{{name}}}}}`; known: {}",
                            PLACEHOLDERS.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The messages for one request, placeholders filled from `vars`.
    pub fn render(&self, vars: &[(&str, &str)]) -> Vec<Message> {
        let fill = |template: &str| {
            placeholder_re()
                .replace_all(template, |caps: &regex::Captures<'_>| {
                    vars.iter()
                        .find(|(k, _)| *k == &caps[1])
                        .map_or_else(String::new, |(_, v)| v.to_string())
                })
                .trim()
                .to_string()
        };
        let mut messages = Vec::with_capacity(2);
        let system = fill(&self.system);
        if !system.is_empty() {
            messages.push(Message::system(system));
        }
        messages.push(Message::user(fill(&self.user)));
        messages
    }
}

fn placeholder_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\{\{\s*([A-Za-z_]+)\s*\}\}").expect("valid regex"))
}

/// Writes problem statements with a language model. The failing test shown
/// to the model is chosen by the context's seed, and the seed is passed on
/// in the request, so a retry with another seed is a different request (and
/// a different cache entry).
///
/// ```
/// use smith_core::memory::ScriptedModel;
/// use smith_core::{Candidate, IssueContext, IssueWriter, Patch};
/// use smith_issue::LmIssueWriter;
///
/// let model = ScriptedModel::new(["Sure, here is the issue:\n\n```markdown\nadd() is wrong\n\nIt returns -1.\n```"]);
/// let writer = LmIssueWriter::new(model);
/// let candidate = Candidate::new(&smith_core::RepoRef::new("o/r", "c"), "s", vec![], "", Patch::from_text(""));
/// let context = IssueContext { candidate, failing: vec![], original_code: vec![], seed: 0 };
/// assert_eq!(writer.write(&context).unwrap(), "add() is wrong\n\nIt returns -1.");
/// ```
#[derive(Debug)]
pub struct LmIssueWriter {
    model: Box<dyn LanguageModel>,
    prompts: PromptTemplates,
    params: CompletionParams,
    max_section_chars: usize,
}

impl LmIssueWriter {
    /// A writer over `model` with the default prompts and parameters.
    pub fn new(model: impl LanguageModel + 'static) -> Self {
        LmIssueWriter {
            model: Box::new(model),
            prompts: PromptTemplates::default(),
            params: CompletionParams::default(),
            max_section_chars: 6000,
        }
    }

    /// Use these prompt templates.
    pub fn with_prompts(mut self, prompts: PromptTemplates) -> Self {
        self.prompts = prompts;
        self
    }

    /// Use these sampling parameters (the seed is set per request).
    pub fn with_params(mut self, params: CompletionParams) -> Self {
        self.params = params;
        self
    }

    /// Cut the patch, test source and output to at most this many
    /// characters each (long logs would crowd the prompt).
    pub fn with_max_section_chars(mut self, chars: usize) -> Self {
        self.max_section_chars = chars;
        self
    }

    /// The failing test the prompt for `context` shows.
    pub fn chosen_test<'a>(&self, context: &'a IssueContext) -> Option<&'a FailingTest> {
        let with_source: Vec<&FailingTest> = context
            .failing
            .iter()
            .filter(|t| t.source.is_some())
            .collect();
        let pool: Vec<&FailingTest> = if with_source.is_empty() {
            context.failing.iter().collect()
        } else {
            with_source
        };
        if pool.is_empty() {
            return None;
        }
        let pick = stable_hash(&[context.candidate.id.as_bytes(), &context.seed.to_le_bytes()]);
        Some(pool[(pick % pool.len() as u128) as usize])
    }

    /// The messages sent for `context`.
    pub fn messages(&self, context: &IssueContext) -> Vec<Message> {
        let test = self.chosen_test(context);
        let cut = |s: &str| truncate(s, self.max_section_chars);
        let failing: Vec<String> = context
            .failing
            .iter()
            .map(|t| format!("- {}", t.id))
            .collect();
        let patch = cut(context.candidate.patch.as_str());
        let test_id = test.map_or_else(String::new, |t| t.id.to_string());
        let test_source = cut(test
            .and_then(|t| t.source.as_deref())
            .unwrap_or("(not available)"));
        let test_output = cut(test.map_or("(not available)", |t| t.output.as_str()));
        let failing_tests = failing.join("\n");
        self.prompts.render(&[
            ("repo", &context.candidate.repo),
            ("instance", &context.candidate.id),
            ("patch", &patch),
            ("test_id", &test_id),
            ("test_source", &test_source),
            ("test_output", &test_output),
            ("failing_tests", &failing_tests),
        ])
    }

    /// `n` statements for one task, with seeds `seed..seed + n` (each a
    /// different request). Statements are not leak-checked here; use
    /// [`write_checked`](crate::write_checked) per seed for that.
    pub fn write_many(&self, context: &IssueContext, n: u32) -> Result<Vec<String>> {
        let mut ctx = context.clone();
        (0..u64::from(n))
            .map(|i| {
                ctx.seed = context.seed.wrapping_add(i);
                self.write(&ctx)
            })
            .collect()
    }
}

impl IssueWriter for LmIssueWriter {
    fn name(&self) -> &str {
        "lm"
    }

    fn write(&self, context: &IssueContext) -> Result<String> {
        let messages = self.messages(context);
        let params = CompletionParams {
            seed: Some(context.seed),
            ..self.params.clone()
        };
        let completion = self.model.complete(&messages, &params)?;
        let statement = strip_reply(&completion.text);
        if statement.is_empty() {
            return Err(Error::issue(
                context.candidate.id.clone(),
                format!("model `{}` returned an empty statement", self.model.model()),
            ));
        }
        Ok(statement)
    }
}

/// Clean a model's reply into a statement: drop `<think>` blocks, a preamble
/// line ("Sure, here is the issue:"), a code fence around the whole reply,
/// and a closing offer ("Let me know if ...").
pub fn strip_reply(reply: &str) -> String {
    static THINK: OnceLock<Regex> = OnceLock::new();
    static PREAMBLE: OnceLock<Regex> = OnceLock::new();
    static CLOSING: OnceLock<Regex> = OnceLock::new();
    let think = THINK.get_or_init(|| Regex::new(r"(?s)<think>.*?</think>").expect("valid regex"));
    let preamble = PREAMBLE.get_or_init(|| {
        Regex::new(r"(?i)^(?:sure|certainly|of course|okay|ok|here(?:'s| is| are)|below is|absolutely)\b[^\n]*$")
            .expect("valid regex")
    });
    let closing = CLOSING.get_or_init(|| {
        Regex::new(r"(?i)^(?:let me know|i hope this|hope this helps|feel free to)\b")
            .expect("valid regex")
    });

    let mut text = think.replace_all(reply, "").trim().to_string();
    loop {
        let before = text.clone();
        if let Some((first, rest)) = text.split_once('\n') {
            if preamble.is_match(first.trim()) && first.trim_end().ends_with([':', '.', '!']) {
                text = rest.trim().to_string();
            }
        }
        if let Some(inner) = unfence(&text) {
            text = inner;
        }
        if let Some((rest, last)) = text.rsplit_once('\n') {
            if closing.is_match(last.trim()) {
                text = rest.trim().to_string();
            }
        }
        if text == before {
            return text;
        }
    }
}

/// The inside of a code fence that wraps the whole text (```` ```markdown ````
/// ... ```` ``` ````), if it does.
fn unfence(text: &str) -> Option<String> {
    let rest = text.strip_prefix("```")?;
    let (lang, body) = rest.split_once('\n')?;
    if !lang.trim().chars().all(|c| c.is_alphanumeric()) {
        return None;
    }
    let body = body.trim_end().strip_suffix("```")?;
    // A reply that is one python snippet is not a wrapped statement.
    if matches!(lang.trim(), "python" | "py") {
        return None;
    }
    Some(body.trim().to_string())
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n... (truncated)", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_reply_removes_wrapping_and_chatter() {
        assert_eq!(
            strip_reply("<think>hmm</think>\nTitle\n\nBody"),
            "Title\n\nBody"
        );
        assert_eq!(
            strip_reply("Here is the issue:\n```md\nTitle\n\n```python\nx()\n```\n```\nLet me know if you need more."),
            "Title\n\n```python\nx()\n```"
        );
        assert_eq!(strip_reply("```python\nx()\n```"), "```python\nx()\n```");
        assert_eq!(
            strip_reply("Sure thing, the title is here"),
            "Sure thing, the title is here"
        );
    }

    #[test]
    fn unknown_placeholders_are_rejected() {
        let bad = PromptTemplates {
            system: String::new(),
            user: "{{patch}} {{tset_source}}".into(),
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("tset_source"), "{err}");
        assert!(PromptTemplates::default().validate().is_ok());
    }

    #[test]
    fn render_fills_known_and_blanks_missing() {
        let t = PromptTemplates {
            system: "".into(),
            user: "a={{ repo }} b={{patch}}".into(),
        };
        let m = t.render(&[("repo", "o/r")]);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].content, "a=o/r b=");
    }
}
