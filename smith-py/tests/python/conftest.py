"""Shared fixtures: one small pipeline run on the demo repository, made
through ``smith.run`` (a run already there is resumed, nothing is redone).

``SMITH_TEST_RUN_DIR`` and ``SMITH_TEST_ENV_CACHE`` choose where the run
and its virtualenv cache live; by default under the workspace's target/.
"""

import os
import pathlib
import tempfile

# mini-swe-agent prints a banner and writes a global config on import.
os.environ.setdefault("MSWEA_SILENT_STARTUP", "1")
os.environ.setdefault("MSWEA_GLOBAL_CONFIG_DIR", tempfile.mkdtemp(prefix="mswea-"))

import pytest  # noqa: E402

import smith  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def run_dir() -> str:
    out = os.environ.get("SMITH_TEST_RUN_DIR") or str(ROOT / "target/test-cache/py-demo-run")
    cache = os.environ.get("SMITH_TEST_ENV_CACHE") or str(ROOT / "target/test-cache/envs")
    summary = smith.run(
        ROOT / "examples/demo-repo",
        out,
        max_candidates=14,
        baseline_runs=1,
        workers=2,
        cache_dir=cache,
    )
    assert summary["instances"] >= 4, summary
    return out


@pytest.fixture(scope="session")
def tasks(run_dir):
    return smith.load_tasks(os.path.join(run_dir, "instances.jsonl"), run_dir)


def bug_files(task):
    """The files a task's bug patch changes."""
    return [line[len("+++ b/"):] for line in task.patch.splitlines() if line.startswith("+++ b/")]


@pytest.fixture(scope="session")
def single_file_task(tasks):
    """A task whose bug is in one file."""
    for t in tasks:
        if len(bug_files(t)) == 1:
            return t
    raise AssertionError("the demo run has no single-file task")
