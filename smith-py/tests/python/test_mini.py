"""mini-swe-agent (from PyPI) runs a smith episode through the adapter,
driven by its deterministic test model scripted to apply the gold fix."""

from minisweagent.models.test_models import DeterministicModel, make_output

from conftest import bug_files
from smith.mini import SUBMIT_MARKER, run_agent


def test_mini_swe_agent_resolves_a_task_with_the_scripted_fix(single_file_task):
    task = single_file_task
    path = bug_files(task)[0]
    # The fixed file's text, to be written by the agent's command.
    scratch = task.episode()
    scratch.apply_patch(task.gold_patch)
    fixed = scratch.read_file(path)
    del scratch
    assert "SMITH_EOF" not in fixed and fixed.endswith("\n")

    model = DeterministicModel(
        outputs=[
            make_output("Look at the file.", [{"command": f"cat {path}"}]),
            make_output("Fix it.", [{"command": f"cat > {path} <<'SMITH_EOF'\n{fixed}SMITH_EOF"}]),
            make_output("Done.", [{"command": f"echo {SUBMIT_MARKER}"}]),
        ]
    )
    result = run_agent(task, model, step_limit=10)

    assert result.exit_status == "Submitted", result.trajectory["messages"][-1]
    assert f"+++ b/{path}" in result.submission
    assert result.grade.resolved and result.reward == 1.0
    # The first command's output (the buggy file) came back to the agent.
    observations = [m["content"] for m in result.trajectory["messages"] if m["role"] == "user"]
    assert any("<returncode>0</returncode>" in o for o in observations[1:])


def test_an_agent_that_changes_nothing_is_not_resolved(single_file_task):
    model = DeterministicModel(outputs=[make_output("Give up.", [{"command": f"echo {SUBMIT_MARKER}"}])])
    result = run_agent(single_file_task, model, step_limit=5)
    assert result.exit_status == "Submitted"
    assert result.submission == ""
    assert not result.grade.resolved and result.reward == 0.0
