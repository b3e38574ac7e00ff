"""smith's collection probe for the environment stage.

The builder writes this file into a workspace under a module name that ends
in a hash of its text and loads it with `-p <that name>`, so that no
project's plugin or conftest can share its name. At the end of the session
it writes, to the file named by SMITH_COLLECT_OUT, what pytest collected:
the node ids of the items, the collectors that failed, pytest's version and
the exit status. Nothing here depends on the terminal output, which a
project's own options (`-q`, `-v`, plugins that rewrite the report) change.
"""

import json
import os

import pytest

_tests = []
_errors = []
_out = None


def pytest_configure(config):
    # Absolute now: a conftest may change the working directory later.
    global _out
    path = os.environ.get("SMITH_COLLECT_OUT")
    _out = os.path.abspath(path) if path else None


def pytest_collectreport(report):
    if report.failed:
        _errors.append({"nodeid": report.nodeid, "message": str(report.longrepr)[-2000:]})


def pytest_collection_finish(session):
    _tests[:] = [item.nodeid for item in session.items]


def pytest_sessionfinish(session, exitstatus):
    if not _out:
        return
    record = {
        "pytest": pytest.__version__,
        "tests": _tests,
        "errors": _errors,
        "exitstatus": int(exitstatus),
    }
    with open(_out, "w", encoding="utf-8") as f:
        json.dump(record, f)
