//! The leak check: statements that leak in each way are caught, clean ones
//! pass, and `write_checked` regenerates and counts leaks.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::{calc_repo, mutation};
use smith_core::{IssueContext, IssueWriter, Result};
use smith_issue::{check_leak, write_checked, LeakKind};

fn stack_context() -> IssueContext {
    let m = mutation("stack_pop");
    m.context(&calc_repo(), &m.log(), 0)
}

fn add_context() -> IssueContext {
    let m = mutation("add_op");
    m.context(&calc_repo(), &m.log(), 0)
}

fn kind(statement: &str, context: &IssueContext) -> Option<LeakKind> {
    check_leak(statement, context).map(|l| l.kind)
}

#[test]
fn quoting_the_buggy_line_is_an_added_line_leak() {
    let ctx = stack_context();
    let s =
        "Stack.pop is broken.\n\nIt does `return self.items.pop(0)` which takes from the bottom.";
    let leak = check_leak(s, &ctx).unwrap();
    assert_eq!(leak.kind, LeakKind::AddedLine);
    assert_eq!(leak.detail, "return self.items.pop(0)");
    // Spacing and quotes do not hide it.
    assert_eq!(
        kind("see  return self . items.pop( 0 )", &ctx),
        Some(LeakKind::AddedLine)
    );
}

#[test]
fn quoting_the_correct_line_is_a_removed_line_leak() {
    let ctx = add_context();
    assert_eq!(
        kind("The function should just do return a+b like before.", &ctx),
        Some(LeakKind::RemovedLine)
    );
}

#[test]
fn quoting_the_original_entity_is_an_original_code_leak() {
    let ctx = stack_context();
    // `if not self.items:` is unchanged by the bug but part of the entity.
    let s = "pop() checks\n```python\nif not self.items:\n    raise IndexError(\"pop from empty stack\")\n```";
    assert_eq!(kind(s, &ctx), Some(LeakKind::OriginalCode));
    // The docstring is intent, not code: paraphrasing it is fine.
    let ctx = add_context();
    assert_eq!(kind("The docs say: Return the sum of a and b.", &ctx), None);
}

#[test]
fn diff_syntax_is_a_hunk_leak() {
    let ctx = add_context();
    assert_eq!(
        kind("Looks like this:\n@@ -5,3 +5,3 @@ def add(a, b):\n", &ctx),
        Some(LeakKind::DiffHunk)
    );
    assert_eq!(
        kind("--- a/calc/__init__.py\n+++ b/calc/__init__.py\n", &ctx),
        Some(LeakKind::DiffHunk)
    );
    // A diff of code that is not even the patch.
    let s = "Suggested change:\n\n-    total = compute(x)\n+    total = compute(y)\n";
    assert_eq!(kind(s, &ctx), Some(LeakKind::DiffHunk));
    // Markdown bullets are not diffs.
    let bullets = "Failing tests:\n\n- `tests/test_calc.py::test_add`\n- `tests/test_calc.py::test_add_many[2-3-5]`\n- and (maybe) more: see CI.\n";
    assert_eq!(kind(bullets, &ctx), None);
}

#[test]
fn telling_the_fix_is_an_explicit_fix_leak() {
    let ctx = add_context();
    assert_eq!(
        kind("To fix it, change `-` to `+` in add.", &ctx),
        Some(LeakKind::ExplicitFix)
    );
    assert_eq!(
        kind("Replacing - with + makes the tests pass.", &ctx),
        Some(LeakKind::ExplicitFix)
    );
    assert_eq!(
        kind("The sum should be `a + b`.", &ctx),
        Some(LeakKind::ExplicitFix)
    );
    assert_eq!(
        kind("It uses `a - b` instead of `a + b`.", &ctx),
        Some(LeakKind::ExplicitFix)
    );

    let ctx = stack_context();
    assert_eq!(
        kind("pop must use `pop()` rather than `pop(0)`.", &ctx),
        Some(LeakKind::ExplicitFix)
    );
}

#[test]
fn symptoms_and_expected_values_are_not_leaks() {
    let ctx = add_context();
    let clean = [
        "`add(1, 2)` returns -1 instead of 3.",
        "`add(2, 3)` should be `5`, but I get `-1`.",
        "Calling add with a positive second argument subtracts it.",
        "```python\nfrom calc import add\nassert add(1, 2) == 3\n```",
        "```\nE       assert -1 == 3\nE        +  where -1 = add(1, 2)\n```",
        "Please change the docs to say that add is commutative.",
    ];
    for s in clean {
        assert_eq!(check_leak(s, &ctx), None, "{s}");
    }
    let ctx = stack_context();
    assert_eq!(
        kind(
            "`s.pop()` gives `1`; I expected `2`. The stack acts like a queue.",
            &ctx
        ),
        None
    );
}

/// A writer that leaks on its first `leaky` seeds, then writes a clean
/// statement; counts its calls.
#[derive(Debug)]
struct LeakyWriter {
    first_seed: u64,
    leaky: u64,
    calls: AtomicU64,
}

impl IssueWriter for LeakyWriter {
    fn name(&self) -> &str {
        "leaky"
    }
    fn write(&self, context: &IssueContext) -> Result<String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(if context.seed < self.first_seed + self.leaky {
            format!("seed {}: the code says `return a - b`", context.seed)
        } else {
            format!("seed {}: `add(1, 2)` returns -1", context.seed)
        })
    }
}

#[test]
fn write_checked_retries_with_the_next_seed_and_counts_leaks() {
    let mut ctx = add_context();
    ctx.seed = 10;
    let writer = LeakyWriter {
        first_seed: 10,
        leaky: 2,
        calls: AtomicU64::new(0),
    };
    let checked = write_checked(&writer, &ctx, 5).unwrap();
    assert_eq!(checked.statement, "seed 12: `add(1, 2)` returns -1");
    assert_eq!((checked.attempts, checked.leaked), (3, 2));
    assert!(checked.leaks.iter().all(|l| l.kind == LeakKind::AddedLine));
    assert_eq!(writer.calls.load(Ordering::SeqCst), 3);

    let always = LeakyWriter {
        first_seed: 10,
        leaky: 100,
        calls: AtomicU64::new(0),
    };
    let err = write_checked(&always, &ctx, 4).unwrap_err().to_string();
    assert!(err.contains("all 4 statements"), "{err}");
    assert!(err.contains(&ctx.candidate.id), "{err}");
    assert_eq!(always.calls.load(Ordering::SeqCst), 4);
}
