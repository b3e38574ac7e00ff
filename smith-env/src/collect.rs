//! The collection check: does pytest collect the suite in a workspace of the
//! chosen sandbox? Node ids, failed collectors and pytest's version come from
//! a small plugin of smith's, never from the terminal text, whose shape a
//! project's own options (`-q` in `addopts`, reporting plugins) change.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use smith_core::{stable_hex, CommandSpec, Result, RunOptions, RunOutput, Workspace};

/// The plugin's source. It is written into the workspace as
/// `.smith/<module>.py` and loaded with `-p <module>`.
pub(crate) const PLUGIN_SOURCE: &str = include_str!("smith_collect_plugin.py");

/// Directory of the workspace that holds the plugin and its report (a dot
/// directory: pytest never recurses into it).
const CONTROL_DIR: &str = ".smith";

/// Where the plugin writes its report, relative to the workspace root.
const REPORT_PATH: &str = ".smith/collection.json";

/// The plugin's module name: `_smith_collect_` and a hash of its text, a
/// name no project's module, conftest or plugin entry point takes, so
/// registering it can never clash with theirs.
pub fn plugin_module() -> String {
    format!(
        "_smith_collect_{}",
        &stable_hex(&[PLUGIN_SOURCE.as_bytes()])[..12]
    )
}

/// What the collection check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collection {
    /// Exit code 0 with at least one test.
    pub ok: bool,
    /// Tests collected.
    pub count: usize,
    /// Files pytest could not collect.
    pub errors: Vec<String>,
    /// pytest's exit code.
    pub exit_code: Option<i32>,
    /// The version of pytest that collected (`None` when pytest stopped
    /// before its session ended).
    #[serde(default)]
    pub pytest_version: Option<String>,
    /// The last part of pytest's output.
    pub tail: String,
}

impl Collection {
    /// Whether pytest refused the project's plugins or conftests for a
    /// reason that an older pytest does not have: a hook implementation
    /// with arguments the current hookspec removed, an unknown hook, or a
    /// removal warning turned into an error.
    pub fn fails_on_runner_version(&self) -> bool {
        !self.ok
            && [
                "PluginValidationError",
                "can not be found in the hookspec",
                "unknown hook",
                "PytestRemovedIn",
            ]
            .iter()
            .any(|needle| self.tail.contains(needle))
    }
}

/// The plugin's report.
#[derive(Debug, Deserialize)]
struct Report {
    pytest: String,
    tests: Vec<String>,
    errors: Vec<ReportError>,
}

#[derive(Debug, Deserialize)]
struct ReportError {
    nodeid: String,
}

/// Run `python <test_cmd> --collect-only` in `workspace` with smith's
/// collection plugin and read what it reports.
pub fn collect_in(
    workspace: &mut dyn Workspace,
    test_cmd: &[String],
    timeout: Duration,
) -> Result<Collection> {
    let module = plugin_module();
    workspace.write(
        &format!("{CONTROL_DIR}/{module}.py"),
        PLUGIN_SOURCE.as_bytes(),
    )?;
    let mut args = test_cmd.to_vec();
    args.extend([
        "-p".to_string(),
        module,
        "--collect-only".into(),
        "-q".into(),
    ]);
    let command = CommandSpec::new("python", args)
        .env("PYTHONPATH", CONTROL_DIR)
        .env("SMITH_COLLECT_OUT", REPORT_PATH);
    let out = workspace.run(
        &command,
        &RunOptions {
            timeout: Some(timeout),
            max_output: 1 << 20,
            test_timeout: None,
            ..RunOptions::default()
        },
    )?;
    let report = workspace.read(REPORT_PATH).ok();
    Ok(read_collection(&out, report.as_deref()))
}

/// Combine pytest's exit and the plugin's report (`None`: pytest stopped
/// before its session ended, so nothing was collected).
pub(crate) fn read_collection(out: &RunOutput, report: Option<&[u8]>) -> Collection {
    let text = format!("{}\n{}", out.stdout, out.stderr);
    let report: Option<Report> = report.and_then(|r| serde_json::from_slice(r).ok());
    let (count, errors, pytest_version) = match report {
        Some(r) => {
            let mut files: Vec<String> = Vec::new();
            for e in &r.errors {
                let file = e.nodeid.split("::").next().unwrap_or(&e.nodeid);
                if file.ends_with(".py") && !files.iter().any(|f| f == file) {
                    files.push(file.to_string());
                }
            }
            (r.tests.len(), files, Some(r.pytest))
        }
        None => (0, Vec::new(), None),
    };
    Collection {
        ok: out.exit_code == Some(0) && count > 0,
        count,
        errors,
        exit_code: out.exit_code,
        pytest_version,
        tail: crate::build::last_chars(&text, 1500),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(code: i32, stdout: &str) -> RunOutput {
        RunOutput {
            exit_code: Some(code),
            stdout: stdout.into(),
            ..Default::default()
        }
    }

    #[test]
    fn counts_come_from_the_report_whatever_the_terminal_says() {
        // `addopts = -q` plus smith's `-q`: pytest prints per-file counts.
        let report = br#"{"pytest": "8.3.2", "tests": ["tests/a/test_x.py::test_1",
            "tests/a/test_x.py::test_2[a::b]"], "errors": [], "exitstatus": 0}"#;
        let c = read_collection(&out(0, "tests/a/test_x.py: 2\n"), Some(report));
        assert!(c.ok);
        assert_eq!(c.count, 2);
        assert_eq!(c.pytest_version.as_deref(), Some("8.3.2"));
    }

    #[test]
    fn failed_collectors_name_their_files_once() {
        let report = br#"{"pytest": "9.0.1", "tests": ["tests/test_a.py::test_x"],
            "errors": [{"nodeid": "tests/test_bench.py", "message": "ModuleNotFoundError"},
                       {"nodeid": "tests/test_bench.py::TestB", "message": "x"},
                       {"nodeid": "tests", "message": "conftest"}], "exitstatus": 2}"#;
        let c = read_collection(&out(2, ""), Some(report));
        assert!(!c.ok);
        assert_eq!(c.count, 1);
        assert_eq!(c.errors, ["tests/test_bench.py"]);
    }

    #[test]
    fn no_report_means_nothing_collected_and_old_hooks_are_recognised() {
        let text = "ImportError while loading conftest\n\
            _pytest.pluggy.PluginValidationError: Plugin '/r/conftest.py' for hook \
            'pytest_collect_file'\nhookimpl definition: pytest_collect_file(path, parent)\n\
            Argument(s) {'path'} are declared in the hookimpl but can not be found in the hookspec\n";
        let c = read_collection(&out(4, text), None);
        assert!(!c.ok);
        assert_eq!(c.count, 0);
        assert!(c.fails_on_runner_version());
        let plain = read_collection(&out(2, "ModuleNotFoundError: No module named 'x'"), None);
        assert!(!plain.fails_on_runner_version());
        // Node ids printed on the terminal are never counted.
        let printed = read_collection(&out(0, "tests/test_a.py::test_x\n1 test collected\n"), None);
        assert_eq!(printed.count, 0);
        assert!(!printed.ok);
    }

    #[test]
    fn the_module_name_is_private_to_smith() {
        let name = plugin_module();
        assert!(name.starts_with("_smith_collect_"), "{name}");
        assert_eq!(name.len(), "_smith_collect_".len() + 12);
    }
}
