//! A downstream AST mutator (through `smith::mutate::ast`) against a
//! comparable built-in one (`func_pm_op_boundary`, which moves comparison
//! boundaries) on one large Python file: candidate generation time, one
//! thread, median of several passes. The file is the largest of the dev
//! corpus when `target/smith-mutate-corpus` holds it
//! (`scripts/corpus/fetch-corpus.sh -s dev target/smith-mutate-corpus`),
//! else a generated file of about 6,400 lines.
//!
//! `cargo bench --bench ast_mutator`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use smith::mutate::ast::{
    ast_mutator, python_ast::CmpOp, python_ast::Expr, AstContext, AstMutator,
};
use smith::mutate::{generate, is_test_path, python_files, GenerateOptions, Procedural};
use smith::{Edit, Mutation, Mutator};

/// `<` ↔ `<=`, `>` ↔ `>=`: what `func_pm_op_boundary` does, written as a
/// downstream crate would.
#[derive(Debug)]
struct Boundary;

impl AstMutator for Boundary {
    fn name(&self) -> &str {
        "custom/boundary"
    }

    fn mutate(&self, cx: &AstContext<'_>, _seed: u64) -> Vec<Mutation> {
        let mut out = Vec::new();
        for expr in cx.expressions() {
            let Expr::Compare(c) = expr else { continue };
            let mut left = c.left.as_ref();
            for (op, right) in c.ops.iter().zip(c.comparators.iter()) {
                let new = match op {
                    CmpOp::Lt => "<=",
                    CmpOp::LtE => "<",
                    CmpOp::Gt => ">=",
                    CmpOp::GtE => ">",
                    _ => {
                        left = right;
                        continue;
                    }
                };
                let text = cx.file().text.as_str();
                let (from, to) = (
                    smith::mutate::ast::Ranged::end(left).to_usize(),
                    smith::mutate::ast::Ranged::start(right).to_usize(),
                );
                let gap = &text[from..to];
                if let Some(at) = gap.find(op.as_str()) {
                    let s = from + at;
                    out.push(cx.mutation(
                        self.name(),
                        vec![Edit::replacement(new, s, s + op.as_str().len())],
                        format!("`{}` became `{new}`", op.as_str()),
                    ));
                }
                left = right;
            }
        }
        out
    }
}

/// The largest library (non-test) file of the dev corpus: its project's
/// root and its path there.
fn largest_corpus_file() -> Option<(PathBuf, String)> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/smith-mutate-corpus");
    let mut best: Option<(u64, PathBuf, String)> = None;
    for project in std::fs::read_dir(&corpus).ok()?.flatten() {
        let root = project.path();
        if !root.is_dir() {
            continue;
        }
        let Ok(files) = python_files(&root, &Default::default()) else {
            continue;
        };
        for file in files.into_iter().filter(|f| !is_test_path(f)) {
            let len = std::fs::metadata(root.join(&file)).map_or(0, |m| m.len());
            if best.as_ref().is_none_or(|(l, _, _)| len > *l) {
                best = Some((len, root.clone(), file));
            }
        }
    }
    best.map(|(_, root, file)| (root, file))
}

fn generated_file() -> (PathBuf, String) {
    let dir = std::env::temp_dir().join("smith-bench-ast-mutator");
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = String::new();
    for i in 0..400 {
        text.push_str(&format!(
            "class Thing{i}:\n    def __init__(self, n):\n        self.n = n\n\n    \
             def clamp(self, x, lo=0):\n        if x < lo:\n            return lo\n        \
             if x >= self.n:\n            return self.n - 1\n        return x\n\n    \
             def count(self, xs):\n        total = 0\n        for x in xs:\n            \
             if x > 0 and x <= self.n:\n                total += x\n        return total\n\n\n"
        ));
    }
    std::fs::write(dir.join("big.py"), text).unwrap();
    (dir, "big.py".into())
}

fn time(root: &Path, file: &str, mutator: Box<dyn Mutator>) -> (Duration, usize) {
    let mutators = vec![mutator];
    let options = GenerateOptions {
        threads: Some(1),
        max_per_entity: None,
        ..Default::default()
    };
    let files = vec![file.to_string()];
    let mut times = Vec::new();
    let mut n = 0;
    for _ in 0..7 {
        let started = Instant::now();
        let g = generate(
            root,
            &smith::RepoRef::new("bench/bench", "0000000"),
            &files,
            &mutators,
            &options,
        )
        .unwrap();
        times.push(started.elapsed());
        n = g.candidates.len();
    }
    times.sort();
    (times[times.len() / 2], n)
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench`-less args;
    // one pass is enough there.
    let (root, file) = largest_corpus_file().unwrap_or_else(generated_file);
    let text = std::fs::read_to_string(root.join(&file)).unwrap();
    println!("file: {} ({} lines)", file, text.lines().count());
    let builtin = Procedural::by_name("func_pm_op_boundary").unwrap();
    let (b, bn) = time(&root, &file, Box::new(builtin));
    let (c, cn) = time(&root, &file, ast_mutator(Boundary));
    println!(
        "built-in func_pm_op_boundary: {:>8.2} ms, {bn} candidates",
        b.as_secs_f64() * 1e3
    );
    println!(
        "custom AST boundary mutator:  {:>8.2} ms, {cn} candidates",
        c.as_secs_f64() * 1e3
    );
    println!(
        "ratio custom / built-in: {:.2}",
        c.as_secs_f64() / b.as_secs_f64()
    );
}
