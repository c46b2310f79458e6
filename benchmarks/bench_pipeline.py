"""A fully cached rerun of the churn demo's pipeline against its steps run fresh (#17: the
cached rerun under 2 s).

The churn example's data (``examples/churn/generate.py``, seeded) and plan go into a fresh
project under ``--out``. ``mlplan run --json`` runs every step fresh (data, split, train of
logistic and gbt, compare, evaluate, gates, deploy): the steps' own seconds are summed, and
the command's wall time taken. When the plan's gates refuse the candidate (they do on this
data: the demo's ML lead accepts its gaps), the deploy role approves the evaluated version,
as the demo does, and ``mlplan run`` resumes at the gates; those two steps join the sum.

Then ``mlplan run --json`` again, ``--repeat`` times: every step must be reused (``cached``,
the same outputs), and each rerun's wall time — a new ``mlplan`` process, as a scheduler's
would be, its imports included — is measured. The peer is the pipeline itself run fresh: the
ratio is the fresh sum to the cached rerun's median.

    python benchmarks/bench_pipeline.py [--rows 12000] [--repeat 5] [--out build/bench-pipeline]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GOAL_S = 2.0


def _mlplan(project: Path, *args: str) -> tuple[dict[str, Any], float, int]:
    """``mlplan ARGS --json`` in ``project``: its answer, wall seconds and exit code."""
    env = os.environ | {"MLPLAN_USER": "bench", "COLUMNS": "200"}
    env.pop("MLPLAN_STORE_URL", None)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mlplan", *args, "--json", "--project", str(project)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1) or not done.stdout.strip():
        sys.exit(f"mlplan {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout), wall, done.returncode


def _project(out: Path, rows: int) -> Path:
    project = out / "churn"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    subprocess.run(
        [sys.executable, str(REPO / "examples/churn/generate.py"), str(project / "data"),
         "--rows", str(rows)],
        check=True, capture_output=True,
    )  # fmt: skip
    shutil.copy(REPO / "examples/churn/mlplan.yaml", project / "mlplan.yaml")
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=12_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "build" / "bench-pipeline")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    project = _project(args.out, args.rows)

    fresh, fresh_wall, code = _mlplan(project, "run")
    steps = {s["step"]: s for s in fresh["steps"] if s["state"] == "ran"}
    walls = [fresh_wall]
    if code == 1:  # the gates refused: approved, as the demo's ML lead does, then resumed
        (gates,) = [s for s in fresh["steps"] if s["state"] == "failed"]
        assert gates["step"] == "gates", gates
        model = next(s for s in fresh["steps"] if s["step"] == "evaluate")["outputs"]["model"]
        _mlplan(project, "approve", "deploy", "--role", "ml_lead", "--by", "bench",
                "--subject", model, "--note", "benchmark")  # fmt: skip
        resumed, wall, code = _mlplan(project, "run")
        assert code == 0, resumed
        steps |= {s["step"]: s for s in resumed["steps"] if s["state"] == "ran"}
        walls.append(wall)
    assert sorted(steps) == sorted(s["step"] for s in fresh["steps"]), sorted(steps)
    fresh_sum = sum(s["seconds"] for s in steps.values())

    reruns: list[float] = []
    for _ in range(args.repeat):
        again, wall, code = _mlplan(project, "run")
        assert code == 0 and {s["state"] for s in again["steps"]} == {"cached"}, again
        for step in again["steps"]:  # the same outputs as the steps that ran
            assert step["outputs"] == steps[step["step"]]["outputs"], step["step"]
        reruns.append(wall)
    cached = statistics.median(reruns)

    result = {
        "benchmark": "pipeline",
        "rows": args.rows,
        "peer": "the same pipeline's steps run fresh",
        "goal_s": GOAL_S,
        "fresh": {
            "steps_s": {name: round(s["seconds"], 3) for name, s in steps.items()},
            "sum_s": round(fresh_sum, 3),
            "wall_s": round(sum(walls), 3),
        },
        "cached": {
            "wall_s": [round(w, 3) for w in reruns],
            "median_s": round(cached, 3),
            "in_process_s": round(again["seconds"], 3),
        },
        "ratio": round(fresh_sum / cached, 1),
        "met": cached < GOAL_S,
    }
    print(f"churn pipeline, {args.rows:,} rows (steps fresh vs a cached rerun, new process each)")
    print(f"{'step':<10}{'fresh s':>10}")
    for name, seconds in result["fresh"]["steps_s"].items():
        print(f"{name:<10}{seconds:>10.2f}")
    print(f"{'sum':<10}{fresh_sum:>10.2f}   (wall of the mlplan run commands: {sum(walls):.2f} s)")
    print(
        f"cached rerun: median {cached:.2f} s wall ({result['cached']['in_process_s']:.2f} s "
        f"in the runner), {result['ratio']}x faster than fresh; goal < {GOAL_S:g} s: "
        f"{'met' if result['met'] else 'NOT met'}"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
