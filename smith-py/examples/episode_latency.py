"""The cost of one episode's reset + grade from Python, measured as
examples/rl_episodes.rs measures it in Rust (same task: the run's first
instance, graded with its gold fix in a fresh episode each time).

    smith run examples/demo-repo --out smith-out --max-candidates 20
    cargo run --example rl_episodes -- smith-out 50
    python smith-py/examples/episode_latency.py smith-out 50
"""

import sys
import time

import smith


def main() -> None:
    run_dir = sys.argv[1] if len(sys.argv) > 1 else "smith-out"
    episodes = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    task = smith.load_tasks(None, run_dir)[0]
    gold = task.gold_patch
    secs = []
    resolved = 0
    for _ in range(episodes):
        start = time.perf_counter()
        episode = task.episode()
        resolved += episode.grade(gold).resolved
        del episode
        secs.append(time.perf_counter() - start)
    secs.sort()
    n = len(task.fail_to_pass) + len(task.pass_to_pass)
    print(
        f"{episodes} episodes of reset+grade on {task.instance_id} ({n} tests): "
        f"median {secs[len(secs) // 2]:.3f} s, min {secs[0]:.3f} s, max {secs[-1]:.3f} s, "
        f"{resolved} resolved"
    )


if __name__ == "__main__":
    main()
