//! A mutator of your own, over the Python AST, run through smith's whole
//! pipeline next to (or instead of) the built-in ones: here, one that makes
//! `len(x)` one short. Ends with validated task instances.
//!
//! Run with `cargo run --example custom_mutator [repo] [out]`.

use std::path::Path;
use std::sync::Arc;

use smith::mutate::ast::{ast_mutator, python_ast::Expr, AstContext, AstMutator};
use smith::pipeline::{Config, Pipeline, Summary};
use smith::Mutation;

/// `len(x)` → `(len(x) - 1)`: the classic off-by-one.
#[derive(Debug)]
pub struct LenOffByOne;

impl AstMutator for LenOffByOne {
    fn name(&self) -> &str {
        "custom/len_off_by_one"
    }

    fn mutate(&self, cx: &AstContext<'_>, _seed: u64) -> Vec<Mutation> {
        let mut out = Vec::new();
        for expr in cx.expressions() {
            let Expr::Call(call) = expr else { continue };
            let Expr::Name(name) = &*call.func else {
                continue;
            };
            if name.id.as_str() != "len" || call.arguments.args.len() != 1 {
                continue;
            }
            let edit = cx.replace(expr, format!("({} - 1)", cx.text(expr)));
            out.push(cx.mutation(self.name(), vec![edit], "a length is one short"));
        }
        out
    }
}

/// Run the pipeline on `repo` with only the custom mutator, writing to
/// `out` (virtualenvs cached in `cache`, if given).
pub fn custom_mutator_run(repo: &Path, out: &Path, cache: Option<&Path>) -> smith::Result<Summary> {
    let mut config = Config::new(repo, out);
    config.cache_dir = cache.map(Path::to_path_buf);
    config.strategies = Some(vec!["custom/len_off_by_one".into()]);
    config.max_candidates = Some(4);
    config.baseline_runs = 2;
    Pipeline::new(config)
        .add_mutator(Arc::from(ast_mutator(LenOffByOne)))
        .run()
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let repo = args.next().unwrap_or_else(|| "examples/demo-repo".into());
    let out = args
        .next()
        .unwrap_or_else(|| "smith-out/custom-mutator".into());
    let summary = custom_mutator_run(Path::new(&repo), Path::new(&out), None)?;
    println!(
        "{} candidates, {} validated, {} kept, {} instances in {}",
        summary.candidates,
        summary.validated,
        summary.kept,
        summary.instances,
        summary.instances_path.display()
    );
    Ok(())
}
