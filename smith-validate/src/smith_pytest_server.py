"""smith's pytest fork server: one per workspace, started by the executor.

A fresh `python -m pytest` pays for the interpreter, for importing pytest
and every third-party module the suite uses, and for compiling (and
assertion-rewriting) the test files, before it runs a single test. This
server pays that once. For every run it forks a child that is exactly what a
fresh `python -m pytest ARGS` would be at the moment pytest starts, except
that those imports and compilations are already done:

* nothing from the workspace is ever imported here, so the child imports
  the (possibly mutated) code under test itself: warm-up refuses any import
  that would load a file of the workspace (an installed helper that imports
  the project under test, say), and a server that holds a module of its
  workspace all the same forks no child (it answers `unusable`);
* compiled code is reused only for a file whose bytes are identical to the
  bytes it was compiled from, so a mutated file is always compiled afresh.

Requests and answers are JSON lines on stdin and stdout:

    {"warm": {"modules": [...], "files": [{"path": ..., "rewrite": bool}],
              "pass_hook": bool, "vetted": bool}}
                                           -> {"warmed": N, "refused": [...]}
    {"argv": [...], "env": {...}, "timeout": secs|null, "max_output": bytes,
     "test_timeout": secs|null, "test_timeouts": {node id: secs},
     "events": path|null,
     "learn": bool}                        -> {"started": pid}, then
    {"exit_code": int|null, "timed_out": bool, "seconds": float,
     "stdout": str, "stderr": str, "learned": {...}|null}
                                           or {"unusable": reason}

The child runs in its own process group; at its time limit, and again when
it exits, the whole group is killed, and so is every process the run left
that escaped the group (the server is their subreaper). With `test_timeout`, the run's event
log (`events`) is read as it grows, and one test call that uses more CPU
time than that ends the run as timed out too. The server exits when its
stdin closes or its workspace directory is deleted.
"""

import ast
import json
import os
import runpy
import select
import signal
import sys
import time
import tokenize
import types

# `python -m pytest` puts the working directory first on sys.path.
sys.path[0] = os.getcwd()

import importlib  # noqa: E402
import importlib._bootstrap_external as _external  # noqa: E402

import pytest  # noqa: E402

try:
    import ctypes  # noqa: E402

    _libc = ctypes.CDLL(None, use_errno=True)
except Exception:  # pragma: no cover - no ctypes
    _libc = None

_PER_RUN_ENV = ("SMITH_SELECT", "SMITH_MODULES")
_MODULES_FILE = ".smith/modules.json"

# The protocol owns the original stdout; anything else the server prints
# (a module printing at import) goes nowhere.
_proto = os.fdopen(os.dup(1), "w", encoding="utf-8")
_devnull = os.open(os.devnull, os.O_RDWR)
os.dup2(_devnull, 1)

# path -> (source bytes, code object)
_compiled = {}
_rewritten = {}
# A collected server holds the workspace's modules by design (it compares
# them with the files before every run); set once it collects.
_collected_mode = []


def _reply(obj):
    _proto.write(json.dumps(obj) + "\n")
    _proto.flush()


def _source_to_code(original):
    def source_to_code(self, data, path, *args, **kwargs):
        plain = not args and kwargs.get("_optimize", -1) == -1
        hit = _compiled.get(path)
        if hit is not None and plain:
            if hit[0] == data:
                return hit[1]
        code = original(self, data, path, *args, **kwargs)
        if plain and _collected_mode and _in_workspace(path):
            # What the collected session imports from the workspace: the
            # clean side of every later run's comparison (`_clean_code`).
            _compiled[path] = (data, code)
        return code

    return source_to_code


_external.SourceLoader.source_to_code = _source_to_code(
    _external.SourceLoader.source_to_code
)

try:
    from _pytest.assertion import rewrite as _rewrite

    _original_read_pyc = _rewrite._read_pyc

    def _read_pyc(source, pyc, *args, **kwargs):
        hit = _rewritten.get(str(source))
        if hit is not None:
            try:
                with open(source, "rb") as f:
                    if f.read() == hit[0]:
                        return hit[1]
            except OSError:
                pass
        return _original_read_pyc(source, pyc, *args, **kwargs)

    _rewrite._read_pyc = _read_pyc
except Exception:  # pragma: no cover - a pytest without these internals
    _rewrite = None



def _load_plugin_copy():
    """smith's plugin, loaded under a private name: loading it installs its
    cache of traceback parses (which every child then inherits, filled at
    warm-up), while pytest's own `-p smith_pytest_plugin` still finds the
    plugin unimported and rewrites its asserts as usual."""
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(
        "_smith_plugin_copy", os.path.join(here, "smith_pytest_plugin.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The plugin is always written beside the server; a server that cannot load
# it fails to start, and its workspace runs fresh interpreters.
_plugin = _load_plugin_copy()


def _prepare_traceback_source(path):
    """Parse `path` the way pytest will when a traceback shows it."""
    with tokenize.open(path) as f:
        text = "\n".join(line.rstrip() for line in f.readlines())
    tree = _plugin._cached_parse(text, "source", "exec")
    _plugin._starts[id(tree)] = (tree, _plugin._statement_starts(tree))


# ------------------------------------------------- the workspace stays out
#
# A child must import the workspace's code itself, as it is at the time of
# the run: a module of the workspace in this process's `sys.modules` would
# be inherited by every child, with the code of whatever tree the server saw
# (a candidate's, or the clean one hiding a candidate's change).

_ROOT = os.path.realpath(os.getcwd()) + os.sep
_CONTROL = _ROOT + ".smith" + os.sep
# name -> module object already found to come from outside the workspace
_outside = {}


def _in_workspace(path):
    if not isinstance(path, str) or not path:
        return False
    real = os.path.realpath(path)
    return real.startswith(_ROOT) and not real.startswith(_CONTROL)


def _module_in_workspace(module):
    if _in_workspace(getattr(module, "__file__", None)):
        return True
    try:
        return any(_in_workspace(p) for p in getattr(module, "__path__", None) or ())
    except Exception:
        return False


def _workspace_modules():
    """Names in `sys.modules` of modules loaded from the workspace."""
    found = []
    for name, module in list(sys.modules.items()):
        if _outside.get(name) is module:
            continue
        if _module_in_workspace(module):
            found.append(name)
        else:
            _outside[name] = module
    return found


class _RefuseWorkspace:
    """A finder, first on `sys.meta_path` during warm-up only, that fails
    every import the other finders would load from the workspace."""

    def __init__(self):
        self.refused = []

    def find_spec(self, name, path=None, target=None):
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                break
        else:
            return None
        origin = spec.origin if spec.has_location else None
        if _in_workspace(origin) or any(
            _in_workspace(p) for p in spec.submodule_search_locations or ()
        ):
            self.refused.append(name)
            raise ImportError("smith's fork server does not import %s" % name, name=name)
        return spec


def _import_guarded(name):
    """Import `name` unless that loads a file of the workspace (then roll
    back every module the attempt added); whether it was refused."""
    before = set(sys.modules)
    guard = _RefuseWorkspace()
    sys.meta_path.insert(0, guard)
    try:
        importlib.import_module(name)
    except BaseException:
        pass
    finally:
        sys.meta_path.remove(guard)
    added = [n for n in sys.modules if n not in before]
    if guard.refused or any(_module_in_workspace(sys.modules[n]) for n in added):
        for n in added:
            sys.modules.pop(n, None)
        return True
    return False


def _vet(modules):
    """The modules of `modules` whose import loads files of the workspace,
    directly or through others, found by importing them all in a throwaway
    child; None if the child could not tell."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            os.dup2(_devnull, 2)
            refused = [n for n in modules if n not in sys.modules and _import_guarded(n)]
            data = json.dumps(refused).encode("utf-8")
            while data:
                data = data[os.write(write, data):]
        finally:
            os._exit(0)
    os.close(write)
    chunks = []
    while True:
        chunk = os.read(read, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    try:
        return set(json.loads(b"".join(chunks)))
    except ValueError:
        return None


def _warm(spec):
    """Import the third-party and standard modules the suite uses and
    compile its files, as learned from a full run. Modules whose import
    would load files of the workspace are refused (found first in a
    throwaway child unless the report was vetted already, so that not even
    part of their import runs here). Returns the count and the refused."""
    count = 0
    modules = [m for m in spec.get("modules", []) if isinstance(m, str)]
    refused = set()
    if not spec.get("vetted"):
        refused = _vet(modules) or set()
    for name in modules:
        if name in sys.modules or name in refused:
            continue
        if _import_guarded(name):
            refused.add(name)
        else:
            count += 1
    root = os.getcwd()
    for entry in spec.get("files", []):
        path = os.path.join(root, entry["path"])
        try:
            with open(path, "rb") as f:
                data = f.read()
            if entry.get("rewrite"):
                if _rewrite is None or spec.get("pass_hook"):
                    continue
                tree = ast.parse(data, filename=path)
                _rewrite.rewrite_asserts(tree, data, path, None)
                code = compile(tree, path, "exec", dont_inherit=True)
                _rewritten[path] = (data, code)
            else:
                code = compile(data, path, "exec", dont_inherit=True)
                _compiled[path] = (data, code)
            _prepare_traceback_source(path)
            count += 1
        except BaseException:
            pass
    _workspace_modules()
    return count, sorted(refused)


class _Capture:
    """The first and last `max` / 2 bytes of a stream."""

    def __init__(self, limit):
        self.limit = max(int(limit), 0)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def push(self, data):
        self.total += len(data)
        room = self.limit // 2 - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        keep = self.limit - self.limit // 2
        if data and keep:
            self.tail += data
            if len(self.tail) > keep:
                del self.tail[: len(self.tail) - keep]

    def text(self):
        kept = len(self.head) + len(self.tail)
        head = self.head.decode("utf-8", "replace")
        tail = self.tail.decode("utf-8", "replace")
        if kept == self.total:
            return head + tail
        return "%s\n[... %d bytes omitted ...]\n%s" % (head, self.total - kept, tail)


def _enter_child(request, out_w, err_w, closing):
    """A forked child's own process group, death with the server, stdin
    from /dev/null, output into the run's pipes and the run's environment
    (exit 70 if any of that fails)."""
    try:
        os.setpgid(0, 0)
        if _libc is not None:
            _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        os.dup2(_devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in closing:
            os.close(fd)
        for key in _PER_RUN_ENV:
            os.environ.pop(key, None)
        os.environ.update(request.get("env", {}))
    except BaseException:
        os._exit(70)


def _exit_child(code):
    """End a child as an interpreter ending pytest would: exit handlers,
    flushed output, the exit code."""
    try:
        import atexit

        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code if isinstance(code, int) else 1)


def _child(request, out_w, err_w, closing):
    _enter_child(request, out_w, err_w, closing)
    sys.argv = ["-m"] + request["argv"]
    code = 1
    try:
        # Exactly what `python -m pytest` does (runpy also sets argv[0]).
        runpy.run_module("pytest", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    _exit_child(code)


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid):
    """CPU time the process `pid` has used so far (all its threads), or
    None where /proc cannot say."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS
    except (OSError, ValueError, IndexError):
        return None


class _CallClock:
    """Watches a run's event log for the test whose call is under way, so
    that one test over its limit ends the run as timed out.

    The limit counts the CPU time the run's process spends in the call
    (wall time where /proc cannot say): a mutant that loops uses it up at
    once, while a test that merely waits for a busy machine does not, so a
    loaded machine never turns a passing test into a timeout. A test that
    hangs without using CPU (a deadlock, a wait for an event that never
    comes) is over once its call has lasted the plugin's wall-time bound of
    its limit (`_over`), more than any load stretches a call that stays
    within its CPU limit; and sooner once the plugin's idle rule (`_Idle`)
    calls it blocked for good. Fresh interpreters apply the same bounds
    from inside (the plugin's `_watch_calls`)."""

    def __init__(self, path, limit, pid, limits=None):
        # The run's limit, single tests' own ones, and the running test's.
        self.default = float(limit)
        self.limits = limits or {}
        self.limit = self.default
        self.pid = pid
        self.file = None
        self.pending = b""
        self.since = None
        self.wall_since = None
        self.idle = _plugin._Idle()
        self.nodeid = None
        self.path = path
        # One kind of clock for the whole run: readings of the two kinds
        # must never be subtracted from each other.
        self.cpu = _cpu_seconds(pid) is not None

    def _now(self):
        """The clock's reading, or None if the CPU time cannot be read
        (then nothing is judged over)."""
        return _cpu_seconds(self.pid) if self.cpu else time.monotonic()

    def over(self):
        if self.file is None:
            try:
                self.file = open(self.path, "rb")
            except OSError:
                return False
        data = self.file.read()
        if data:
            lines = (self.pending + data).split(b"\n")
            self.pending = lines.pop()
            for line in lines:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                kind = event.get("event")
                if kind == "call":
                    self.since = self._now()
                    self.wall_since = time.monotonic()
                    self.nodeid = event.get("nodeid")
                    self.limit = float(self.limits.get(self.nodeid, self.default))
                    self.idle = _plugin._Idle()
                elif kind == "finish" or (
                    kind == "report" and event.get("when") == "call" and not event.get("subtest")
                ):
                    # A subtest's report comes from inside the call, which
                    # goes on (and must stay on the clock).
                    self.since = None
        if self.since is None:
            return False
        wall = time.monotonic()
        waited = wall - self.wall_since
        now = self._now()
        if now is None:
            return _plugin._over(0.0, waited, self.limit)
        if _plugin._over(now - self.since, waited, self.limit):
            return True
        return self.cpu and self.idle.idle(wall, now, waited, self.limit, self.pid)

    def close(self):
        if self.file is not None:
            self.file.close()

    def record_over(self):
        """Append to the event log which test ran over its limit (the run's
        child is dead by then, so nothing else writes the file). The run's
        report tells a hung test from a run that ran out of wall time."""
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("\n" + json.dumps({"event": "over_limit", "nodeid": self.nodeid}) + "\n")
        except OSError:
            pass


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def _become_subreaper():
    """Processes orphaned by a run (a test's `setsid` daemon whose parent
    exited) become this server's children instead of init's, so that
    `_kill_strays` can end them with the run."""
    if _libc is not None:
        _libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _has_children():
    """Whether this server has any child left (reaping the dead ones)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        except OSError:
            return True
        if pid == 0:
            return True


def _children():
    """The pids of this server's children, from /proc (no child is left
    between runs but strays)."""
    me = os.getpid()
    pids = set()
    try:
        names = os.listdir("/proc")
    except OSError:
        return pids
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1 and fields[1] == str(me).encode():
            pids.add(int(name))
    return pids


def _kill_strays():
    """Kill what a finished run left behind outside its process group.
    Killing one hands its own children over to this server, hence the loop."""
    for _ in range(1000):
        if not _has_children():
            return
        strays = _children()
        if not strays:
            return
        for pid in strays:
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        for pid in strays:
            try:
                os.waitpid(pid, 0)
            except OSError:
                pass


class _BecomeChild(BaseException):
    """Raised in a forked child to unwind out of the server's loop: a plain
    server's child then runs pytest afresh, a collected server's child
    returns into the session that collected the suite."""

    def __init__(self, request, out_w, err_w, closing):
        BaseException.__init__(self)
        self.request = request
        self.out_w = out_w
        self.err_w = err_w
        self.closing = closing


def _run(request):
    if not _collected_mode:
        held = _workspace_modules()
        if held:
            _reply({"unusable": "holds modules of the workspace: %s" % ", ".join(held[:5])})
            return
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    if request.get("learn"):
        try:
            os.unlink(_MODULES_FILE)
        except OSError:
            pass
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        raise _BecomeChild(request, out_w, err_w, [out_r, err_r, _proto.fileno()])
    os.close(out_w)
    os.close(err_w)
    # The child may not have reached setpgid yet; make the group now.
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass
    _reply({"started": pid})
    limit = request.get("max_output", 4 << 20)
    captures = {out_r: _Capture(limit), err_r: _Capture(limit)}
    open_fds = [out_r, err_r]
    timeout = request.get("timeout")
    deadline = None if timeout is None else start + float(timeout)
    clock = None
    if request.get("test_timeout") is not None and request.get("events"):
        clock = _CallClock(
            request["events"], request["test_timeout"], pid, request.get("test_timeouts")
        )
    status = None
    exited_at = None
    timed_out = False
    while True:
        now = time.monotonic()
        if status is None:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
                exited_at = now
                _kill_group(pid)
                _kill_strays()
            else:
                over_deadline = deadline is not None and now >= deadline
                over_test = not over_deadline and clock is not None and clock.over()
                if over_deadline or over_test:
                    timed_out = True
                    _kill_group(pid)
                    _, status = os.waitpid(pid, 0)
                    _kill_strays()
                    if over_test:
                        clock.record_over()
                    exited_at = time.monotonic()
                    continue
        if status is not None and (not open_fds or time.monotonic() > exited_at + 2.0):
            break
        if not open_fds:
            # Output closed, exit not yet reaped: poll closely.
            time.sleep(0.002)
            continue
        wait = 0.05
        if deadline is not None and status is None:
            wait = max(0.0, min(wait, deadline - now))
        ready, _, _ = select.select(open_fds, [], [], wait)
        for fd in ready:
            data = os.read(fd, 1 << 16)
            if data:
                captures[fd].push(data)
            else:
                open_fds.remove(fd)
    seconds = time.monotonic() - start
    for fd in (out_r, err_r):
        os.close(fd)
    if clock is not None:
        clock.close()
    exit_code = None
    if not timed_out and os.WIFEXITED(status):
        exit_code = os.WEXITSTATUS(status)
    if exit_code == _FALLBACK:
        err = captures[err_r].text()
        if _FALLBACK_MARK in err:
            _reply({"fallback": err.split(_FALLBACK_MARK, 1)[1].strip()})
            return
    learned = None
    if request.get("learn") and not timed_out:
        try:
            with open(_MODULES_FILE, encoding="utf-8") as f:
                learned = json.load(f)
        except (OSError, ValueError):
            learned = None
    _reply(
        {
            "exit_code": exit_code,
            "timed_out": timed_out,
            "seconds": seconds,
            "stdout": captures[out_r].text(),
            "stderr": captures[err_r].text(),
            "learned": learned,
        }
    )


# ------------------------------------------------------------ collected mode
#
# A collected server runs the whole suite's pytest session in this process up
# to the end of collection, then serves each run by forking there: the child
# keeps only the selected items and runs them, so that start-up, the import
# of every test module and the making of every item are paid once.
#
# What the child runs must be what a fresh interpreter would run on the
# workspace as it is now. The server keeps the bytes of every workspace
# module it imported; the child compares them with the files, and where a
# file changed it compiles the new text and puts the new code into the live
# functions — which is what importing the changed file would have given
# them — provided that is all that differs:
#
# * module and class bodies (code that ran at import) must be unchanged but
#   for line positions, and every definition must still be there;
# * a changed function's code replaces `__code__` of every function object
#   made from the old code (closures included); none may be suspended in a
#   generator, and its free variables must match;
# * test files and conftests (compiled by pytest's assertion rewriting) must
#   be unchanged.
#
# Anything else makes the child exit with `_FALLBACK`, and the run is redone
# by a plain server, which imports everything afresh. Lines that run at
# import or collection never reach here with a changed body: the validator
# sends such candidates to the whole suite.

_FALLBACK = 75
_FALLBACK_MARK = "smith-collected-fallback:"

_CO_OPTIMIZED = 0x0001

# path -> (bytes, loader name, module file name)
_snapshot = {}
# code -> live functions made from it
_functions = {}
# codes of suspended generators and coroutines
_suspended = set()
# (dev, inode) of what fds 0, 1 and 2 pointed at during collection
_std_ids = {}
_session_items = None
_stdin_copy = []


def _file_id(fd):
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino)


def _take_snapshot():
    root = os.path.realpath(os.getcwd()) + os.sep
    control = os.path.join(root, ".smith") + os.sep
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or not path.endswith(".py"):
            continue
        real = os.path.realpath(path)
        if not real.startswith(root) or real.startswith(control):
            continue
        try:
            with open(real, "rb") as f:
                data = f.read()
        except OSError:
            continue
        loader = type(getattr(module, "__loader__", None)).__name__
        _snapshot[real] = (data, loader, path)


def _index_live_code():
    import gc

    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType):
            _functions.setdefault(obj.__code__, []).append(obj)
        elif isinstance(obj, (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)):
            code = getattr(obj, "gi_code", None) or getattr(obj, "cr_code", None) or getattr(obj, "ag_code", None)
            if code is not None:
                _suspended.add(code)


def _codes(code):
    return [c for c in code.co_consts if isinstance(c, types.CodeType)]


def _without_positions(code):
    """`code` with nested code and line positions blanked: what running it
    does, as far as a module or class body goes."""
    consts = tuple(None if isinstance(c, types.CodeType) else c for c in code.co_consts)
    fields = {"co_consts": consts, "co_firstlineno": 1}
    if hasattr(code, "co_linetable"):
        fields["co_linetable"] = b""
    else:  # pragma: no cover - Python before 3.10
        fields["co_lnotab"] = b""
    return code.replace(**fields)


# Code objects a module or class body runs on the spot rather than keeping
# as a function.
_RUN_ON_THE_SPOT = ("<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>")


def _docstring(code):
    first = code.co_consts[0] if code.co_consts else None
    return first if isinstance(first, str) else None


def _pair(old, new, changed, in_body=True):
    """Walk two compilations of one file side by side; collect the function
    codes that differ. Returns why they cannot be swapped in, or None.
    `in_body`: the parent is a module or class body (it ran at import)."""
    olds, news = _codes(old), _codes(new)
    if len(olds) != len(news) or old.co_name != new.co_name:
        return "definitions were added, removed or renamed in %s" % old.co_name
    function = bool(old.co_flags & _CO_OPTIMIZED)
    if function:
        if old != new:
            if in_body and old.co_name in _RUN_ON_THE_SPOT:
                return "%s at import changed" % old.co_name
            if _docstring(old) != _docstring(new):
                return "the docstring of %s changed" % old.co_name
            changed.append((old, new))
    elif _without_positions(old) != _without_positions(new):
        return "code that runs at import changed in %s" % old.co_name
    for o, n in zip(olds, news):
        reason = _pair(o, n, changed, not function)
        if reason:
            return reason
    return None


def _clean_code(path, real, data):
    """The code of a file's clean bytes `data`: warm-up's compilation when
    it compiled these very bytes (a large module takes tens of
    milliseconds to compile, on every run that changes it), else a new
    one."""
    for key in (path, real):
        hit = _compiled.get(key)
        if hit is not None and hit[0] == data:
            return hit[1]
    return compile(data, path, "exec", dont_inherit=True)


def _swap_in_changes():
    """Make the live code match the files on disk; the reason it cannot, or
    None."""
    for real, (data, loader, path) in _snapshot.items():
        try:
            with open(real, "rb") as f:
                now = f.read()
        except OSError:
            return "%s is gone" % path
        if now == data:
            continue
        if loader != "SourceFileLoader":
            return "%s changed and is not a plain module" % path
        try:
            old = _clean_code(path, real, data)
            new = compile(now, path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as e:
            return "%s does not compile: %s" % (path, e)
        changed = []
        reason = _pair(old, new, changed)
        if reason:
            return reason
        for o, n in changed:
            if o in _suspended:
                return "%s is suspended in a generator" % o.co_name
            for fn in _functions.get(o, ()):
                if fn.__code__.co_filename != path:
                    continue
                try:
                    fn.__code__ = n
                except ValueError as e:
                    return "cannot swap %s: %s" % (o.co_name, e)
    return None


def _redirect_std(out_w, err_w):
    """Point every descriptor that pointed at the server's collection-time
    stdout or stderr (pytest's capturing keeps copies) at the run's pipes,
    and stdin's at /dev/null."""
    targets = {_std_ids[0]: _devnull, _std_ids[1]: out_w, _std_ids[2]: err_w}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd in (out_w, err_w, _devnull):
            continue
        try:
            target = targets.get(_file_id(fd))
        except OSError:
            continue
        if target is not None:
            os.dup2(target, fd)


class _Collected:
    """The plugin that turns a pytest session into a collected server."""

    def __init__(self):
        self.child = False

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session):
        global _session_items
        if session.testsfailed or session.shouldfail or session.shouldstop:
            _reply({"collected": None, "reason": "the clean suite has collection errors"})
            os._exit(0)
        _session_items = list(session.items)
        _take_snapshot()
        _index_live_code()
        _freeze()
        _reply({"collected": len(_session_items)})
        # pytest's capturing may have stdin pointed at /dev/null now.
        child = _serve(_requests(_stdin_copy[0]))
        if child is None:
            os._exit(0)
        self.child = True
        self._become(session, child)
        return None

    def _become(self, session, child):
        request = child.request
        try:
            _redirect_std(child.out_w, child.err_w)
        except BaseException:
            os._exit(70)
        _enter_child(request, child.out_w, child.err_w, child.closing)
        reason = _swap_in_changes()
        if reason:
            os.write(2, ("%s %s\n" % (_FALLBACK_MARK, reason)).encode("utf-8", "replace"))
            os._exit(_FALLBACK)
        import linecache

        linecache.clearcache()
        capman = session.config.pluginmanager.getplugin("capturemanager")
        capturing = getattr(capman, "_global_capturing", None)
        for cap in (getattr(capturing, "out", None), getattr(capturing, "err", None)):
            tmpfile = getattr(cap, "tmpfile", None)
            if tmpfile is not None:
                tmpfile.seek(0)
                tmpfile.truncate()
        plugin = sys.modules.get("smith_pytest_plugin")
        if plugin is not None:
            plugin._out = None
        wanted = set(request.get("select") or ())
        keep = [item for item in _session_items if item.nodeid in wanted]
        drop = [item for item in _session_items if item.nodeid not in wanted]
        if drop:
            session.config.hook.pytest_deselected(items=drop)
        session.items[:] = keep


def _collect_and_serve(spec):
    """Collect the suite (`spec["argv"]`, pytest's arguments) in this
    process and serve runs from there; returns only in a child, or when the
    session ended before its test loop."""
    import tempfile

    _std_ids[0] = _file_id(0)
    _stdin_copy.append(os.dup(0))
    for fd in (1, 2):
        placeholder = tempfile.TemporaryFile()
        os.dup2(placeholder.fileno(), fd)
        placeholder.close()
        _std_ids[fd] = _file_id(fd)
    if not os.path.isdir("/proc/self/fd"):
        _reply({"collected": None, "reason": "no /proc/self/fd"})
        return
    _collected_mode.append(True)
    os.environ.update(spec.get("env", {}))
    sys.argv = ["-m"] + spec["argv"]
    plugin = _Collected()
    code = 1
    try:
        code = pytest.main(spec["argv"], plugins=[plugin])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        if plugin.child:
            import traceback

            traceback.print_exc()
    if not plugin.child:
        _reply({"collected": None, "reason": "the session ended before its test loop"})
        return
    _exit_child(int(code) if isinstance(code, int) else 1)


def _workspace_gone():
    try:
        return os.stat(".").st_nlink == 0
    except OSError:
        return True


def _requests(fd=0):
    """The requests on `fd` (stdin), one at a time, until it closes or the
    workspace is deleted."""
    pending = b""
    while True:
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            if _workspace_gone():
                return
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return
        pending += chunk


def _freeze():
    """Move everything alive now out of the garbage collector's reach: a
    child's full collection (pytest runs one as its session ends) then
    walks only what the run made, instead of every object warm-up imported,
    and does not write to, and so copy, every page of the parent's heap."""
    import gc

    try:
        gc.freeze()
    except AttributeError:  # pragma: no cover - Python before 3.7
        pass


def _serve(requests):
    """Serve `requests`; in a forked child, return its `_BecomeChild` (once
    out of the `except` block, so that no exception the child's tests raise
    is chained to it), else None when the requests end."""
    try:
        for request in requests:
            if "warm" in request:
                count, refused = _warm(request["warm"])
                _freeze()
                _reply({"warmed": count, "refused": refused})
            elif "collect" in request:
                _collect_and_serve(request["collect"])
                return None
            else:
                _run(request)
    except _BecomeChild as child:
        became = child
    else:
        return None
    became.__traceback__ = None
    return became


def main():
    _become_subreaper()
    _reply({"ready": True, "pid": os.getpid()})
    child = _serve(_requests())
    if child is not None:
        _child(child.request, child.out_w, child.err_w, child.closing)


if __name__ == "__main__":
    main()
