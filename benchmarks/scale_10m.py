"""Every stage at 10,000,000 rows on one machine: each command's wall time and peak memory.

The churn example's own generator (``examples/churn/generate.py OUT --rows N --seed 7``) makes
the November export (N rows) and the December one (1.1 N rows, drifted); then, in a fresh
project with the churn plan (examples/churn/mlplan.yaml), the commands of examples/churn/demo.sh
run as a user meets them, each a process of its own:

    data add customers                                  (the November export)
    data add customers data/customers_2026-12.csv ...   (the December export, version 2)
    data diff customers@1 customers@2
    data split customers --test 0.2 --valid 0.1 --stratify churned --group customer_id --seed 7
    train --baseline
    evaluate logistic-1
    score logistic-1 data/customers_2026-12.csv scored/customers_2026-12.parquet
    labels export customers@2 --n 600 --overlap 0.3 --seed 7

Each is timed from start to exit (interpreter start and imports included) and reports its own
CPU time (every thread's; steadier than wall time on a shared machine) and peak resident
memory (VmHWM from /proc, read by the command's process itself at its end, as
benchmarks/bench_register.py's ``--as-mlplan`` does: a child's ``ru_maxrss`` would count its
parent's pages as well). The table says whether every command stayed under the issue's budget
(24 GB, issue 19 item 5). Not a timed test: run it on a quiet machine.

    python benchmarks/scale_10m.py [--rows 10000000] [--data-dir DIR]
        [--json benchmarks/results/scale_10m.json] [--keep DIR]

With two sizes (``--rows 200000 --rows 1000000``) it also says, per command, how its time and
memory grew against the rows: a ratio well above the rows ratio is superlinear.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCRIPT = str(Path(__file__).resolve())
ROOT = Path(SCRIPT).parents[1]
CHURN = ROOT / "examples" / "churn"
BUDGET_MB = 24 * 1000  # 24 GB
DECEMBER = "data/customers_2026-12.csv"
STEPS: list[tuple[str, list[str]]] = [
    ("data add", ["data", "add", "customers"]),
    (
        "data add (v2)",
        [
            "data",
            "add",
            "customers",
            DECEMBER,
            "--source",
            "CRM export 2026-12 (nightly snapshot of the customers table)",
            "--collected",
            "2016-11-01:2026-11-30",
        ],
    ),
    ("data diff", ["data", "diff", "customers@1", "customers@2"]),
    (
        "data split",
        [
            "data",
            "split",
            "customers",
            "--test",
            "0.2",
            "--valid",
            "0.1",
            "--stratify",
            "churned",
            "--group",
            "customer_id",
            "--seed",
            "7",
        ],
    ),
    ("train --baseline", ["train", "--baseline"]),
    ("evaluate", ["evaluate", "logistic-1"]),
    # A trial: the plan's gates may fail on generated data, and no one has signed off.
    (
        "score",
        [
            "score",
            "logistic-1",
            DECEMBER,
            "scored/customers_2026-12.parquet",
            "--allow-failed-gates",
        ],
    ),
    ("labels export", ["labels", "export", "customers@2", "--n", "600", "--overlap", "0.3"]),
]


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _as_mlplan(peak_file: str, args: list[str]) -> None:
    """``python -m mlplan ARGS`` in this process, then its peak memory and CPU time written to
    a file (benchmarks/bench_register.py's wrapper)."""
    import resource
    import runpy

    sys.argv = ["mlplan", *args]
    try:
        runpy.run_module("mlplan", run_name="__main__", alter_sys=True)
    finally:
        usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
        report = {"peak_mb": _peak_mb(), "cpu_seconds": usage.ru_utime + usage.ru_stime}
        Path(peak_file).write_text(json.dumps(report))


def _data(rows: int, folder: Path) -> Path:
    """Both churn exports of ``rows`` rows from the example's generator, made once per folder."""
    out = folder / f"churn-{rows}"
    complete = out / "complete"
    if not complete.exists():  # an interrupted run leaves no mark: made again
        print(f"generating {rows:,} rows with {CHURN / 'generate.py'} ...", flush=True)
        generate = [sys.executable, str(CHURN / "generate.py"), str(out), "--rows", str(rows)]
        subprocess.run(
            [*generate, "--seed", "7"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        complete.touch()
    return out


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("MLPLAN_STORE_URL", "MLPLAN_ARTIFACTS_DIR", "MLPLAN_PROJECT"):
        env.pop(name, None)  # the project's own store, as a new user has it
    env.setdefault("MLPLAN_USER", "bench")
    env.setdefault("COLUMNS", "120")
    return env


def _project(data: Path, work: Path) -> Path:
    project = Path(tempfile.mkdtemp(prefix="project-", dir=work))
    shutil.copy(CHURN / "mlplan.yaml", project / "mlplan.yaml")
    (project / "data").mkdir()
    for name in ("customers.csv", "customers_2026-12.csv"):
        try:  # the plan's paths; a link costs no copy
            os.link(data / name, project / "data" / name)
        except OSError:
            shutil.copy(data / name, project / "data" / name)
    return project


def run(rows: int, data_dir: Path, work: Path, *, keep: Path | None) -> dict[str, Any]:
    """Every step in a fresh project on ``rows`` rows; the first failure stops the run."""
    data = _data(rows, data_dir)
    project = _project(data, work)
    env = _env()
    steps: list[dict[str, Any]] = []
    try:
        for label, args in STEPS:
            peak_file = project / ".peak.json"
            peak_file.unlink(missing_ok=True)
            command = [sys.executable, SCRIPT, "--as-mlplan", str(peak_file), "--", *args]
            start = time.perf_counter()
            done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            measured = json.loads(peak_file.read_text()) if peak_file.exists() else {}
            peak = measured.get("peak_mb")
            step = {
                "command": label,
                "args": args,
                "seconds": seconds,
                "cpu_seconds": measured.get("cpu_seconds"),
                "peak_mb": peak,
                "exit": done.returncode,
            }
            steps.append(step)
            mb = f"{peak:,.0f} MB" if peak is not None else "? MB"
            cpu = f"{step['cpu_seconds']:.1f} s CPU" if step["cpu_seconds"] is not None else ""
            print(f"  {rows:,} rows  {label:<18}{seconds:>8.1f} s {cpu:>12} {mb:>10}", flush=True)
            if done.returncode:
                step["error"] = (done.stderr or done.stdout)[-2000:]
                print(f"    FAILED (exit {done.returncode}):\n{step['error']}", flush=True)
                break
    finally:
        if keep is not None:
            target = keep / f"project-{rows}"
            shutil.rmtree(target, ignore_errors=True)
            shutil.move(str(project), target)
        else:
            shutil.rmtree(project, ignore_errors=True)
    return {
        "rows": rows,
        "csv_mb": {
            name: (data / name).stat().st_size / 2**20
            for name in ("customers.csv", "customers_2026-12.csv")
        },
        "steps": steps,
        "completed": len(steps) == len(STEPS) and all(s["exit"] == 0 for s in steps),
        "under_budget": all(s["peak_mb"] is not None and s["peak_mb"] < BUDGET_MB for s in steps),
    }


def growth(small: dict[str, Any], large: dict[str, Any]) -> list[dict[str, Any]]:
    """Per command, how time and peak memory grew against the rows."""
    rows_ratio = large["rows"] / small["rows"]
    before = {s["command"]: s for s in small["steps"]}
    out = []
    for step in large["steps"]:
        s = before.get(step["command"])
        if s is None or s["exit"] or step["exit"]:
            continue
        out.append(
            {
                "command": step["command"],
                "rows_ratio": rows_ratio,
                "time_ratio": step["seconds"] / s["seconds"],
                "cpu_ratio": step["cpu_seconds"] / s["cpu_seconds"]
                if step.get("cpu_seconds") and s.get("cpu_seconds")
                else None,
                "memory_ratio": (step["peak_mb"] / s["peak_mb"])
                if step["peak_mb"] and s["peak_mb"]
                else None,
            }
        )
    return out


def _print(sizes: list[dict[str, Any]]) -> None:
    labels = [label for label, _ in STEPS]
    print(f"\nscale_10m: the churn example, {os.cpu_count()} CPUs")
    print(f"{'command':<20}" + "".join(f"{size['rows']:>31,} rows" for size in sizes))
    print(f"{'':<20}" + "".join(f"{'seconds':>12}{'CPU s':>12}{'peak MB':>12}" for _ in sizes))
    for label in labels:
        cells = ""
        for size in sizes:
            step = next((s for s in size["steps"] if s["command"] == label), None)
            if step is None:
                cells += f"{'—':>12}{'—':>12}{'—':>12}"
                continue
            failed = "!" if step["exit"] else " "
            cpu = f"{step['cpu_seconds']:.1f}" if step.get("cpu_seconds") is not None else "?"
            peak = f"{step['peak_mb']:,.0f}" if step["peak_mb"] is not None else "?"
            cells += f"{step['seconds']:>11.1f}{failed}{cpu:>12}{peak:>12}"
        print(f"{label:<20}{cells}")
    for size in sizes:
        peak = max((s["peak_mb"] or 0 for s in size["steps"]), default=0)
        verdict = "every command under 24 GB" if size["under_budget"] else "OVER 24 GB"
        done = "all completed" if size["completed"] else "NOT all completed"
        print(f"{size['rows']:,} rows: {done}; {verdict} (largest peak {peak:,.0f} MB)")


def main() -> None:
    if len(sys.argv) > 3 and sys.argv[1] == "--as-mlplan" and sys.argv[3] == "--":
        _as_mlplan(sys.argv[2], sys.argv[4:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        type=int,
        action="append",
        help="rows of the November export (default 10,000,000); twice to see how each "
        "command grows",
    )
    parser.add_argument("--data-dir", type=Path, help="keep the generated CSVs here and reuse them")
    parser.add_argument("--keep", type=Path, help="keep each project here (project-ROWS)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/scale_10m.json"))
    args = parser.parse_args()
    sizes = sorted(set(args.rows or [10_000_000]))
    if sizes[0] < 1000:
        parser.error("--rows must be at least 1000")
    with tempfile.TemporaryDirectory(prefix="scale_10m-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        data_dir.mkdir(parents=True, exist_ok=True)
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
        results = [run(rows, data_dir, Path(tmp), keep=args.keep) for rows in sizes]
    _print(results)
    grew = [growth(results[0], large) for large in results[1:]]
    for g in grew:
        for row in g:
            memory = f"{row['memory_ratio']:.2f}x" if row["memory_ratio"] else "?"
            cpu = f"{row['cpu_ratio']:.2f}x" if row["cpu_ratio"] else "?"
            print(
                f"  {row['command']:<18} time {row['time_ratio']:.2f}x, CPU {cpu}, peak memory "
                f"{memory} for {row['rows_ratio']:.1f}x the rows"
            )
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    report = {
        "benchmark": "scale_10m",
        "commit": commit or None,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "budget_mb": BUDGET_MB,
        "sizes": results,
        "growth": grew,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    if not all(size["completed"] and size["under_budget"] for size in results):
        raise SystemExit("a command failed or went over 24 GB (see above)")


if __name__ == "__main__":
    main()
