"""smith's pytest plugin, loaded with `-p smith_pytest_plugin`.

It does three things for smith's validator:

* exact selection: with SMITH_SELECT naming a JSON list of node ids, only
  those items run (node ids with `::`, spaces or brackets inside their
  parameters cannot be passed to pytest on the command line reliably), and
  test functions and classes holding none of them are not made into items;
* an event log: with SMITH_EVENTS naming a file, every test's start, the
  start of its call, its phase reports and its finish are appended and
  flushed as JSON lines, so a run that crashes or floods its output still
  says which tests ran and how (and a fork server can time single tests);
* a module report: with SMITH_MODULES naming a file, the session's end
  writes which standard and third-party modules it imported and which
  workspace files it compiled, so that smith's fork server can prepare them
  once for every later run;
* coverage contexts: with SMITH_COVERAGE set, the running coverage.py
  measurement is switched to `t:<node id>` while a test runs and to
  `f:<fixture name>` while a fixture wider than one function is set up, so
  lines map to exact tests (fixtures set up once serve many tests).
"""

import json
import os

import pytest

_SELECT = None
_EVENTS = None
_COVERAGE = None
_MODULES = None
_WANTED = None
_WANTED_UNDER = None

_out = None
_cov = None
_context = ""


def pytest_configure(config):
    # Read here, not at import: a fork server may import this module once
    # and run many sessions with different settings.
    global _SELECT, _EVENTS, _COVERAGE, _MODULES, _WANTED, _WANTED_UNDER, _out
    _SELECT = os.environ.get("SMITH_SELECT") or None
    _EVENTS = os.environ.get("SMITH_EVENTS") or None
    _COVERAGE = os.environ.get("SMITH_COVERAGE") or None
    _MODULES = os.environ.get("SMITH_MODULES") or None
    _WANTED = _WANTED_UNDER = None
    if _SELECT:
        _SELECT = os.path.abspath(_SELECT)
        with open(_SELECT, encoding="utf-8") as f:
            _WANTED = set(json.load(f))
        _WANTED_UNDER = _prefixes(_WANTED)
    if _EVENTS:
        _EVENTS = os.path.abspath(_EVENTS)
    if _MODULES:
        _MODULES = os.path.abspath(_MODULES)
    _out = None


def pytest_sessionfinish(session, exitstatus):
    if not _MODULES:
        return
    try:
        report = _module_report(session.config)
        with open(_MODULES, "w", encoding="utf-8") as f:
            json.dump(report, f)
    except Exception:
        pass


def _module_report(config):
    """Modules a fork server may import ahead of time (standard library and
    installed packages, never anything from the workspace or sharing a
    top-level name with it) and the workspace's Python files this session
    compiled (`rewrite`: through pytest's assertion rewriting)."""
    import sys
    import sysconfig

    root = os.path.realpath(os.getcwd())
    inside = root + os.sep
    paths = sysconfig.get_paths()
    installed = {
        os.path.realpath(paths[k]) + os.sep
        for k in ("stdlib", "platstdlib", "purelib", "platlib")
        if k in paths
    }
    modules = dict(sys.modules)
    local_tops = set()
    files = []
    for name, module in modules.items():
        path = getattr(module, "__file__", None)
        if not isinstance(path, str):
            continue
        real = os.path.realpath(path)
        if real.startswith(inside):
            local_tops.add(name.split(".")[0])
            if real.endswith(".py"):
                loader = type(getattr(module, "__loader__", None)).__name__
                files.append({
                    "path": os.path.relpath(real, root),
                    "rewrite": loader == "AssertionRewritingHook",
                })
    # pytest plugins (and anything pytest rewrites) must be imported by
    # pytest itself: imported early, pytest warns that it cannot rewrite
    # them, and suites that turn warnings into errors stop.
    plugin_tops = set()
    for plugin in config.pluginmanager.get_plugins():
        name = getattr(plugin, "__name__", None)
        if isinstance(name, str):
            plugin_tops.add(name.split(".")[0])
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group="pytest11"):
            plugin_tops.add(ep.value.split(":")[0].split(".")[0])
    except Exception:
        pass
    hook = getattr(getattr(config, "_assertstate", None), "hook", None)
    for name in getattr(hook, "_must_rewrite", ()) or ():
        plugin_tops.add(str(name).split(".")[0])
    for name, module in modules.items():
        loader = type(getattr(module, "__loader__", None)).__name__
        if loader == "AssertionRewritingHook":
            plugin_tops.add(name.split(".")[0])
    plugin_tops -= {"_pytest", "pytest", "pluggy"}
    safe = []
    for name, module in modules.items():
        top = name.split(".")[0]
        if top in local_tops or top in plugin_tops:
            continue
        if top in ("__main__", "conftest") or top.startswith("smith_"):
            continue
        path = getattr(module, "__file__", None)
        if not isinstance(path, str):
            continue
        real = os.path.realpath(path)
        if real.startswith(inside) or not any(real.startswith(p) for p in installed):
            continue
        safe.append(name)
    return {
        "modules": sorted(safe),
        "files": sorted(files, key=lambda f: f["path"]),
        "pass_hook": bool(config.getini("enable_assertion_pass_hook")),
    }


def _emit(record):
    global _out
    if not _EVENTS:
        return
    if _out is None:
        _out = open(_EVENTS, "a", encoding="utf-8")
    _out.write(json.dumps(record) + "\n")
    _out.flush()


def _switch(context):
    global _cov, _context
    if not _COVERAGE:
        return
    if _cov is None:
        import coverage

        _cov = coverage.Coverage.current()
        if _cov is None:
            return
    _context = context
    _cov.switch_context(context)


def _text(report, limit=6000):
    text = str(report.longrepr) if report.longrepr is not None else ""
    if len(text) > limit:
        text = text[: limit // 3] + "\n...\n" + text[-(limit * 2) // 3 :]
    return text


def _prefixes(ids):
    """Every node id a selected test lies under: `a.py`, `a.py::C`,
    `a.py::C::t` for `a.py::C::t[x]` (a parameter's own `::` only adds
    prefixes, never removes one)."""
    out = set()
    for nodeid in ids:
        base = nodeid.split("[", 1)[0]
        parts = base.split("::")
        for i in range(1, len(parts) + 1):
            out.add("::".join(parts[:i]))
    return out


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector, name, obj):
    # Items of test functions and classes that hold no selected test are
    # not made at all: a module with thousands of parametrized cases then
    # costs its import, not the making and deselecting of every case.
    if _WANTED is None:
        return None
    nodeid = "%s::%s" % (collector.nodeid, name) if collector.nodeid else name
    if nodeid in _WANTED_UNDER:
        return None
    return []


def pytest_collection_modifyitems(session, config, items):
    if _WANTED is not None:
        keep = [item for item in items if item.nodeid in _WANTED]
        drop = [item for item in items if item.nodeid not in _WANTED]
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = keep
    if _COVERAGE:
        for item in items:
            _emit({"event": "uses", "nodeid": item.nodeid,
                   "fixtures": list(getattr(item, "fixturenames", ()))})


def pytest_collectreport(report):
    if report.failed:
        _emit({"event": "collect_error", "nodeid": report.nodeid, "text": _text(report)})


def pytest_runtest_logstart(nodeid, location):
    _emit({"event": "start", "nodeid": nodeid})
    _switch("t:" + nodeid)


def pytest_runtest_logreport(report):
    record = {
        "event": "report",
        "nodeid": report.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "duration": getattr(report, "duration", 0.0),
        "xfail": hasattr(report, "wasxfail"),
    }
    # pytest 9's built-in subtests report through the parent's node id.
    if type(report).__name__ == "SubtestReport" or hasattr(report, "context"):
        record["subtest"] = True
    # No failure text here: the log's summary has it, and rendering every
    # failure a second time costs milliseconds per failing test.
    _emit(record)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    # Marks the start of the test's own code, for the fork server's per-test
    # time limit (setup may include a session fixture's first set-up).
    _emit({"event": "call", "nodeid": item.nodeid})
    yield


def pytest_runtest_logfinish(nodeid, location):
    _emit({"event": "finish", "nodeid": nodeid})
    _switch("")


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    if not _COVERAGE or fixturedef.scope == "function":
        yield
        return
    previous = _context
    _switch("f:" + fixturedef.argname)
    try:
        yield
    finally:
        _switch(previous)
