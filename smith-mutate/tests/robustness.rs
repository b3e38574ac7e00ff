//! Hostile inputs: every file is either mutated correctly or skipped with a
//! reason, and the run always goes on.

use std::path::Path;

use smith_core::{Patch, SourceFile};
use smith_mutate::{extract_entities, generate, procedural_mutators, GenerateOptions, Generated};

const FUNC: &str = "def area(w, h):\n    if w < 0 or h < 0:\n        raise ValueError('negative')\n    return w * h + 1\n";

fn write(root: &Path, path: &str, bytes: &[u8]) {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, bytes).unwrap();
}

fn run(root: &Path, files: &[&str]) -> Generated {
    let files: Vec<String> = files.iter().map(|f| f.to_string()).collect();
    generate(
        root,
        &smith_core::RepoRef::new("o/r", "c0ffee"),
        &files,
        &procedural_mutators(),
        &GenerateOptions::default(),
    )
    .expect("generate never fails on bad files")
}

/// Every candidate's patch applies to its file, the result parses, and the
/// reverse restores the original bytes.
fn check_roundtrip(root: &Path, out: &Generated) {
    for c in &out.candidates {
        let path = c.patch.paths().unwrap().remove(0);
        let original = std::fs::read_to_string(root.join(&path)).unwrap();
        let patched = c.patch.apply_to_text(&path, &original).unwrap();
        assert_ne!(patched, original, "{}", c.description);
        extract_entities(&SourceFile::new(path.clone(), patched.clone()))
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", c.description, c.patch));
        let restored = c.patch.reverse().apply_to_text(&path, &patched).unwrap();
        assert_eq!(restored, original, "{}", c.description);
    }
}

#[test]
fn bad_files_are_skipped_with_reasons_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "good.py", FUNC.as_bytes());
    write(root, "syntax.py", b"def broken(:\n    return 1\n");
    write(
        root,
        "latin1.py",
        b"# caf\xe9\ndef f(x):\n    return x + 1\n",
    );
    write(
        root,
        "deep.py",
        format!("x = {}1{}\n", "(".repeat(1000), ")".repeat(1000)).as_bytes(),
    );
    write(
        root,
        "chain.py",
        format!("def f(a):\n    return {}a\n", "a + ".repeat(20_000)).as_bytes(),
    );
    let out = run(
        root,
        &[
            "chain.py",
            "deep.py",
            "good.py",
            "latin1.py",
            "missing.py",
            "syntax.py",
        ],
    );
    let reasons: Vec<(&str, &str)> = out
        .skipped
        .iter()
        .map(|s| (s.path.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(out.files, 1, "{reasons:?}");
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    let reason = |p: &str| reasons.iter().find(|(path, _)| *path == p).unwrap().1;
    assert!(
        reason("syntax.py").contains("Expected"),
        "{}",
        reason("syntax.py")
    );
    assert!(
        reason("latin1.py").contains("not UTF-8"),
        "{}",
        reason("latin1.py")
    );
    assert!(reason("deep.py").contains("nest"), "{}", reason("deep.py"));
    assert!(
        reason("chain.py").contains("operators"),
        "{}",
        reason("chain.py")
    );
    assert!(
        reason("missing.py").contains("unreadable"),
        "{}",
        reason("missing.py")
    );
    assert!(out
        .candidates
        .iter()
        .all(|c| c.patch.paths().unwrap() == ["good.py"]));
    assert!(out.candidates.len() >= 5);
    check_roundtrip(root, &out);
}

#[test]
fn bom_crlf_tabs_and_long_lines_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "bom.py", format!("\u{feff}{FUNC}").as_bytes());
    write(root, "crlf.py", FUNC.replace('\n', "\r\n").as_bytes());
    write(root, "tabs.py", FUNC.replace("    ", "\t").as_bytes());
    let long = format!(
        "def table():\n    values = [{}]\n    return values[1] + len(values)\n",
        (0..20_000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    write(root, "long.py", long.as_bytes());
    let out = run(root, &["bom.py", "crlf.py", "long.py", "tabs.py"]);
    assert!(out.skipped.is_empty(), "{:?}", out.skipped);
    for file in ["bom.py", "crlf.py", "long.py", "tabs.py"] {
        let n = out
            .candidates
            .iter()
            .filter(|c| c.patch.paths().unwrap() == [file])
            .count();
        assert!(n >= 3, "{file}: {n} candidates");
    }
    check_roundtrip(root, &out);
    // Inserted lines follow the file's own conventions.
    for c in out
        .candidates
        .iter()
        .filter(|c| c.strategy == "func_pm_ctrl_early_return")
    {
        let added: Vec<&str> = c
            .patch
            .as_str()
            .lines()
            .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
            .collect();
        match c.patch.paths().unwrap()[0].as_str() {
            "crlf.py" => assert!(added.iter().all(|l| l.ends_with('\r')), "{added:?}"),
            "tabs.py" => assert!(added.iter().all(|l| l.starts_with("+\t")), "{added:?}"),
            _ => {}
        }
    }
}

#[test]
fn a_two_megabyte_file_is_mutated() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut big = String::new();
    let mut i = 0;
    while big.len() < 2 << 20 {
        big.push_str(&FUNC.replace("def area", &format!("def area_{i}")));
        big.push('\n');
        i += 1;
    }
    write(root, "big.py", big.as_bytes());
    // Two strategies keep the test quick; the benchmark runs them all.
    let options = GenerateOptions {
        strategies: Some(vec![
            "func_pm_op_change".into(),
            "func_pm_remove_raise".into(),
        ]),
        ..Default::default()
    };
    let out = generate(
        root,
        &smith_core::RepoRef::new("o/r", "c0ffee"),
        &["big.py".into()],
        &procedural_mutators(),
        &options,
    )
    .unwrap();
    assert!(out.skipped.is_empty(), "{:?}", out.skipped);
    assert_eq!(out.entities, i);
    // Per function: `*` and `+` changed, and the `raise` removed.
    assert_eq!(out.candidates.len(), 3 * i);
    // Patches stay small: three lines of context, not the whole file.
    assert!(out.candidates.iter().all(|c| c.patch.as_str().len() < 2000));
}

#[test]
fn deeply_nested_blocks_within_python_limits_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // CPython refuses more than 100 nested blocks; go close to that.
    let mut src = String::from("def deep(x):\n");
    for level in 1..=90 {
        src.push_str(&"    ".repeat(level));
        src.push_str(&format!("if x > {level}:\n"));
    }
    src.push_str(&"    ".repeat(91));
    src.push_str("return x - 1\n");
    src.push_str("    return 0\n");
    write(root, "deep.py", src.as_bytes());
    let out = run(root, &["deep.py"]);
    assert!(out.skipped.is_empty(), "{:?}", out.skipped);
    assert!(!out.candidates.is_empty());
    check_roundtrip(root, &out);
}

#[test]
fn core_mutator_interface_reports_nothing_for_unparsable_text() {
    use smith_core::Mutator;
    let file = SourceFile::new("m.py", FUNC);
    let entity = extract_entities(&file).unwrap().remove(0);
    let broken = SourceFile::new("m.py", "def area(:\n");
    for m in procedural_mutators() {
        assert!(m.mutate(&broken, &entity, 1).is_empty(), "{}", m.name());
    }
    let total: usize = procedural_mutators()
        .iter()
        .map(|m| m.mutate(&file, &entity, 1).len())
        .sum();
    assert!(total >= 8, "{total}");
    let _ = Patch::from_text("");
}
