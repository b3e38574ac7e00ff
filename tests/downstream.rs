//! smith as a downstream crate uses it, through the public API only: a
//! custom AST mutator, a counting executor wrapper and a custom issue
//! writer go through `Pipeline::run` on the demo repository.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use smith::mutate::ast::{ast_mutator, python_ast::Expr, python_ast::Operator, AstContext};
use smith::mutate::ast::{AstMutator, Ranged};
use smith::pipeline::{Config, Pipeline};
use smith::{
    Executor, IssueContext, IssueWriter, Mutation, RunOptions, TestReport, TestSelection, Workspace,
};

/// `a + b` becomes `a - b`, one site at a time.
#[derive(Debug)]
struct AddToSub;

impl AstMutator for AddToSub {
    fn name(&self) -> &str {
        "downstream/add_to_sub"
    }

    fn mutate(&self, cx: &AstContext<'_>, _seed: u64) -> Vec<Mutation> {
        let mut out = Vec::new();
        for expr in cx.expressions() {
            let Expr::BinOp(b) = expr else { continue };
            if b.op != Operator::Add {
                continue;
            }
            // The operator is the text between the operands.
            let between = b.left.end()..b.right.start();
            let gap = &cx.file().text[between.start.to_usize()..between.end.to_usize()];
            let Some(at) = gap.find('+') else { continue };
            let plus = between.start.to_usize() + at;
            out.push(cx.mutation(
                self.name(),
                vec![smith::Edit::replacement("-", plus, plus + 1)],
                "`+` became `-`",
            ));
        }
        out
    }
}

/// Counts every test run of the executor it wraps (and of its fresh and
/// hash-seeded variants).
#[derive(Debug)]
struct Counting {
    inner: Box<dyn Executor>,
    runs: Arc<AtomicUsize>,
}

impl Executor for Counting {
    fn run_tests(
        &self,
        workspace: &mut dyn Workspace,
        selection: &TestSelection,
        options: &RunOptions,
    ) -> smith::Result<TestReport> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.inner.run_tests(workspace, selection, options)
    }
    fn prepare(&self, workspace: &mut dyn Workspace) -> smith::Result<()> {
        self.inner.prepare(workspace)
    }
    fn fresh(&self) -> Option<Box<dyn Executor>> {
        let inner = self.inner.fresh()?;
        Some(Box::new(Counting {
            inner,
            runs: self.runs.clone(),
        }))
    }
    fn with_seed(&self, seed: u32) -> Option<Box<dyn Executor>> {
        let inner = self.inner.with_seed(seed)?;
        Some(Box::new(Counting {
            inner,
            runs: self.runs.clone(),
        }))
    }
}

/// Statements naming the failing tests' count, and nothing of the fix.
#[derive(Debug, Default)]
struct Terse {
    written: AtomicUsize,
}

impl IssueWriter for Terse {
    fn name(&self) -> &str {
        "downstream/terse"
    }
    fn write(&self, context: &IssueContext) -> smith::Result<String> {
        self.written.fetch_add(1, Ordering::SeqCst);
        Ok(format!(
            "Arithmetic results are wrong: {} test(s) fail.",
            context.failing.len()
        ))
    }
}

#[test]
fn custom_mutator_executor_and_issue_writer_go_through_run() {
    let out = tempfile::tempdir().unwrap();
    let mut config = Config::new(
        common::manifest_dir().join("examples/demo-repo"),
        out.path(),
    );
    config.cache_dir = Some(common::env_cache());
    config.strategies = Some(vec!["downstream/add_to_sub".into()]);
    config.max_candidates = Some(4);
    config.baseline_runs = 2;
    config.workers = 2;
    let runs = Arc::new(AtomicUsize::new(0));
    let writer = Arc::new(Terse::default());
    let counter = runs.clone();
    let pipeline = Pipeline::new(config)
        .add_mutator(ast_mutator(AddToSub))
        .wrap_executor(move |inner| {
            Arc::new(Counting {
                inner: Box::new(inner),
                runs: counter.clone(),
            })
        })
        .issue_writer(writer.clone());
    let summary = pipeline.run().expect("the pipeline runs");

    // The mutator's candidates were validated, and the kept ones became
    // instances with the custom writer's statements.
    let ours = &summary.strategies["downstream/add_to_sub"];
    assert!(ours.validated >= 1, "{summary:#?}");
    assert!(ours.kept >= 1, "{summary:#?}");
    assert_eq!(summary.validated, ours.validated);
    assert_eq!(summary.instances, summary.kept);
    let instances: Vec<smith::TaskInstance> =
        smith::store::read_jsonl(&out.path().join("instances.jsonl")).unwrap();
    assert_eq!(instances.len(), summary.instances);
    for i in &instances {
        assert_eq!(i.strategy, "downstream/add_to_sub");
        assert!(i
            .problem_statement
            .starts_with("Arithmetic results are wrong"));
        // The bug is the mutator's: an added line holds the `-` that was a `+`.
        assert!(
            i.patch
                .lines()
                .any(|l| l.starts_with('+') && !l.starts_with("+++") && l.contains(" - ")),
            "{}",
            i.patch
        );
    }
    assert_eq!(writer.written.load(Ordering::SeqCst), instances.len());

    // The executor saw every run: at least the baseline's and one per
    // validated candidate.
    let seen = runs.load(Ordering::SeqCst);
    assert!(
        seen >= 2 + summary.validated,
        "{seen} runs for {} candidates",
        summary.validated
    );

    // Resuming redoes nothing: no new runs, same summary counts.
    let before = runs.load(Ordering::SeqCst);
    let mut config = Config::new(
        common::manifest_dir().join("examples/demo-repo"),
        out.path(),
    );
    config.cache_dir = Some(common::env_cache());
    config.strategies = Some(vec!["downstream/add_to_sub".into()]);
    config.max_candidates = Some(4);
    config.baseline_runs = 2;
    config.workers = 2;
    let counter = runs.clone();
    let again = Pipeline::new(config)
        .add_mutator(ast_mutator(AddToSub))
        .wrap_executor(move |inner| {
            Arc::new(Counting {
                inner: Box::new(inner),
                runs: counter.clone(),
            })
        })
        .issue_writer(writer.clone())
        .run()
        .expect("the resumed pipeline runs");
    assert_eq!(runs.load(Ordering::SeqCst), before);
    assert_eq!(again.instances, summary.instances);
}

#[test]
fn unknown_strategies_are_refused_before_any_stage() {
    let out = tempfile::tempdir().unwrap();
    let mut config = Config::new(
        common::manifest_dir().join("examples/demo-repo"),
        out.path(),
    );
    config.strategies = Some(vec!["custom/x".into()]);
    let err = Pipeline::new(config).run().unwrap_err();
    assert!(err.to_string().contains("custom/x"), "{err}");
    // Nothing was written: not even the run record.
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);

    // An LM strategy without a model is refused the same way.
    let mut config = Config::new(
        common::manifest_dir().join("examples/demo-repo"),
        out.path(),
    );
    config.strategies = Some(vec!["procedural".into(), "lm_modify".into()]);
    let err = Pipeline::new(config).run().unwrap_err();
    assert!(err.to_string().contains("language model"), "{err}");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}
