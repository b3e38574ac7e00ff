//! A mutator of your own, plugged into smith's generator next to the
//! built-in ones: here, one that makes `range(n)` stop one short.
//!
//! Run with `cargo run --example custom_mutator [repo]`.

use smith::mutate::{generate, procedural_mutators, python_files, FileOptions, GenerateOptions};
use smith::{Edit, Entity, Mutation, Mutator, SourceFile};

/// `range(x)` → `range(x - 1)`: the classic off-by-one.
#[derive(Debug)]
struct RangeOffByOne;

impl Mutator for RangeOffByOne {
    fn name(&self) -> &str {
        "custom/range_off_by_one"
    }

    fn mutate(&self, file: &SourceFile, entity: &Entity, _seed: u64) -> Vec<Mutation> {
        let body = file.slice(entity.range);
        let mut out = Vec::new();
        for (pos, _) in body.match_indices("range(") {
            let open = entity.range.start + pos + "range(".len();
            // Find the matching `)` of a single-argument call.
            let rest = &file.text[open..entity.range.end];
            let Some(close) = rest.find(')') else {
                continue;
            };
            let arg = &rest[..close];
            if arg.is_empty() || arg.contains([',', '(']) {
                continue;
            }
            out.push(Mutation {
                file: file.path.clone(),
                edits: vec![Edit::insertion(" - 1", open + close)],
                strategy: self.name().to_string(),
                description: format!("range({arg}) stops one short in {}", entity.qualname),
                entities: vec![entity.id()],
            });
        }
        out
    }
}

fn try_main() -> Result<(), Box<dyn std::error::Error>> {
    let repo = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "examples/demo-repo".into());
    let root = std::path::Path::new(&repo);
    let files = python_files(root, &FileOptions::default())?;
    let mut mutators = procedural_mutators();
    mutators.push(Box::new(RangeOffByOne));
    let options = GenerateOptions {
        strategies: Some(vec!["custom/range_off_by_one".into()]),
        ..Default::default()
    };
    let generated = generate(root, "local/demo", "0000000", &files, &mutators, &options)?;
    for c in &generated.candidates {
        println!("{} {}", &c.id[..8], c.description);
    }
    println!(
        "{} candidates from {} files",
        generated.candidates.len(),
        generated.files
    );
    Ok(())
}

fn main() {
    if let Err(err) = try_main() {
        eprintln!("error: {err}");
        let mut source = err.source();
        while let Some(s) = source {
            eprintln!("  caused by: {s}");
            source = s.source();
        }
        std::process::exit(1);
    }
}
