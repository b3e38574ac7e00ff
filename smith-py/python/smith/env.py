"""A Gymnasium-style environment over smith tasks, with no dependency on
Gymnasium itself (the method signatures are Gymnasium's, so wrappers and
training loops written for it work).

An episode starts on the buggy tree of one task. Actions are shell commands
(a string) or dicts:

- ``{"type": "exec", "command": "...", "timeout": 30}``: run a command;
- ``{"type": "read", "path": "..."}`` / ``{"type": "write", "path": "...",
  "content": "..."}``: file access;
- ``{"type": "apply_patch", "patch": "..."}``: apply a unified diff;
- ``{"type": "submit"}`` (optionally with ``"patch"``): grade the workspace
  (or the patch, on the buggy tree) with the task's FAIL_TO_PASS and
  PASS_TO_PASS tests. The reward is 1.0 when resolved, else 0.0, and the
  episode terminates.

Every other step has reward 0. After ``max_steps`` steps without a submit
the episode is truncated.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from smith._smith import Episode, SmithError, Task

Action = Union[str, Dict[str, Any]]


class SmithEnv:
    """``reset()`` → (problem statement, info); ``step(action)`` →
    (observation, reward, terminated, truncated, info)."""

    metadata: Dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        tasks: Union[Task, Sequence[Task]],
        *,
        max_steps: int = 50,
        timeout: Optional[float] = 60.0,
        seed: Optional[int] = None,
    ):
        self.tasks: List[Task] = [tasks] if isinstance(tasks, Task) else list(tasks)
        if not self.tasks:
            raise SmithError("SmithEnv needs at least one task")
        self.max_steps = max_steps
        self.timeout = timeout
        self._rng = random.Random(seed)
        self.task: Optional[Task] = None
        self.episode: Optional[Episode] = None
        self.steps = 0
        self.done = False

    def reset(
        self, *, seed: Optional[int] = None, options: Optional[Dict[str, Any]] = None
    ) -> Tuple[str, Dict[str, Any]]:
        """Start an episode on a task: ``options={"task": index or
        instance_id}``, else one chosen at random (seeded by ``seed``)."""
        if seed is not None:
            self._rng.seed(seed)
        choice = (options or {}).get("task")
        if choice is None:
            task = self._rng.choice(self.tasks)
        elif isinstance(choice, int):
            task = self.tasks[choice]
        else:
            found = [t for t in self.tasks if t.instance_id == choice]
            if not found:
                raise SmithError(f"no task {choice!r} in this environment")
            task = found[0]
        if self.episode is not None and self.task is not None and task.instance_id == self.task.instance_id:
            self.episode.reset()
        else:
            self.close()
            self.episode = task.episode()
        self.task = task
        self.steps = 0
        self.done = False
        return task.problem_statement, {"instance_id": task.instance_id}

    def step(self, action: Action) -> Tuple[str, float, bool, bool, Dict[str, Any]]:
        if self.episode is None or self.task is None:
            raise SmithError("call reset() before step()")
        if self.done:
            raise SmithError("the episode is over; call reset()")
        if isinstance(action, str):
            action = {"type": "exec", "command": action}
        kind = action.get("type", "exec")
        self.steps += 1
        info: Dict[str, Any] = {"instance_id": self.task.instance_id, "step": self.steps}
        reward = 0.0
        terminated = False
        try:
            if kind == "exec":
                code, output = self.episode.exec(action["command"], action.get("timeout", self.timeout))
                info["exit_code"] = code
                observation = f"exit code {code}\n{output}"
            elif kind == "read":
                observation = self.episode.read_file(action["path"])
            elif kind == "write":
                self.episode.write_file(action["path"], action["content"])
                observation = f"wrote {action['path']}"
            elif kind == "apply_patch":
                self.episode.apply_patch(action["patch"])
                observation = "patch applied"
            elif kind == "submit":
                grade = self.episode.grade(action.get("patch"))
                info["grade"] = grade.to_dict()
                reward = grade.reward
                terminated = True
                observation = repr(grade)
            else:
                raise SmithError(f"unknown action type {kind!r}")
        except (SmithError, KeyError) as e:
            if isinstance(e, KeyError):
                observation = f"error: action {kind!r} needs {e}"
            else:
                observation = f"error: {e}"
            info["error"] = observation
        truncated = not terminated and self.steps >= self.max_steps
        self.done = terminated or truncated
        return observation, reward, terminated, truncated, info

    def close(self) -> None:
        """Give the episode's workspace back."""
        self.episode = None
        self.task = None
