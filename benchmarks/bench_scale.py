"""Profile and batch-score 10,000,000 rows, local engine vs Ray Data: rows/s and peak memory.

The same seeded Parquet file (customers: an id, numbers with missing values, categories, the
target), written once to ``build/bench_scale/`` a million rows at a time and kept there, is
profiled as ``mlplan data add NAME FILE --no-snapshot [--engine ray]`` profiles it (hash,
profile, store) and scored as ``mlplan score MODEL FILE OUT [--engine ray]`` scores it, with a
logistic model trained once on 20,000 rows of the same generator (the project is kept too).
Each engine runs in a process of its own, profile then score; the results must agree: the
stored profiles equal (mean and std to 1e-9 relative; a sketched column's figures are the
sketch's and are not compared) and the two output files equal row for row (probabilities
to 1e-6), read back a row group at a time.

Memory is each process's peak resident set (``VmHWM`` in ``/proc/PID/status``), reset
between the two steps (writing 5 to ``/proc/PID/clear_refs``). For Ray, the driver's, and
the workers' — every process under the driver whose title starts ``ray::`` (Ray names its
workers so), read every 0.2 s and once at the end: the largest worker's peak and the sum of
the workers' peaks (an upper bound on what they held at once). The raylet, GCS and other
daemons are not counted. Ray's object store is shared memory, and its pages a process
touched count in that process's resident set however long ago the object was freed; so
each process's anonymous memory (its heap, ``Anonymous`` in ``/proc/PID/smaps_rollup``) is
sampled every 0.2 s too, and its peak given beside (``anon``): what the engine itself holds.
Memory is bounded by the chunk, not the data, when a peak hardly grows with the rows: with
two sizes (the default: 2,000,000 and 10,000,000) the table gives each peak's growth beside
the rows'.

    python benchmarks/bench_scale.py [--rows 2000000 --rows 10000000] [--engines local,ray]
        [--format parquet|csv] [--cache build/bench_scale]
        [--json benchmarks/results/bench_scale.json]

``--format csv`` writes the same rows as CSV beside the Parquet file and reads that instead
(a CSV file is streamed, not read by row groups: its memory is bounded another way).

Not a timed test: run it on a quiet machine (its smoke test runs it at a few thousand rows).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[1]
DATA_VERSION = 1  # bump when the generator changes: cached files are made again
CHUNK = 1_000_000
TRAIN_ROWS = 20_000
MODEL = "logistic-1"


# -- data and project ------------------------------------------------------------------------


def _customers(rows: int, *, seed: int, start: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, rows)
    tenure = rng.integers(0, 120, rows)
    charges = rng.normal(60, 15, rows).round(2)
    region = rng.choice(np.array(["north", "south", "east", "west"], dtype=object), rows)
    plan = rng.choice(np.array(["basic", "plus", "pro"], dtype=object), rows, p=[0.6, 0.3, 0.1])
    logit = -1.5 + 0.02 * (charges - 60) - 0.015 * tenure + 0.6 * (plan == "basic")
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pa.table(
        {
            "customer_id": np.arange(start + 1, start + rows + 1),
            "gender": pa.array(
                rng.choice(np.array(["female", "male"], dtype=object), rows),
                pa.string(),
                mask=rng.random(rows) < 0.05,
            ),
            "age": age,
            "tenure": tenure,
            "region": pa.array(region, pa.string()),
            "plan": pa.array(plan, pa.string()),
            "charges": pa.array(charges, mask=rng.random(rows) < 0.1),
            "churned": churned,
        }
    )


def make_data(rows: int, cache: Path) -> Path:
    """The seeded file of ``rows`` rows, written a chunk at a time (kept: made once)."""
    path = cache / f"customers-v{DATA_VERSION}-{rows}.parquet"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    with pq.ParquetWriter(temp, _customers(0, seed=0).schema) as writer:
        for index, start in enumerate(range(0, rows, CHUNK)):
            part = _customers(min(CHUNK, rows - start), seed=7_000 + index, start=start)
            writer.write_table(part, row_group_size=128 * 1024)
    temp.replace(path)
    print(f"bench_scale: wrote {rows:,} rows to {path}", file=sys.stderr)
    return path


def make_csv(parquet: Path) -> Path:
    """The same rows as a CSV file beside it (kept: made once)."""
    import pyarrow.csv as pcsv

    path = parquet.with_suffix(".csv")
    if path.exists():
        return path
    temp = path.with_suffix(".tmp")
    source = pq.ParquetFile(parquet)
    with pcsv.CSVWriter(temp, source.schema_arrow) as writer:
        for batch in source.iter_batches(batch_size=CHUNK):
            writer.write_batch(batch)
    temp.replace(path)
    print(f"bench_scale: wrote {path}", file=sys.stderr)
    return path


def make_project(cache: Path) -> Path:
    """A project whose model ``logistic-1`` was trained on 20,000 rows (kept: made once)."""
    root = cache / f"project-v{DATA_VERSION}"
    if (root / ".ready").exists():
        return root
    from mlplan.data import register_dataset, split_dataset
    from mlplan.modeling import train_model
    from mlplan.plan import render_plan
    from mlplan.workspace import Workspace

    (root / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(_customers(TRAIN_ROWS, seed=1), root / "data" / "customers.parquet")
    plan = render_plan("scale", task="binary", target="churned")
    plan = plan.replace("path: data/main.csv", "path: data/customers.parquet")
    plan = plan.replace("  main:\n", "  customers:\n").replace(
        "    id_column: null", "    id_column: customer_id"
    )
    (root / "mlplan.yaml").write_text(plan)
    ws = Workspace(root)
    register_dataset(ws, "customers")
    split_dataset(ws, "customers", stratify="churned", seed=7)
    train_model(ws, family="logistic")
    ws.close()
    (root / ".ready").write_text("")
    print(f"bench_scale: built the project in {root}", file=sys.stderr)
    return root


# -- memory ------------------------------------------------------------------------------------


def _status_mb(pid: int | str, field: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None  # gone
    return None


def _reset_peak(pid: int | str) -> None:
    """Start the process's VmHWM again from its current resident set."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def _children() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        found.setdefault(parent, []).append(int(entry.name))
    return found


def ray_workers() -> list[int]:
    """The Ray workers under this process (their titles start ``ray::``)."""
    children = _children()
    todo, workers = list(children.get(os.getpid(), [])), []
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"ray::"):
            workers.append(pid)
    return workers


def _anonymous_mb(pid: int | str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Anonymous:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class WorkerPeaks:
    """The driver's peak anonymous memory and, with Ray, each worker's peak resident set and
    anonymous memory, read every 0.2 s (a worker that exits keeps the last peaks read)."""

    def __init__(self, ray: bool) -> None:
        self.ray = ray
        self.peaks: dict[int, float] = {}
        self.anonymous: dict[int, float] = {}
        self.driver_anonymous = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> WorkerPeaks:
        for pid in ray_workers() if self.ray else []:
            _reset_peak(pid)
        self._thread.start()
        return self

    def _read(self) -> None:
        self.driver_anonymous = max(self.driver_anonymous, _anonymous_mb("self") or 0.0)
        for pid in ray_workers() if self.ray else []:
            peak = _status_mb(pid, "VmHWM")
            if peak is not None:
                self.peaks[pid] = max(self.peaks.get(pid, 0.0), peak)
            anonymous = _anonymous_mb(pid)
            if anonymous is not None:
                self.anonymous[pid] = max(self.anonymous.get(pid, 0.0), anonymous)

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            self._read()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def summary(self) -> dict[str, float]:
        values = list(self.peaks.values()) or [0.0]
        anonymous = list(self.anonymous.values()) or [0.0]
        return {
            "workers": len(self.peaks),
            "max_mb": max(values),
            "sum_mb": sum(values),
            "max_anon_mb": max(anonymous),
            "sum_anon_mb": sum(anonymous),
        }


# -- one engine, in a process of its own ---------------------------------------------------------


def run_engine(engine: str, data: Path, project: Path, out: Path) -> dict[str, Any]:
    """Profile then score ``data`` on ``engine``: times, rows/s and peaks."""
    import tempfile

    from mlplan.data import register_dataset
    from mlplan.plan import render_plan
    from mlplan.serving import score_file
    from mlplan.workspace import Workspace

    if engine == "ray":
        from mlplan.data import ray_session

        ray_session()  # started before the clock: a cluster's start is not the work
    results: dict[str, Any] = {"engine": engine}
    with tempfile.TemporaryDirectory() as tmp:  # a fresh store: the file is new to it
        (Path(tmp) / "mlplan.yaml").write_text(
            render_plan("scale", task="binary", target="churned")
        )
        ws = Workspace(Path(tmp))
        results["profile"], profile = _measure(
            engine,
            lambda: register_dataset(ws, "big", data, snapshot=False, engine=engine),  # type: ignore[arg-type]
        )
        results["profile_json"] = profile.version.profile
        ws.close()
    served = Workspace(project)
    results["score"], report = _measure(
        engine,
        lambda: score_file(
            served,
            MODEL,
            data,
            out,
            engine=engine,  # type: ignore[arg-type]
            allow_failed_gates=True,
        ),
    )
    results["score"]["refused"] = report.refused
    served.close()
    rows = report.rows
    for step in ("profile", "score"):
        results[step]["rows"] = rows
        results[step]["rows_per_s"] = rows / results[step]["seconds"]
    return results


def _measure(engine: str, job: Any) -> tuple[dict[str, Any], Any]:
    _reset_peak("self")
    base = _status_mb("self", "VmRSS") or 0.0
    with WorkerPeaks(ray=engine == "ray") as workers:
        start = time.perf_counter()
        result = job()
        seconds = time.perf_counter() - start
    measured: dict[str, Any] = {
        "seconds": seconds,
        "driver_peak_mb": _status_mb("self", "VmHWM"),
        "driver_peak_over_start_mb": (_status_mb("self", "VmHWM") or 0.0) - base,
        "driver_peak_anon_mb": workers.driver_anonymous,
    }
    if engine == "ray":
        measured["ray_workers"] = workers.summary()
    return measured, result


# -- agreement -------------------------------------------------------------------------------


def profiles_agree(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Where two stored profiles differ beyond float rounding (sketched figures skipped)."""
    problems = []
    if a["rows"] != b["rows"]:
        problems.append(f"rows {a['rows']} != {b['rows']}")
    for name, column in a["columns"].items():
        other = b["columns"].get(name, {})
        sketched = set(column.get("sketched", {}))
        for key, value in column.items():
            if key in sketched or key == "sketched":
                continue
            theirs = other.get(key)
            if key in {"mean", "std"} and value is not None and theirs is not None:
                if abs(value - theirs) > 1e-9 * max(1.0, abs(value)):
                    problems.append(f"{name}.{key}: {value} != {theirs}")
            elif value != theirs:
                problems.append(f"{name}.{key}: {value!r} != {theirs!r}")
    return problems


def outputs_agree(a: Path, b: Path) -> list[str]:
    """Where two scored files differ, read a row group at a time (memory bounded)."""
    left, right = pq.ParquetFile(a), pq.ParquetFile(b)
    if left.metadata.num_rows != right.metadata.num_rows:
        return [f"rows {left.metadata.num_rows} != {right.metadata.num_rows}"]
    problems: list[str] = []
    ours = left.iter_batches(batch_size=256 * 1024)
    theirs = right.iter_batches(batch_size=256 * 1024)
    for x, y in zip(ours, theirs, strict=True):
        if x.schema.names != y.schema.names:
            return [f"columns {x.schema.names} != {y.schema.names}"]
        for name in x.schema.names:
            p, q = x.column(name), y.column(name)
            if name.startswith("p_"):
                close = np.allclose(
                    p.to_numpy(zero_copy_only=False), q.to_numpy(zero_copy_only=False), atol=1e-6
                )
                if not close:
                    problems.append(f"{name} differs")
            elif not p.equals(q):
                problems.append(f"{name} differs")
        if problems:
            return sorted(set(problems))
    return problems


# -- the table -------------------------------------------------------------------------------


def _pair(peak: float | None, anonymous: float | None) -> str:
    return "" if peak is None else f"{peak:,.0f} ({anonymous or 0:,.0f})"


def report_table(runs: dict[int, dict[str, dict[str, Any]]], engines: list[str]) -> list[str]:
    lines = [
        "peak MB: resident set (anonymous memory); a worker's: the largest worker's, and the "
        "sum of the workers' peaks",
        f"{'rows':>12} {'step':<8} {'engine':<6} {'seconds':>8} {'rows/s':>12} "
        f"{'driver':>12} {'worker max':>12} {'workers sum':>12}",
    ]
    for rows, by_engine in runs.items():
        for step in ("profile", "score"):
            for engine in engines:
                m = by_engine[engine][step]
                workers = m.get("ray_workers", {})
                driver = _pair(m["driver_peak_mb"], m["driver_peak_anon_mb"])
                largest = _pair(workers.get("max_mb"), workers.get("max_anon_mb"))
                total = _pair(workers.get("sum_mb"), workers.get("sum_anon_mb"))
                lines.append(
                    f"{rows:>12,} {step:<8} {engine:<6} {m['seconds']:>8.2f} "
                    f"{m['rows_per_s']:>12,.0f} {driver:>12} {largest:>12} {total:>12}"
                )
    if "local" in engines and "ray" in engines:
        lines.append("")
        lines.append("ray / local, rows/s:")
        for rows, by_engine in runs.items():
            speed = {
                step: by_engine["ray"][step]["rows_per_s"] / by_engine["local"][step]["rows_per_s"]
                for step in ("profile", "score")
            }
            ratios = ", ".join(f"{step} {ratio:.2f}x" for step, ratio in speed.items())
            lines.append(f"  {rows:,} rows: {ratios}")
    sizes = sorted(runs)
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        lines.append("")
        lines.append(f"peak memory growth from {small:,} to {large:,} rows (x{large / small:.1f}):")
        for engine in engines:
            for step in ("profile", "score"):
                a, b = runs[small][engine][step], runs[large][engine][step]
                growth = (
                    f"driver x{b['driver_peak_mb'] / a['driver_peak_mb']:.2f} "
                    f"(anon x{b['driver_peak_anon_mb'] / max(a['driver_peak_anon_mb'], 1.0):.2f})"
                )
                if "ray_workers" in a:
                    x, y = a["ray_workers"], b["ray_workers"]
                    growth += (
                        f", largest worker x{y['max_mb'] / max(x['max_mb'], 1.0):.2f} "
                        f"(anon x{y['max_anon_mb'] / max(x['max_anon_mb'], 1.0):.2f})"
                    )
                lines.append(f"  {engine:<6} {step:<8} {growth}")
    return lines


def child(engine: str, data: Path, project: Path, out: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--child", engine, "--data", str(data),
         "--project", str(project), "--out", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"bench_scale: the {engine} run failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, action="append")
    parser.add_argument("--engines", default="local,ray")
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    parser.add_argument("--cache", type=Path, default=ROOT / "build" / "bench_scale")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/bench_scale.json")
    parser.add_argument("--child")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--project", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_engine(args.child, args.data, args.project, args.out)))
        return

    sizes = sorted(set(args.rows or [2_000_000, 10_000_000]))
    engines = [e for e in args.engines.split(",") if e]
    project = make_project(args.cache)
    runs: dict[int, dict[str, dict[str, Any]]] = {}
    problems: list[str] = []
    for rows in sizes:
        data = make_data(rows, args.cache)
        if args.format == "csv":
            data = make_csv(data)
        outs = {engine: args.cache / f"scored-{engine}-{rows}.parquet" for engine in engines}
        runs[rows] = {engine: child(engine, data, project, outs[engine]) for engine in engines}
        if len(engines) == 2:
            a, b = (runs[rows][e] for e in engines)
            problems += [
                f"{rows:,} profile: {p}"
                for p in profiles_agree(a["profile_json"], b["profile_json"])
            ]
            problems += [f"{rows:,} score: {p}" for p in outputs_agree(*outs.values())]
        for out in outs.values():
            out.unlink(missing_ok=True)  # hundreds of MB at full scale
        for result in runs[rows].values():
            result.pop("profile_json")
    agree = not problems
    print(
        f"bench_scale: {', '.join(f'{r:,}' for r in sizes)} rows x 8 columns ({args.format}), "
        f"engines {', '.join(engines)}; results "
        + ("agree" if agree else "DISAGREE: " + "; ".join(problems[:5]))
    )
    for line in report_table(runs, engines):
        print(line)
    report = {
        "sizes": sizes,
        "engines": engines,
        "format": args.format,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "agree": agree,
        "problems": problems,
        "runs": {str(rows): by_engine for rows, by_engine in runs.items()},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    if not agree:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
