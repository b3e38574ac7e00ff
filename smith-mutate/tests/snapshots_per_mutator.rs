//! One snapshot per built-in mutator: its fixture `tests/fixtures/<name>.py`
//! goes in, every emitted diff comes out. Reviewing a mutator is reading
//! its snapshot in `tests/snapshots/`.

use std::fmt::Write;
use std::path::Path;

use smith_mutate::{generate, procedural_mutators, procedural_names, GenerateOptions};

fn render(name: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let file = format!("{name}.py");
    assert!(root.join(&file).is_file(), "missing fixture {file}");
    let options = GenerateOptions {
        strategies: Some(vec![name.to_string()]),
        max_per_entity: None,
        ..Default::default()
    };
    let out = generate(
        &root,
        &smith_core::RepoRef::new("fixtures/demo", "0000000"),
        &[file],
        &procedural_mutators(),
        &options,
    )
    .expect("generate runs");
    assert!(out.skipped.is_empty(), "{:?}", out.skipped);
    let stats = &out.stats[name];
    let mut text = format!(
        "proposed {} | emitted {} | dropped: unparsable {}, unchanged {}, invalid edit {}, duplicate {}\n",
        stats.proposed, stats.emitted, stats.unparsable, stats.unchanged, stats.invalid_edit, stats.duplicate
    );
    for c in &out.candidates {
        assert_eq!(c.strategy, name);
        writeln!(text, "\n### {}\n{}", c.description, c.patch).unwrap();
    }
    text
}

#[test]
fn every_mutator_has_a_fixture_that_it_mutates() {
    for name in procedural_names() {
        let text = render(name);
        assert!(text.contains("\n### "), "{name} emitted nothing:\n{text}");
    }
}

macro_rules! snapshots {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            insta::assert_snapshot!(stringify!($name), render(stringify!($name)));
        }
    )*};
}

snapshots!(
    func_pm_class_rm_base,
    func_pm_class_rm_funcs,
    func_pm_class_shuffle_funcs,
    func_pm_ctrl_invert_if,
    func_pm_ctrl_shuffle,
    func_pm_remove_assign,
    func_pm_remove_cond,
    func_pm_remove_loop,
    func_pm_remove_wrapper,
    func_pm_op_break_chains,
    func_pm_op_change_const,
    func_pm_op_change,
    func_pm_op_swap,
    func_pm_op_flip_compare,
    func_pm_op_boundary,
    func_pm_op_flip_bool,
    func_pm_op_drop_not,
    func_pm_op_off_by_one,
    func_pm_const_flip_bool,
    func_pm_ctrl_early_return,
    func_pm_ctrl_return_none,
    func_pm_remove_raise,
    func_pm_remove_break,
    func_pm_remove_continue,
    func_pm_remove_await,
    func_pm_remove_call,
    func_pm_param_default,
    func_pm_var_swap,
    func_pm_arg_swap,
);

#[test]
fn catalogue_has_swe_smith_names_and_more() {
    let names = procedural_names();
    for swe_smith in [
        "func_pm_class_rm_base",
        "func_pm_class_rm_funcs",
        "func_pm_class_shuffle_funcs",
        "func_pm_ctrl_invert_if",
        "func_pm_ctrl_shuffle",
        "func_pm_remove_assign",
        "func_pm_remove_cond",
        "func_pm_remove_loop",
        "func_pm_remove_wrapper",
        "func_pm_op_break_chains",
        "func_pm_op_change_const",
        "func_pm_op_change",
        "func_pm_op_swap",
    ] {
        assert!(names.contains(&swe_smith), "{swe_smith}");
    }
    assert!(names.len() >= 24, "{}", names.len());
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len());
}
