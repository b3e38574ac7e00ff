"""Written by smith as `.smith/sitecustomize.py` for its coverage run only.

Every Python process started with `.smith` on its `PYTHONPATH` imports this
at start-up. With `COVERAGE_PROCESS_START` set, it starts coverage.py there
(coverage.py before 7.13 ships no `.pth` file that would; from 7.13 the call
is a no-op, coverage has already started), then runs the `sitecustomize`
this one hides, if any.
"""

import os
import sys


def _start_coverage():
    if not os.environ.get("COVERAGE_PROCESS_START"):
        return
    try:
        import coverage

        coverage.process_startup()
    except Exception:
        pass


def _run_hidden():
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    try:
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
        if spec is not None and spec.loader is not None:
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
    except Exception:
        pass


_start_coverage()
_run_hidden()
