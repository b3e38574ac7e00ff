"""Run mini-swe-agent (https://pypi.org/project/mini-swe-agent/) on smith
episodes: :class:`SmithEnvironment` is a mini-swe-agent execution
environment whose commands run in a smith episode's sandboxed workspace, and
:func:`run_agent` runs an agent on a task and grades what it submits.

    from minisweagent.models import get_model
    from smith.mini import run_agent
    result = run_agent(task, get_model("anthropic/claude-sonnet-4-5"))
    result.grade.resolved, result.reward, result.submission

Needs ``pip install mini-swe-agent``.
"""

from __future__ import annotations

import platform
import shlex
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from minisweagent.exceptions import Submitted

from smith._smith import Episode, Grade, Task

SUBMIT_MARKER = "COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"


class SmithEnvironment:
    """A mini-swe-agent ``Environment`` over a smith :class:`Episode`.

    Each action's ``command`` runs with ``bash -c`` in the workspace (the
    repository root), within ``timeout`` seconds. When a command's output
    starts with mini-swe-agent's submit marker, the episode's changes to the
    buggy tree (``episode.diff()``) become the submission."""

    def __init__(self, episode: Episode, *, timeout: float = 60.0, env: Optional[Dict[str, str]] = None):
        self.episode = episode
        self.config = {
            "timeout": timeout,
            "env": dict(env or {}),
            "instance_id": episode.task.instance_id,
        }

    def execute(self, action: Dict[str, Any], cwd: str = "", *, timeout: Optional[float] = None) -> Dict[str, Any]:
        command = action.get("command", "") if isinstance(action, dict) else str(action)
        prefix = "".join(f"export {k}={shlex.quote(v)}; " for k, v in self.config["env"].items())
        if cwd:
            prefix += f"cd {shlex.quote(cwd)} && "
        code, output = self.episode.exec(prefix + command, timeout or self.config["timeout"])
        result = {"output": output, "returncode": code, "exception_info": ""}
        lines = output.lstrip().splitlines()
        if lines and lines[0].strip() == SUBMIT_MARKER and code == 0:
            submission = self.episode.diff()
            raise Submitted(
                {
                    "role": "exit",
                    "content": submission,
                    "extra": {"exit_status": "Submitted", "submission": submission},
                }
            )
        return result

    def get_template_vars(self, **kwargs: Any) -> Dict[str, Any]:
        return {**platform.uname()._asdict(), **self.config, "cwd": ".", **kwargs}

    def serialize(self) -> Dict[str, Any]:
        return {
            "info": {
                "config": {
                    "environment": dict(self.config),
                    "environment_type": f"{self.__class__.__module__}.{self.__class__.__name__}",
                }
            }
        }


@dataclass
class AgentResult:
    """What an agent did on a task and how it grades."""

    exit_status: str
    submission: str
    grade: Grade
    trajectory: Dict[str, Any] = field(repr=False)

    @property
    def reward(self) -> float:
        return self.grade.reward


def run_agent(
    task: Task,
    model: Any,
    *,
    config: Any = "default",
    timeout: float = 60.0,
    **agent_options: Any,
) -> AgentResult:
    """Run mini-swe-agent's ``DefaultAgent`` with ``model`` on a fresh episode
    of ``task``, then grade its submission on the buggy tree with the task's
    tests. ``config`` is a mini-swe-agent config name or dict (its
    ``agent`` and ``environment.env`` sections are used); ``agent_options``
    override the agent's settings (``step_limit=30``, ...)."""
    from minisweagent.agents.default import DefaultAgent
    from minisweagent.config import get_config_from_spec

    spec = get_config_from_spec(config) if isinstance(config, str) else dict(config)
    agent_config = {**spec.get("agent", {}), **agent_options}
    env_vars = spec.get("environment", {}).get("env", {})
    episode = task.episode()
    env = SmithEnvironment(episode, timeout=timeout, env=env_vars)
    agent = DefaultAgent(model, env, **agent_config)
    info = agent.run(task.problem_statement)
    submission = info.get("submission", "") or ""
    grade = episode.grade(submission)
    return AgentResult(
        exit_status=info.get("exit_status", ""),
        submission=submission,
        grade=grade,
        trajectory=agent.serialize(),
    )
