//! combine/file and combine/module: grouping, overlap checks, merged
//! patches, determinism, caps and the contribution rule.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use smith_core::{Candidate, FileChange, Patch, TestId, Validation, Verdict};
use smith_mutate::{
    combine, components_contribute, kept_with_f2p, merge_patches, CombineOptions, CombineScope,
};

const CALC: &str = "\
def add(a, b):
    return a + b


def sub(a, b):
    return a - b


def mul(a, b):
    return a * b


def div(a, b):
    return a / b


def neg(a):
    return -a
";

/// A candidate replacing `from` by `to` (first occurrence) in `path`.
fn bug(path: &str, text: &str, entity: &str, from: &str, to: &str) -> Candidate {
    assert!(text.contains(from), "{from} not in {path}");
    let after = text.replacen(from, to, 1);
    Candidate::new(
        &smith_core::RepoRef::new("acme/calc", "c0ffee"),
        "func_pm_op_change",
        vec![format!("{path}::{entity}")],
        format!("{from} -> {to}"),
        Patch::from_changes(&[FileChange::modified(path, text, &after)]),
    )
}

fn sources(files: &[(&str, &str)]) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

fn calc_bugs() -> Vec<Candidate> {
    vec![
        bug("calc.py", CALC, "add", "a + b", "a - b"),
        bug("calc.py", CALC, "sub", "a - b", "b - a"),
        bug("calc.py", CALC, "mul", "a * b", "a * a"),
        bug("calc.py", CALC, "div", "a / b", "a // b"),
        bug("calc.py", CALC, "neg", "-a", "a"),
    ]
}

#[test]
fn merged_patch_has_every_component_change_and_git_accepts_it() {
    let bugs = calc_bugs();
    let src = sources(&[("calc.py", CALC)]);
    let merged = merge_patches(&[&bugs[0], &bugs[1], &bugs[4]], &src).unwrap();
    let out = merged.apply_to_text("calc.py", CALC).unwrap();
    assert!(out.contains("return a - b\n\n\ndef sub"), "{out}");
    assert!(out.contains("return b - a"), "{out}");
    assert!(out.contains("return a\n"), "{out}");
    assert!(
        out.contains("return a * b"),
        "untouched function changed: {out}"
    );
    assert_eq!(
        merged.reverse().apply_to_text("calc.py", &out).unwrap(),
        CALC
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("calc.py"), CALC).unwrap();
    std::fs::write(dir.path().join("bug.diff"), merged.as_str()).unwrap();
    let status = Command::new("git")
        .args(["apply", "--check", "bug.diff"])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "git apply rejected:\n{merged}");
}

#[test]
fn file_scope_combines_only_compatible_candidates_deterministically() {
    let bugs = calc_bugs();
    let refs: Vec<&Candidate> = bugs.iter().collect();
    let src = sources(&[("calc.py", CALC)]);
    let options = CombineOptions {
        seed: 3,
        max_per_group: 6,
        ..Default::default()
    };
    let combos = combine(&refs, &src, &options).unwrap();
    assert!(!combos.is_empty());
    assert!(combos.len() <= 6);
    let mut sets = BTreeSet::new();
    for c in &combos {
        assert_eq!(c.candidate.strategy, "combine/file");
        assert!((2..=3).contains(&c.components.len()), "{:?}", c.components);
        assert!(sets.insert(c.components.clone()), "duplicate set");
        let out = c.candidate.patch.apply_to_text("calc.py", CALC).unwrap();
        // Every component's own change is present in the merged text.
        for id in &c.components {
            let part = bugs.iter().find(|b| &b.id == id).unwrap();
            let alone = part.patch.apply_to_text("calc.py", CALC).unwrap();
            let changed: Vec<&str> = alone.lines().filter(|l| !CALC.contains(*l)).collect();
            for line in changed {
                assert!(out.contains(line), "{line} missing from {out}");
            }
        }
        assert_eq!(c.candidate.entities.len(), c.components.len());
    }
    assert_eq!(combine(&refs, &src, &options).unwrap(), combos);
    // Input order does not matter.
    let reversed: Vec<&Candidate> = refs.iter().rev().copied().collect();
    assert_eq!(combine(&reversed, &src, &options).unwrap(), combos);
}

#[test]
fn overlapping_touching_and_same_entity_candidates_are_never_combined() {
    let text = "def f(a, b):\n    x = a + 1\n    y = b + 2\n    return x * y\n";
    let first = bug("m.py", text, "f", "a + 1", "a - 1");
    let adjacent = bug("m.py", text, "f2", "b + 2", "b - 2");
    let same_entity = Candidate::new(
        &smith_core::RepoRef::new("acme/calc", "c0ffee"),
        "x",
        vec!["m.py::f".into()],
        "x",
        Patch::from_changes(&[FileChange::modified(
            "m.py",
            text,
            text.replace("x * y", "x + y"),
        )]),
    );
    let src = sources(&[("m.py", text)]);
    let combos = combine(
        &[&first, &adjacent, &same_entity],
        &src,
        &Default::default(),
    )
    .unwrap();
    assert!(combos.is_empty(), "{combos:?}");
    // Overlapping changes cannot be merged by hand either.
    let overlapping = bug("m.py", text, "g", "a + 1", "a + 2");
    assert!(merge_patches(&[&first, &overlapping], &src).is_err());
}

#[test]
fn caps_per_file_and_sizes_are_respected() {
    let bugs = calc_bugs();
    let refs: Vec<&Candidate> = bugs.iter().collect();
    let src = sources(&[("calc.py", CALC)]);
    let capped = CombineOptions {
        max_per_group: 2,
        ..Default::default()
    };
    assert_eq!(combine(&refs, &src, &capped).unwrap().len(), 2);
    let pairs = CombineOptions {
        max_components: 2,
        max_per_group: 100,
        ..Default::default()
    };
    let all_pairs = combine(&refs, &src, &pairs).unwrap();
    assert!(all_pairs.iter().all(|c| c.components.len() == 2));
    // 5 candidates give at most 10 distinct pairs.
    assert!(
        all_pairs.len() <= 10 && all_pairs.len() >= 5,
        "{}",
        all_pairs.len()
    );
    let bad = CombineOptions {
        min_components: 1,
        ..Default::default()
    };
    assert!(combine(&refs, &src, &bad).is_err());
}

#[test]
fn module_scope_spans_files_of_one_directory() {
    let a = "def f(x):\n    return x + 1\n";
    let b = "def g(x):\n    return x * 2\n";
    let other = "def h(x):\n    return x - 3\n";
    let bugs = [
        bug("pkg/a.py", a, "f", "x + 1", "x - 1"),
        bug("pkg/b.py", b, "g", "x * 2", "x * 3"),
        bug("lib/c.py", other, "h", "x - 3", "x + 3"),
    ];
    let refs: Vec<&Candidate> = bugs.iter().collect();
    let src = sources(&[("pkg/a.py", a), ("pkg/b.py", b), ("lib/c.py", other)]);
    let module = CombineOptions {
        scope: CombineScope::Module,
        ..Default::default()
    };
    let combos = combine(&refs, &src, &module).unwrap();
    assert_eq!(combos.len(), 1, "{combos:?}");
    let c = &combos[0];
    assert_eq!(c.candidate.strategy, "combine/module");
    assert_eq!(c.candidate.patch.paths().unwrap(), ["pkg/a.py", "pkg/b.py"]);
    // File scope finds nothing: each file has one candidate.
    assert!(combine(&refs, &src, &Default::default())
        .unwrap()
        .is_empty());
}

#[test]
fn kept_with_f2p_uses_only_kept_validations() {
    let bugs = calc_bugs();
    let kept = Validation {
        candidate_id: bugs[0].id.clone(),
        strategy: bugs[0].strategy.clone(),
        verdict: Verdict::Kept {
            fail_to_pass: BTreeSet::from([TestId::from("t::add")]),
            pass_to_pass: BTreeSet::from([TestId::from("t::sub")]),
        },
        selected: None,
        seconds: 0.1,
        confirmed: None,
        fresh_confirmed: None,
        log: String::new(),
    };
    let broke_nothing = Validation {
        candidate_id: bugs[1].id.clone(),
        verdict: Verdict::NoTestBroke,
        ..kept.clone()
    };
    let pairs = kept_with_f2p(&bugs, &[kept, broke_nothing]);
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].0.id, bugs[0].id);
    assert!(pairs[0].1.contains(&TestId::from("t::add")));
}

#[test]
fn contribution_rule_table() {
    let set = |ids: &[&str]| -> BTreeSet<TestId> { ids.iter().map(|s| TestId::from(*s)).collect() };
    // (combined F2P, component F2Ps, expected)
    type Case<'a> = (&'a [&'a str], &'a [&'a [&'a str]], bool);
    let cases: &[Case] = &[
        // Disjoint failures, all still failing.
        (&["a", "b"], &[&["a"], &["b"]], true),
        // Shared tests plus one own test each.
        (&["a", "b", "s"], &[&["a", "s"], &["b", "s"]], true),
        // Identical F2P sets: neither has a failure of its own.
        (&["a"], &[&["a"], &["a"]], false),
        // Second is a subset of the first.
        (&["a", "b"], &[&["a", "b"], &["b"]], false),
        // Own failure masked in the combination.
        (&["a"], &[&["a"], &["b"]], false),
        // Combination breaks nothing.
        (&[], &[&["a"], &["b"]], false),
        // A single component is not a combination.
        (&["a"], &[&["a"]], false),
        // Three components, each with its own.
        (&["a", "b", "c"], &[&["a", "x"], &["b", "x"], &["c"]], true),
    ];
    for (combined, parts, want) in cases {
        let parts: Vec<BTreeSet<TestId>> = parts.iter().map(|p| set(p)).collect();
        assert_eq!(
            components_contribute(&set(combined), &parts),
            *want,
            "combined {combined:?} parts {parts:?}"
        );
    }
}
