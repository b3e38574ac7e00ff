"""Episodes from Python on tasks made from the demo repository: reset,
commands, file access, diffs and grading, errors as exceptions, threads."""

import concurrent.futures
import time

import pytest

import smith
from conftest import bug_files


def test_tasks_carry_their_instance(tasks, run_dir):
    records = smith.read_jsonl(f"{run_dir}/instances.jsonl")
    assert [t.instance_id for t in tasks] == [r["instance_id"] for r in records]
    t, r = tasks[0], records[0]
    assert t.problem_statement == r["problem_statement"]
    assert t.fail_to_pass == r["FAIL_TO_PASS"] and t.fail_to_pass
    assert t.pass_to_pass == r["PASS_TO_PASS"]
    assert t.instance["patch"] == t.patch == r["patch"]
    # None means the run's instances.jsonl; the records themselves do too.
    assert [x.instance_id for x in smith.load_tasks(None, run_dir)] == [t.instance_id for t in tasks]
    again = smith.load_tasks(records[:2], run_dir)
    assert [x.instance_id for x in again] == [r["instance_id"] for r in records[:2]]


def test_reset_exec_and_file_access(single_file_task):
    task = single_file_task
    path = bug_files(task)[0]
    ep = task.episode()
    buggy = ep.read_file(path)
    # The episode starts on the buggy tree: applying the bug again fails,
    # the fix applies.
    with pytest.raises(smith.SmithError):
        ep.apply_patch(task.patch)

    code, out = ep.exec("echo hello; echo oops >&2; exit 3")
    assert code == 3
    assert "hello" in out and "oops" in out
    code, out = ep.exec(f"cat {path}")
    assert code == 0 and out == buggy

    ep.write_file("notes/new.txt", "written from Python\n")
    assert ep.read_file("notes/new.txt") == "written from Python\n"
    code, out = ep.exec("cat notes/new.txt && touch made-by-command.txt")
    assert (code, out) == (0, "written from Python\n")
    diff = ep.diff()
    assert "+++ b/notes/new.txt" in diff and "made-by-command.txt" in diff
    assert path not in diff, "the bug itself is not part of the episode's diff"

    ep.reset()
    assert ep.read_file(path) == buggy
    with pytest.raises(smith.SmithError):
        ep.read_file("notes/new.txt")
    assert ep.diff() == ""


def test_commands_time_out(single_file_task):
    ep = single_file_task.episode()
    start = time.monotonic()
    code, out = ep.exec("sleep 30", timeout=1)
    assert code == -1 and "time limit" in out
    assert time.monotonic() - start < 25


def test_gold_fix_resolves_and_wrong_patches_do_not(single_file_task):
    task = single_file_task
    ep = task.episode()
    g = ep.grade(task.gold_patch)
    assert g.resolved and g.applied and g.reward == 1.0
    assert sorted(g.fail_to_pass_passed) == sorted(task.fail_to_pass)
    assert sorted(g.pass_to_pass_passed) == sorted(task.pass_to_pass)
    assert g.fail_to_pass_failed == [] and g.pass_to_pass_failed == []
    assert g.to_dict()["FAIL_TO_PASS"]["success"] == g.fail_to_pass_passed

    # A patch that applies but leaves the bug.
    path = bug_files(task)[0]
    ep.reset()
    ep.write_file(path, ep.read_file(path) + "\n# not a fix\n")
    wrong = ep.diff()
    assert wrong.count("+++ b/") == 1
    g = ep.grade(wrong)
    assert g.applied and not g.resolved and g.reward == 0.0
    assert sorted(g.fail_to_pass_failed) == sorted(task.fail_to_pass)

    # A patch that does not apply.
    g = task.grade(task.patch)
    assert not g.applied and not g.resolved


def test_grading_the_workspace_as_it_is(single_file_task):
    task = single_file_task
    ep = task.episode()
    assert not ep.grade().resolved, "the buggy tree is unresolved"
    ep.apply_patch(task.gold_patch)
    assert ep.grade().resolved
    # The diff of the fixed workspace is the fix, and grades as one.
    fix = ep.diff()
    assert fix.strip()
    assert task.grade(fix).resolved


def test_errors_are_python_exceptions(tasks, run_dir, tmp_path):
    ep = tasks[0].episode()
    with pytest.raises(smith.SmithError, match="no/such/file.py"):
        ep.read_file("no/such/file.py")
    with pytest.raises(smith.SmithError, match="unknown field `max_candidate`"):
        smith.run("examples/demo-repo", tmp_path / "out", max_candidate=3)
    with pytest.raises(smith.SmithError, match="env.json"):
        smith.load_tasks([tasks[0].instance], tmp_path)
    with pytest.raises(smith.SmithError, match="unknown sandbox"):
        smith.load_tasks([tasks[0].instance], run_dir, sandbox="vm")
    assert issubclass(smith.SmithError, RuntimeError)


def test_grade_predictions_in_swebench_format(tasks, run_dir, tmp_path):
    preds = [
        {"instance_id": t.instance_id, "model_patch": t.gold_patch, "model_name_or_path": "gold"}
        for t in tasks[:3]
    ]
    preds.append({"instance_id": tasks[3].instance_id, "model_patch": "", "model_name_or_path": "gold"})
    report = smith.grade_predictions(preds, run_dir, workers=2, log_dir=tmp_path / "logs")
    assert sorted(report["resolved_ids"]) == sorted(t.instance_id for t in tasks[:3])
    assert report["empty_patch_ids"] == [tasks[3].instance_id]
    assert report["total_instances"] == len(tasks)
    assert report["submitted_instances"] == 4
    one = report["instances"][tasks[0].instance_id]
    assert one["patch_successfully_applied"] and one["resolved"]
    assert sorted(one["tests_status"]["FAIL_TO_PASS"]["success"]) == sorted(tasks[0].fail_to_pass)
    assert (tmp_path / "logs" / tasks[0].instance_id / "report.json").exists()


def _episode(task):
    # An agent's episode: a command that waits (a model call, a slow build
    # step), then grading the fix. Both run with the GIL released.
    ep = task.episode()
    code, _ = ep.exec("sleep 0.5")
    assert code == 0
    return ep.grade(task.gold_patch).resolved


def test_episodes_in_threads_run_in_parallel(single_file_task):
    task = single_file_task
    assert _episode(task)  # warm the workspace pool and caches

    start = time.monotonic()
    sequential = [_episode(task) for _ in range(8)]
    sequential_secs = time.monotonic() - start

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(lambda _: _episode(task), range(8)))
    parallel_secs = time.monotonic() - start

    assert all(sequential) and all(parallel)
    # A concurrency property, not a timing target: if the GIL were held
    # while commands and tests run, the threads would take turns and the
    # parallel wall time would match the sequential one. With it released
    # the commands' waits overlap whatever the number of cores, and the
    # test runs overlap across cores; 0.8 leaves wide slack.
    assert parallel_secs < 0.8 * sequential_secs, (parallel_secs, sequential_secs)
