"""smith's pytest plugin, loaded with `-p smith_pytest_plugin`.

It does these things for smith's validator:

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
  lines map to exact tests (fixtures set up once serve many tests); and
  Python processes the tests start measure themselves under the context
  that started them (see `_follow_children`);
* a per-test time limit: with SMITH_TEST_TIMEOUT set (seconds; a JSON
  file named by SMITH_TEST_LIMITS may give single tests limits of their
  own), a thread watches the CPU time the process spends in the current
  test's call and, past the limit, appends `{"event": "over_limit", "nodeid": ...}` to the
  event log and kills the process: a looping mutant costs the limit, not
  the whole run's. A call that uses little CPU but lasts `_WAIT_FACTOR`
  times its limit plus `_WAIT_EXTRA` seconds of wall time (a deadlock) is
  over too, and so, sooner, is one that has lasted `_IDLE_FACTOR` times
  its limit and used next to no CPU for the last `_IDLE_WINDOW` seconds
  with no child process running.
  A fork server does the same from outside its children and
  does not set the variable;
* random state: a test whose call changes the state of Python's global
  random generator (or numpy's), without seeding it itself, drew from the
  process's random state: `{"event": "random", "nodeid": ...}` says so, as
  its outcome may differ in another process. With SMITH_RANDOM_SEED set,
  those generators are seeded with it before every test, so that a run
  shows the outcome from one known state;
* cached traceback parsing: pytest parses a frame's whole source file for
  every failure it prints; parsed trees are kept by their exact text, so
  a mutant failing a hundred tests costs one parse per file (the printed
  failure is the same).
"""

import ast
import bisect
import json
import os
import signal
import threading
import time
import types

import pytest

# pytest formats a failure's traceback by parsing the whole source file of
# every frame, and walking its tree, once per failure (in a fresh interpreter
# and in a fork server's children alike): on a large test file
# that is a fifth of a second per failing test, more than the test. Trees are
# cached by the exact text parsed, and statement positions by tree.
_parsed = {}
_starts = {}


def _statement_starts(tree):
    """0-based first lines of every statement (decorators included, and the
    `else`/`finally` parts as statements of their own), sorted: what pytest
    uses to cut one statement out of a file."""
    starts = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.stmt, ast.ExceptHandler)):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                starts.extend(d.lineno - 1 for d in node.decorator_list)
            starts.append(node.lineno - 1)
            for part in ("finalbody", "orelse"):
                body = getattr(node, part, None)
                if body:
                    starts.append(body[0].lineno - 2)
    starts.sort()
    return starts


def _cached_parse(text, filename, mode):
    key = (text, filename, mode)
    tree = _parsed.get(key)
    if tree is None:
        tree = ast.parse(text, filename, mode)
        _parsed[key] = tree
    return tree


try:
    from _pytest._code import source as _source

    if hasattr(_source, "get_statement_startend2") and _source.ast is ast:
        _shim = types.ModuleType("ast")
        _shim.__dict__.update(ast.__dict__)

        def _parse(text, filename="<unknown>", mode="exec", *args, **kwargs):
            if isinstance(text, str) and not args and not kwargs:
                return _cached_parse(text, filename, mode)
            return ast.parse(text, filename, mode, *args, **kwargs)

        def _startend(lineno, node):
            hit = _starts.get(id(node))
            if hit is None or hit[0] is not node:
                hit = (node, _statement_starts(node))
                _starts[id(node)] = hit
            starts = hit[1]
            i = bisect.bisect_right(starts, lineno)
            return starts[i - 1], (starts[i] if i < len(starts) else None)

        _shim.parse = _parse
        _source.ast = _shim
        _source.get_statement_startend2 = _startend
except Exception:  # pragma: no cover - a pytest without these internals
    pass


_SELECT = None
_EVENTS = None
_RANDOM_SEED = None
_COVERAGE = None
_MODULES = None
_WANTED = None
_WANTED_UNDER = None

_out = None
_cov = None
_context = ""
# (process CPU seconds at the call's start, node id) while a call runs.
_call = None


def pytest_configure(config):
    # Read here, not at import: a fork server may import this module once
    # and run many sessions with different settings.
    global _SELECT, _EVENTS, _COVERAGE, _MODULES, _WANTED, _WANTED_UNDER, _out
    global _RANDOM_SEED
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
    _RANDOM_SEED = None
    seed = os.environ.get("SMITH_RANDOM_SEED")
    if seed:
        try:
            _RANDOM_SEED = int(seed)
        except ValueError:
            pass
    if _COVERAGE:
        _drop_disabled_cov(config)
        _follow_children()
    limit = os.environ.get("SMITH_TEST_TIMEOUT")
    if limit and _EVENTS:
        try:
            limit = float(limit)
        except ValueError:
            limit = None
        if limit and limit > 0:
            limits = {}
            path = os.environ.get("SMITH_TEST_LIMITS")
            if path:
                try:
                    with open(path, encoding="utf-8") as f:
                        limits = json.load(f)
                except (OSError, ValueError):
                    limits = {}
            threading.Thread(target=_watch_calls, args=(limit, limits), daemon=True).start()


# The bounds of a test's call, here and in the fork server (which loads a
# copy of this module and applies them to its children from outside): a
# call may last `_WAIT_FACTOR` times its CPU limit plus `_WAIT_EXTRA`
# seconds of wall time; and one past `_IDLE_FACTOR` times its limit that
# used less than `_IDLE_CPU` seconds of CPU over the last `_IDLE_WINDOW`
# seconds, with no process of its own running, is blocked for good: a
# starved process that still works gets far more than that from any
# scheduler. Readings closer together than `_IDLE_STEP` are not taken.
_WAIT_FACTOR = 8.0
_WAIT_EXTRA = 2.0
_IDLE_FACTOR = 2.0
_IDLE_WINDOW = 1.0
_IDLE_CPU = 0.02
_IDLE_STEP = 0.05


def _has_live_children(pid):
    """Whether the process `pid` has a child (a test waiting for a program
    it started is not idle); True where /proc cannot say."""
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid), "rb") as f:
                if f.read().strip():
                    return True
    except OSError:
        return True
    return False


class _Idle:
    """Readings of one call's clocks (wall, CPU, and whether a child process
    was running) over the last `_IDLE_WINDOW`, to tell a call that waits
    for good from one that works, sleeps within its limit, or waits for a
    program of its own (the whole window counts: a child that ended a
    moment ago was working for the call until then)."""

    def __init__(self):
        self.samples = []

    def idle(self, wall, cpu, waited, limit, pid):
        """Whether the call of process `pid`, `waited` seconds in, past
        `_IDLE_FACTOR` times its `limit`, has used less than `_IDLE_CPU` of
        CPU over the whole last window, with no child process at any
        reading in it."""
        samples = self.samples
        if samples and wall - samples[-1][0] < _IDLE_STEP:
            return False
        samples.append((wall, cpu, _has_live_children(pid)))
        while len(samples) > 1 and wall - samples[1][0] >= _IDLE_WINDOW:
            samples.pop(0)
        if waited <= _IDLE_FACTOR * limit or wall - samples[0][0] < _IDLE_WINDOW:
            return False
        return cpu - samples[0][1] < _IDLE_CPU and not any(s[2] for s in samples)


def _over(cpu_used, waited, limit):
    """Whether a call that used `cpu_used` seconds of CPU in `waited`
    seconds of wall time is past its `limit` or the wall-time bound of it."""
    return cpu_used > limit or waited > _WAIT_FACTOR * limit + _WAIT_EXTRA


def _watch_calls(limit, limits):
    """Kill the process when one test's call has used its limit in seconds
    of CPU (`limits[node id]`, else `limit`), has lasted the wall-time
    bound of that limit, or is idle (`_Idle`). Pure-Python loops let this
    thread run between bytecodes; code that holds the interpreter lock for
    good is left to the run's own limit."""
    idle = None
    current = None
    pid = os.getpid()
    while True:
        time.sleep(_IDLE_STEP)
        call = _call
        if call is None:
            continue
        if call is not current:
            current, idle = call, _Idle()
        own = limits.get(call[1], limit)
        wall, cpu = time.monotonic(), time.process_time()
        waited = wall - call[2]
        if not _over(cpu - call[0], waited, own) and not idle.idle(wall, cpu, waited, own, pid):
            continue
        line = json.dumps({"event": "over_limit", "nodeid": call[1]}) + "\n"
        try:
            fd = os.open(_EVENTS, os.O_WRONLY | os.O_APPEND)
            os.write(fd, line.encode("utf-8"))
            os.close(fd)
        finally:
            os.kill(os.getpid(), signal.SIGKILL)


# Whether the running test seeded a global generator itself, and the
# generators' states when it started.
_seeded = False
_state_at_start = None
# The seed functions wrapped so far (`random`, `numpy.random`).
_wrapped = set()


def _watch_seeding():
    """Wrap `random.seed` (and numpy's global `seed`, once numpy is loaded)
    so that a test seeding a generator itself is not taken for one that
    draws from the process's random state."""
    import random

    def wrap(module, name):
        if name in _wrapped:
            return
        _wrapped.add(name)
        seed = module.seed

        def seeded(*args, **kwargs):
            global _seeded
            _seeded = True
            return seed(*args, **kwargs)

        module.seed = seeded

    wrap(random, "random")
    numpy_random = _numpy_random()
    if numpy_random is not None:
        wrap(numpy_random, "numpy.random")


def _numpy_random():
    import sys

    module = sys.modules.get("numpy.random")
    return module if module is not None and hasattr(module, "get_state") else None


def _random_state():
    """The global generators' states: the standard library's, and numpy's
    when the tests loaded it."""
    import random

    state = [random.getstate()]
    numpy_random = _numpy_random()
    if numpy_random is not None:
        try:
            kind, keys, pos, *_ = numpy_random.get_state(legacy=True)
            state.append((kind, keys.tobytes(), pos))
        except Exception:
            pass
    return state


def _reseed():
    """Start the next test from the state SMITH_RANDOM_SEED names."""
    import random

    random.Random.seed(random._inst, _RANDOM_SEED)
    numpy_random = _numpy_random()
    if numpy_random is not None:
        try:
            numpy_random.RandomState.seed(numpy_random.mtrand._rand, _RANDOM_SEED)
        except Exception:
            pass


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
    _emit_line(json.dumps(record))


def _emit_line(line):
    """Append one event, already a JSON object's text, to the event log."""
    global _out
    if not _EVENTS:
        return
    if _out is None:
        _out = open(_EVENTS, "a", encoding="utf-8")
    _out.write(line + "\n")
    _out.flush()


# The events every test makes, formatted directly: `json.dumps` of a small
# record costs about 7 µs, and a test makes six of them.
_quote = json.encoder.encode_basestring_ascii


def _emit_test(event, nodeid):
    _emit_line('{"event": "%s", "nodeid": %s}' % (event, _quote(nodeid)))


def _switch(context):
    global _cov, _context
    if not _COVERAGE:
        return
    # A process started from here on measures itself under this context.
    os.environ["SMITH_COVERAGE_CONTEXT"] = context
    _context = context
    if _cov is None:
        import coverage

        _cov = coverage.Coverage.current()
        if _cov is None:
            return
    _cov.switch_context(context)


def _drop_disabled_cov(config):
    """Unregister pytest-cov's plugin object when smith's `--no-cov` turned
    it off. Turned off, it still wraps every test call, and for a test
    marked `no_cover` (or using that fixture) it pauses a measurement that
    does not exist: the test fails with an AttributeError before its body
    runs, so its lines would be missing from the map."""
    if not getattr(config.option, "no_cov", False):
        return
    plugin = config.pluginmanager.get_plugin("_cov")
    if plugin is not None:
        config.pluginmanager.unregister(plugin)


# What a measured child process needs in its environment besides the
# running context (see `_follow_children`), kept here in case a test
# clears `os.environ`.
_child_env = {}
_spawned = set()
# Whether a probe child measured itself (None: not probed yet).
_followed = None
_PROBING = object()


def _follow_children():
    """Make every Python process the tests start measure itself.

    smith's coverage configuration (`SMITH_COVERAGE_RC`) reads the data
    directory and the static context from the environment, so a child that
    starts coverage.py from it (`COVERAGE_PROCESS_START`: coverage's own
    `.pth` from 7.13, else the `sitecustomize` next to this plugin) records
    its lines under the context of the test or fixture that started it.
    Paths become absolute, since a child may run anywhere. `subprocess.Popen`
    is wrapped to put those variables into an environment a test passes
    explicitly; it, `os.system` and `multiprocessing` log which contexts
    start processes, and the first start also logs whether a probe child
    measures itself, so that smith knows whether a test that is not
    selected provably cannot reach a change."""
    global _followed
    _spawned.clear()
    _followed = None
    rc = os.environ.get("SMITH_COVERAGE_RC")
    if not rc:
        return
    here = os.path.dirname(os.path.abspath(__file__))
    _child_env.clear()
    _child_env["COVERAGE_PROCESS_START"] = os.path.abspath(rc)
    _child_env["SMITH_COVERAGE_ROOT"] = os.getcwd()
    os.environ.update(_child_env)
    os.environ["SMITH_COVERAGE_CONTEXT"] = _context
    entries = [e for e in os.environ.get("PYTHONPATH", "").split(os.pathsep) if e]
    os.environ["PYTHONPATH"] = os.pathsep.join(os.path.abspath(e) for e in entries)
    _wrap_process_starts(here)


def _probe_child():
    import subprocess
    import sys

    probe = "import sys, coverage; sys.exit(0 if coverage.Coverage.current() else 3)"
    try:
        return subprocess.run([sys.executable, "-c", probe], timeout=60).returncode == 0
    except Exception:
        return False


def _spawn_event():
    global _followed
    if _followed is _PROBING:
        return
    if _followed is None:
        # Probed once, and only if a test starts a process at all; the
        # probe's own start is not logged.
        _followed = _PROBING
        _followed = _probe_child()
        _emit({"event": "children", "followed": _followed})
    if _context not in _spawned:
        _spawned.add(_context)
        _emit({"event": "spawn", "context": _context})


def _wrap_process_starts(here):
    import inspect
    import multiprocessing.process
    import subprocess

    popen_init = subprocess.Popen.__init__
    signature = inspect.signature(popen_init)

    def init(self, *args, **kwargs):
        _spawn_event()
        try:
            bound = signature.bind(self, *args, **kwargs)
            env = bound.arguments.get("env")
            if env is not None:
                env = dict(env)
                env.update(_child_env)
                env["SMITH_COVERAGE_CONTEXT"] = _context
                old = env.get("PYTHONPATH")
                env["PYTHONPATH"] = here + (os.pathsep + old if old else "")
                bound.arguments["env"] = env
                args, kwargs = bound.args[1:], bound.kwargs
        except Exception:
            pass
        popen_init(self, *args, **kwargs)

    subprocess.Popen.__init__ = init

    system = os.system

    def os_system(command):
        _spawn_event()
        return system(command)

    os.system = os_system

    start = multiprocessing.process.BaseProcess.start

    def process_start(self):
        _spawn_event()
        return start(self)

    multiprocessing.process.BaseProcess.start = process_start


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
    _emit_test("start", nodeid)
    _switch("t:" + nodeid)
    global _seeded, _state_at_start
    _watch_seeding()
    if _RANDOM_SEED is not None:
        _reseed()
    _seeded = False
    _state_at_start = _random_state()


def pytest_runtest_logreport(report):
    duration = float(getattr(report, "duration", 0.0))
    if duration != duration or duration in (float("inf"), float("-inf")):
        duration = 0.0
    line = '{"event": "report", "nodeid": %s, "when": %s, "outcome": %s, "duration": %r, "xfail": %s' % (
        _quote(report.nodeid),
        _quote(report.when),
        _quote(report.outcome),
        duration,
        "true" if hasattr(report, "wasxfail") else "false",
    )
    # pytest 9's built-in subtests report through the parent's node id.
    if type(report).__name__ == "SubtestReport" or hasattr(report, "context"):
        line += ', "subtest": true'
    # No failure text here: the log's summary has it, and rendering every
    # failure a second time costs milliseconds per failing test.
    _emit_line(line + "}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    # Marks the start of the test's own code, for the per-test time limit
    # (the fork server's clock and `_watch_calls`; setup may include a
    # session fixture's first set-up).
    global _call
    _emit_test("call", item.nodeid)
    _call = (time.process_time(), item.nodeid, time.monotonic())
    try:
        yield
    finally:
        _call = None
        # Set-up counts: a fixture's random data is the test's input.
        if not _seeded and _random_state() != _state_at_start:
            _emit_test("random", item.nodeid)


def pytest_runtest_logfinish(nodeid, location):
    _emit_test("finish", nodeid)
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
