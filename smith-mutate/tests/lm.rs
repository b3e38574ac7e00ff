//! lm/modify and lm/rewrite with a scripted model: valid answers become
//! candidates, bad ones are rejected and counted.

use smith_core::memory::ScriptedModel;
use smith_core::{CompletionParams, Entity, SourceFile};
use smith_mutate::{
    extract_code_block, extract_entities, lm_bug, lm_bugs, LmOutcome, LmRequest, LmStrategy,
    Prompts, Rejection,
};

const SHOP: &str = r#"import math


class Cart:
    """A shopping cart."""

    def __init__(self):
        self.items = []

    def total(self, discount=0):
        """Sum of prices, less `discount` percent, rounded up."""
        # prices are in cents
        subtotal = sum(price for _, price in self.items)
        return math.ceil(subtotal * (100 - discount) / 100)


def clamp(x, lo, hi):
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x
"#;

fn file() -> SourceFile {
    SourceFile::new("shop/cart.py", SHOP)
}

fn entity(qualname: &str) -> Entity {
    extract_entities(&file())
        .unwrap()
        .into_iter()
        .find(|e| e.qualname == qualname)
        .unwrap()
}

/// Call `f` with the request these tests make: the shop repository, default
/// parameters and `prompts`.
fn with_request<T>(prompts: &Prompts, f: impl FnOnce(&LmRequest) -> T) -> T {
    let params = CompletionParams::default();
    f(&LmRequest {
        repo: &smith_core::RepoRef::new("acme/shop", "abc123"),
        prompts,
        params: &params,
    })
}

fn ask(strategy: LmStrategy, qualname: &str, answer: &str) -> (LmOutcome, ScriptedModel) {
    let model = ScriptedModel::new([answer]);
    let out = with_request(&Prompts::default(), |request| {
        lm_bug(&model, strategy, &file(), &entity(qualname), request)
    })
    .unwrap();
    (out, model)
}

#[test]
fn modify_accepts_a_valid_answer_for_a_method() {
    let answer = "Here it is:\n\n```python\ndef total(self, discount=0):\n    \"\"\"Sum of prices, less `discount` percent, rounded up.\"\"\"\n    # prices are in cents\n    subtotal = sum(price for _, price in self.items)\n    return math.floor(subtotal * (100 - discount) / 100)\n```\n";
    let (out, model) = ask(LmStrategy::Modify, "Cart.total", answer);
    let LmOutcome::Candidate(c) = out else {
        panic!("rejected: {out:?}");
    };
    assert_eq!(c.strategy, "lm/modify");
    assert_eq!(c.entities, ["shop/cart.py::Cart.total"]);
    let buggy = c.patch.apply_to_text("shop/cart.py", SHOP).unwrap();
    assert_eq!(
        buggy,
        SHOP.replace("return math.ceil(", "return math.floor(")
    );
    assert_eq!(c.patch.changed_lines(), 2);
    // The prompt shows the entity and the file, with placeholders filled.
    let prompt = &model.requests()[0][0].content;
    assert!(prompt.contains("shop/cart.py"), "{prompt}");
    assert!(
        prompt.contains("def total(self, discount=0):\n    \"\"\"Sum"),
        "{prompt}"
    );
    assert!(!prompt.contains("{{"), "{prompt}");
}

#[test]
fn modify_rejects_non_code_revealing_identical_and_wrong_answers() {
    let cases: &[(&str, Rejection)] = &[
        ("I cannot help with introducing bugs.", Rejection::NoCode),
        (
            "```python\ndef clamp(x, lo, hi):\n    if x <= lo:  # bug: was <\n        return lo\n    if x > hi:\n        return hi\n    return x\n```",
            Rejection::RevealingComment,
        ),
        (
            "```python\ndef clamp(x, lo, hi):\n    if x < lo:\n        return lo\n    # changed the upper check\n    if x >= hi:\n        return hi\n    return x\n```",
            Rejection::RevealingComment,
        ),
        (
            "```python\ndef clamp(x, lo, hi):\n    if x < lo:\n        return lo\n    if (x > hi):\n        return hi\n    return x\n```",
            Rejection::Unchanged,
        ),
        (
            "```python\ndef clamp(x, lo, hi:\n    return x\n```",
            Rejection::Unparsable,
        ),
        (
            "```python\ndef clip(x, lo, hi):\n    return min(max(x, lo), hi)\n```",
            Rejection::WrongShape,
        ),
        (
            "```python\nimport os\ndef clamp(x, lo, hi):\n    return x\n```",
            Rejection::WrongShape,
        ),
    ];
    for (answer, want) in cases {
        let (out, _) = ask(LmStrategy::Modify, "clamp", answer);
        assert_eq!(out, LmOutcome::Rejected(*want), "answer: {answer}");
    }
    // A comment without marker words is fine.
    let (out, _) = ask(
        LmStrategy::Modify,
        "clamp",
        "```py\ndef clamp(x, lo, hi):\n    # lower bound first\n    if x <= lo:\n        return lo\n    if x > hi:\n        return hi\n    return x\n```",
    );
    assert!(matches!(out, LmOutcome::Candidate(_)), "{out:?}");
}

#[test]
fn rewrite_prompt_hides_the_body_and_diff_is_the_candidate() {
    let answer = "```python\n    def total(self, discount=0):\n        \"\"\"Sum of prices, less `discount` percent, rounded up.\"\"\"\n        subtotal = 0\n        for _, price in self.items:\n            subtotal += price\n        return round(subtotal * (100 - discount) / 100)\n```";
    let (out, model) = ask(LmStrategy::Rewrite, "Cart.total", answer);
    let prompt = &model.requests()[0][0].content;
    assert!(
        prompt.contains("def total(self, discount=0):\n    \"\"\"Sum of prices, less `discount` percent, rounded up.\"\"\"\n    ...\n"),
        "{prompt}"
    );
    assert!(
        !prompt.contains("math.ceil(subtotal"),
        "body leaked: {prompt}"
    );
    let LmOutcome::Candidate(c) = out else {
        panic!("rejected: {out:?}");
    };
    assert_eq!(c.strategy, "lm/rewrite");
    let buggy = c.patch.apply_to_text("shop/cart.py", SHOP).unwrap();
    assert!(
        buggy.contains("        for _, price in self.items:\n            subtotal += price\n"),
        "{buggy}"
    );
    assert!(
        buggy.contains("class Cart:") && buggy.contains("def clamp("),
        "{buggy}"
    );
    assert!(!buggy.contains("math.ceil"), "{buggy}");
}

#[test]
fn rewrite_rejects_the_original_body_and_skips_classes() {
    let original = format!(
        "```python\n{}\n```",
        &SHOP[SHOP.find("def clamp").unwrap()..].trim_end()
    );
    let (out, _) = ask(LmStrategy::Rewrite, "clamp", &original);
    assert_eq!(out, LmOutcome::Rejected(Rejection::Unchanged));
    let (out, model) = ask(LmStrategy::Rewrite, "Cart", "unused");
    assert_eq!(out, LmOutcome::NotApplicable);
    assert!(model.requests().is_empty(), "no request for a class");
}

#[test]
fn batch_counts_every_outcome_and_model_errors() {
    // Three requests, two replies: the third request fails at the model.
    let model = ScriptedModel::new([
        "```python\ndef clamp(x, lo, hi):\n    if x < lo:\n        return hi\n    if x > hi:\n        return hi\n    return x\n```",
        "nothing useful",
    ]);
    let clamp = entity("clamp");
    let (made, stats) = with_request(&Prompts::default(), |request| {
        lm_bugs(
            &model,
            LmStrategy::Modify,
            &file(),
            &[clamp.clone(), clamp.clone(), clamp],
            request,
        )
    })
    .unwrap();
    assert_eq!(made.len(), 1);
    assert_eq!(stats.asked, 3);
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.rejected[&Rejection::NoCode], 1);
    assert_eq!(stats.rejected[&Rejection::ModelError], 1);
}

#[test]
fn prompts_load_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("modify.md");
    std::fs::write(&path, "Break {{name}} in {{path}}:\n{{code}}\n").unwrap();
    let prompts = Prompts::load(Some(&path), None).unwrap();
    assert_eq!(prompts.rewrite, Prompts::default().rewrite);
    let model = ScriptedModel::new(["no"]);
    with_request(&prompts, |request| {
        lm_bug(
            &model,
            LmStrategy::Modify,
            &file(),
            &entity("clamp"),
            request,
        )
    })
    .unwrap();
    let sent = &model.requests()[0][0].content;
    assert!(
        sent.starts_with("Break clamp in shop/cart.py:\ndef clamp(x, lo, hi):"),
        "{sent}"
    );
    assert!(Prompts::load(Some(&dir.path().join("missing.md")), None).is_err());
}

#[test]
fn code_block_extraction_prefers_python() {
    assert_eq!(extract_code_block("no code"), None);
    assert_eq!(
        extract_code_block("```\nx = 1\n```").as_deref(),
        Some("x = 1\n")
    );
    assert_eq!(
        extract_code_block("```text\nout\n```\n```python\ny = 2\n```").as_deref(),
        Some("y = 2\n")
    );
    assert_eq!(extract_code_block("```python\nunclosed\n"), None);
}
