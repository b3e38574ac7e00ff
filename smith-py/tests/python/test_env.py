"""The Gymnasium-style environment over smith tasks."""

import pytest

import smith
from smith.env import SmithEnv


def test_an_rl_loop_gets_reward_for_the_fix(tasks):
    env = SmithEnv(tasks, max_steps=10, seed=0)
    obs, info = env.reset(options={"task": 1})
    task = tasks[1]
    assert obs == task.problem_statement and info["instance_id"] == task.instance_id

    obs, reward, terminated, truncated, info = env.step("ls")
    assert reward == 0.0 and not terminated and not truncated
    assert info["exit_code"] == 0 and obs.startswith("exit code 0")

    obs, reward, terminated, truncated, info = env.step({"type": "apply_patch", "patch": task.gold_patch})
    assert obs == "patch applied" and reward == 0.0
    obs, reward, terminated, truncated, info = env.step({"type": "submit"})
    assert terminated and not truncated and reward == 1.0
    assert info["grade"]["resolved"]
    with pytest.raises(smith.SmithError):
        env.step("ls")

    # Reset to the same task: the buggy tree again; submitting it scores 0.
    obs, _ = env.reset(options={"task": task.instance_id})
    _, reward, terminated, _, info = env.step({"type": "submit"})
    assert terminated and reward == 0.0 and not info["grade"]["resolved"]


def test_episodes_truncate_and_report_bad_actions(tasks):
    env = SmithEnv(tasks[0], max_steps=2)
    env.reset()
    obs, reward, terminated, truncated, info = env.step({"type": "read", "path": "no/such.py"})
    assert "error" in info and obs.startswith("error:") and not truncated
    obs, reward, terminated, truncated, info = env.step({"type": "write"})
    assert "needs" in obs and truncated and not terminated and reward == 0.0
