"""smith from Python: make tasks from a repository, run RL episodes on them,
grade patches the way SWE-bench does.

    import smith
    summary = smith.run("path/to/repo", "smith-out", max_candidates=60)
    tasks = smith.load_tasks("smith-out/instances.jsonl", "smith-out")
    episode = tasks[0].episode()           # the buggy tree, in a sandbox
    code, output = episode.exec("pytest -x -q", timeout=60)
    grade = episode.grade(tasks[0].gold_patch)
    assert grade.resolved and grade.reward == 1.0

Calls that run the pipeline, commands or tests release the GIL, so
episodes in threads run in parallel. Failures raise :class:`SmithError`
with smith's message.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, List, Optional, Union

from smith._smith import Episode, Grade, SmithError, Task
from smith import _smith

__all__ = [
    "Episode",
    "Grade",
    "SmithError",
    "Task",
    "grade_predictions",
    "load_tasks",
    "read_jsonl",
    "run",
]

PathLike = Union[str, "os.PathLike[str]"]


def run(repo: PathLike, out: PathLike, **options: Any) -> dict:
    """Run the whole pipeline on ``repo`` into ``out`` and return the summary
    (the contents of ``out/summary.json``) as a dict.

    Options take the pipeline's setting names, e.g. ``max_candidates=60``,
    ``seed=0``, ``workers=4``, ``strategies=["func_pm_op_change"]``,
    ``sandbox="local"``, ``cache_dir=...``, ``baseline_runs=1``,
    ``force=True``, ``min_pass_rate=0.8``, ``timeout_floor=30.0`` (seconds).
    An unknown option raises :class:`SmithError`.
    """
    opts = {k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in options.items()}
    return json.loads(_smith.run(os.fspath(repo), os.fspath(out), json.dumps(opts)))


def read_jsonl(path: PathLike) -> List[dict]:
    """The records of a JSONL file."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _records(items: Union[PathLike, Iterable[dict], None], default: Optional[PathLike]) -> List[str]:
    if items is None:
        if default is None:
            raise SmithError("no records given")
        items = default
    if isinstance(items, (str, os.PathLike)):
        path = os.fspath(items)
        if path.endswith(".jsonl"):
            return [json.dumps(r) for r in read_jsonl(path)]
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if isinstance(data, dict):  # keyed by instance id, as SWE-bench accepts
            data = list(data.values())
        return [json.dumps(r) for r in data]
    return [json.dumps(r) for r in items]


def load_tasks(
    instances: Union[PathLike, Iterable[dict], None],
    run_dir: PathLike,
    *,
    sandbox: Optional[str] = None,
    timeout: Optional[float] = None,
) -> List[Task]:
    """Tasks for ``instances`` (a JSONL/JSON file, a list of instance dicts,
    or None for ``run_dir/instances.jsonl``) in the environment of the
    pipeline output directory ``run_dir``.

    ``sandbox`` is ``"auto"`` (default), ``"local"``, ``"bwrap"`` or
    ``"docker"``; ``timeout`` limits each command and test run (seconds).
    """
    default = os.path.join(os.fspath(run_dir), "instances.jsonl")
    return _smith.load_tasks(_records(instances, default), os.fspath(run_dir), sandbox, timeout)


def grade_predictions(
    predictions: Union[PathLike, Iterable[dict]],
    run_dir: PathLike,
    instances: Union[PathLike, Iterable[dict], None] = None,
    *,
    workers: Optional[int] = None,
    sandbox: Optional[str] = None,
    log_dir: Optional[PathLike] = None,
    run_empty: bool = False,
    timeout: Optional[float] = None,
) -> dict:
    """Grade SWE-bench predictions (``{instance_id, model_patch,
    model_name_or_path}`` records: a JSONL/JSON file or a list of dicts)
    against ``instances`` (default ``run_dir/instances.jsonl``). Returns
    SWE-bench's run report as a dict (``resolved_ids``, ``error_ids``, ...,
    plus ``instances``: per-instance ``report.json`` entries)."""
    default = os.path.join(os.fspath(run_dir), "instances.jsonl")
    report = _smith.grade_predictions(
        _records(instances, default),
        _records(predictions, None),
        os.fspath(run_dir),
        workers,
        sandbox,
        os.fspath(log_dir) if log_dir is not None else None,
        run_empty,
        timeout,
    )
    return json.loads(report)
