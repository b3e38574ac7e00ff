#!/usr/bin/env python3
"""Check a smith run's task instances independently, the way a grader would.

    python3 scripts/reproduce.py RUN_DIR [--sample N] [--seed S] [--json]

For each sampled instance of RUN_DIR/instances.jsonl this takes a fresh
clone of the run's repository (RUN_DIR/repo) at the instance's base commit,
and runs the project's own test command (from RUN_DIR/env.json) in a new
interpreter, with the environment's virtualenv, no smith code involved and
no fixed hash seed:

  * on the clean tree, every FAIL_TO_PASS and PASS_TO_PASS test must pass;
  * with the instance's patch applied by `git apply`, every FAIL_TO_PASS
    test must fail (or error, or be missing because its module no longer
    imports) and every PASS_TO_PASS test must pass.

Outcomes are read from pytest's own report hook through a small plugin this
script writes next to the clone. Prints one line per instance and a total;
exits 1 when any instance does not reproduce.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

PLUGIN = r'''
import json, os

_out = open(os.environ["REPRODUCE_OUTCOMES"], "a")


def pytest_runtest_logreport(report):
    if report.when == "call":
        outcome = report.outcome
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
    elif report.failed:
        outcome = "error"
    elif report.skipped:
        outcome = "skipped"
    else:
        return
    _out.write(json.dumps({"id": report.nodeid, "outcome": outcome}) + "\n")
    _out.flush()
'''


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def run(cmd, cwd, env=None, check=True, timeout=None):
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {cwd}:\n{proc.stderr[-2000:]}")
    return proc


class Runner:
    """Runs the project's test command in a clone, in a fresh interpreter."""

    def __init__(self, run_dir, scratch):
        env_json = load_json(os.path.join(run_dir, "env.json"))
        self.venv = env_json["venv"]
        self.spec = env_json["spec"]
        # Files the environment's install generated in the repository's
        # packages (a version module); an in-place install would leave them
        # in the tree, so every clone gets them.
        self.generated = env_json.get("generated", [])
        self.repo = os.path.join(run_dir, "repo")
        self.scratch = scratch
        self.plugin_dir = os.path.join(scratch, "plugin")
        os.makedirs(self.plugin_dir, exist_ok=True)
        with open(os.path.join(self.plugin_dir, "reproduce_outcomes.py"), "w") as f:
            f.write(PLUGIN)

    def clone(self, name, commit):
        path = os.path.join(self.scratch, name)
        run(["git", "clone", "-q", "--no-checkout", self.repo, path], cwd=self.scratch)
        run(["git", "checkout", "-q", commit], cwd=path)
        for rel in self.generated:
            dst = os.path.join(path, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(os.path.join(self.venv, "smith-generated", rel), dst)
        return path

    def outcomes(self, tree, timeout):
        """Outcome of every test the project's command runs in `tree`."""
        out_file = os.path.join(self.scratch, "outcomes.jsonl")
        if os.path.exists(out_file):
            os.remove(out_file)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHASHSEED", "VIRTUAL_ENV")
        }
        bin_dir = os.path.join(self.venv, "bin")
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        env["VIRTUAL_ENV"] = self.venv
        roots = [
            tree if p in (".", "") else os.path.join(tree, p)
            for p in self.spec.get("pythonpath", [])
        ]
        env["PYTHONPATH"] = os.pathsep.join(roots + [self.plugin_dir])
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["REPRODUCE_OUTCOMES"] = out_file
        env.update(self.spec.get("env", {}))
        cmd = [os.path.join(bin_dir, "python")] + list(self.spec["test_cmd"])
        cmd += ["-p", "reproduce_outcomes", "-p", "no:cacheprovider"]
        try:
            run(cmd, cwd=tree, env=env, check=False, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        if not os.path.exists(out_file):
            return {}
        result = {}
        for rec in load_jsonl(out_file):
            # A failing teardown after a passing call makes the test fail.
            if result.get(rec["id"]) in (None, "passed"):
                result[rec["id"]] = rec["outcome"]
        return result


def check(instance, clean, patched):
    """Why `instance` does not reproduce (empty list: it does)."""
    problems = []
    for t in instance["FAIL_TO_PASS"]:
        if clean.get(t) != "passed":
            problems.append(f"F2P {t} on the clean tree: {clean.get(t, 'missing')}")
        if patched.get(t) == "passed":
            problems.append(f"F2P {t} passes with the patch")
    for t in instance["PASS_TO_PASS"]:
        if clean.get(t) != "passed":
            problems.append(f"P2P {t} on the clean tree: {clean.get(t, 'missing')}")
        if patched.get(t) != "passed":
            problems.append(f"P2P {t} with the patch: {patched.get(t, 'missing')}")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--sample", type=int, default=8, help="instances to check (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per test run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    run_dir = os.path.abspath(args.run_dir)
    instances = load_jsonl(os.path.join(run_dir, "instances.jsonl"))
    if args.sample and len(instances) > args.sample:
        instances = random.Random(args.seed).sample(instances, args.sample)
    results = []
    with tempfile.TemporaryDirectory(prefix="smith-reproduce-") as scratch:
        runner = Runner(run_dir, scratch)
        clean_by_commit = {}
        for n, inst in enumerate(instances):
            commit = inst["base_commit"]
            if commit not in clean_by_commit:
                tree = runner.clone(f"clean-{commit[:8]}", commit)
                clean_by_commit[commit] = runner.outcomes(tree, args.timeout) or {}
            clean = clean_by_commit[commit]
            tree = runner.clone(f"bug-{n}", commit)
            patch = os.path.join(scratch, f"bug-{n}.diff")
            with open(patch, "w", encoding="utf-8") as f:
                f.write(inst["patch"])
            applied = run(["git", "apply", patch], cwd=tree, check=False)
            if applied.returncode != 0:
                problems = [f"git apply failed: {applied.stderr.strip()}"]
            else:
                patched = runner.outcomes(tree, args.timeout)
                problems = (
                    ["the patched run timed out"]
                    if patched is None
                    else check(inst, clean, patched)
                )
            results.append({"instance_id": inst["instance_id"], "problems": problems})
            if not args.json:
                status = "ok" if not problems else "DOES NOT REPRODUCE"
                print(f"{inst['instance_id']}: {status}")
                for p in problems[:5]:
                    print(f"    {p}")
    good = sum(1 for r in results if not r["problems"])
    if args.json:
        print(json.dumps({"checked": len(results), "reproduced": good, "results": results}))
    else:
        print(f"{good} of {len(results)} instances reproduce")
    return 0 if good == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
