"""Registering the churn CSV: ``mlplan data add`` vs pandas and DuckDB, same file, same run.

The churn example's own generator (``examples/churn/generate.py OUT --rows N --seed 7``) makes
the CSV (names, e-mails, phones, missing values; ``customers.csv``), once per size, kept in a
temporary folder for the run (or in ``--data-dir``, reused when it is there). Three variants,
each a process of its own, timed from start to exit as a user meets them (interpreter start,
imports, work; the table also shows the time to import the tool, mlplan's being its CLI's,
which loads the stages inside the command) with the process's peak resident memory (VmHWM
from /proc, read by the process itself at its end; a child's ``ru_maxrss`` would count its
parent's pages as well):

- mlplan: ``mlplan data add customers data/customers.csv --json`` in a fresh project with the
  churn plan (examples/churn/mlplan.yaml) and an empty store, as examples/churn/demo.sh runs it:
  hashing, the snapshot, the profile and the store. Its profile is read back with
  ``mlplan data show``.
- pandas: ``read_csv`` + ``describe(include="all")`` + ``isna().sum()`` + ``nunique()``.
- DuckDB: ``SUMMARIZE SELECT * FROM read_csv('PATH')``.

The results must agree: the same rows; per column the same missing counts (DuckDB's
``null_percentage`` rounded alike); distinct counts equal to pandas' where mlplan says its count
is exact, within the bound it states where it says the count is sketched (the column's
``sketched.distinct.relative_error``; without it the count must be exact); for numeric
columns the same min and max and means within 1e-9 relative (pandas and DuckDB). PII columns
are redacted in mlplan's profile: only their counts are compared.

Goals (issue 19): ``data add`` at least 2x faster than pandas and within 2x DuckDB, its peak
memory below pandas'; with two sizes, the larger run's time at most 1.1x the rows ratio times
the smaller's (10,000,000 rows: at most 5.5x the 2,000,000-row run).

    python benchmarks/bench_register.py [--rows 2000000] [--rows 10000000] [--repeat N]
        [--data-dir DIR] [--json benchmarks/results/bench_register.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCRIPT = str(Path(__file__).resolve())
ROOT = Path(SCRIPT).parents[1]
CHURN = ROOT / "examples" / "churn"
VARIANTS = ("mlplan", "pandas", "duckdb")
LABELS = {
    "mlplan": "mlplan data add",
    "pandas": "pandas read_csv + describe + isna + nunique",
    "duckdb": "DuckDB SUMMARIZE read_csv",
}
RELATIVE = 1e-9  # means
SCALING_SLACK = 1.1  # 10M rows may take 5.5x the 2M run: 1.1x the rows ratio


def _proc_status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ── Children ─────────────────────────────────────────────────────────────────────────────


def _as_mlplan(peak_file: str, args: list[str]) -> None:
    """``python -m mlplan ARGS`` in this process, then its peak memory and the time its imports
    took written to a file."""
    import runpy

    start = time.perf_counter()
    import mlplan.cli  # what ``python -m mlplan`` imports first; the stages load lazily

    imported = time.perf_counter() - start
    sys.argv = ["mlplan", *args]
    try:
        runpy.run_module("mlplan", run_name="__main__", alter_sys=True)
    finally:
        report = {
            "peak_mb": _proc_status_mb("VmHWM"),
            "import_seconds": imported,
            "version": mlplan.__version__,
        }
        Path(peak_file).write_text(json.dumps(report))


def _peer(variant: str, path: str) -> dict[str, Any]:
    """Runs in a child process: one peer on the CSV, its times, peak memory and summary."""
    start = time.perf_counter()
    if variant == "pandas":
        import pandas as pd

        imported = time.perf_counter()
        df = pd.read_csv(path)
        result = (df.describe(include="all"), df.isna().sum(), df.nunique())
        done = time.perf_counter()
        peak = _proc_status_mb("VmHWM")
        summary = _pandas_summary(df, *result)
        version = pd.__version__
    else:
        import duckdb

        imported = time.perf_counter()
        quoted = path.replace("'", "''")
        con = duckdb.connect()
        relation = con.sql(f"SUMMARIZE SELECT * FROM read_csv('{quoted}')")
        names = [d[0] for d in relation.description]
        table = relation.fetchall()
        done = time.perf_counter()
        peak = _proc_status_mb("VmHWM")
        summary = _duckdb_summary([dict(zip(names, row, strict=True)) for row in table])
        version = duckdb.__version__
    return {
        "import_seconds": imported - start,
        "work_seconds": done - imported,
        "peak_mb": peak,
        "version": version,
        "summary": summary,
    }


def _pandas_summary(df: Any, describe: Any, missing: Any, nunique: Any) -> dict[str, Any]:
    import pandas as pd

    columns: dict[str, Any] = {}
    for name in df.columns:
        d = describe[name]
        numeric = bool(pd.api.types.is_numeric_dtype(df[name]))
        columns[name] = {
            "count": int(d["count"]),
            "missing": int(missing[name]),
            "distinct": int(nunique[name]),
            "numeric": numeric,
            **({k: float(d[k]) for k in ("mean", "min", "max")} if numeric else {}),
        }
    return {"rows": len(df), "columns": columns}


def _duckdb_summary(table: list[dict[str, Any]]) -> dict[str, Any]:
    numeric = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE")
    columns: dict[str, Any] = {}
    for row in table:
        is_numeric = row["column_type"] in numeric or row["column_type"].startswith("DECIMAL")
        columns[row["column_name"]] = {
            "type": row["column_type"],
            "count": int(row["count"]),
            "null_percentage": float(row["null_percentage"]),
            "approx_unique": int(row["approx_unique"]),
            "numeric": is_numeric,
            **(
                {
                    "mean": float(row["avg"]),
                    "min": float(row["min"]),
                    "max": float(row["max"]),
                }
                if is_numeric and row["min"] is not None
                else {}
            ),
        }
    rows = max((c["count"] for c in columns.values()), default=0)
    return {"rows": rows, "columns": columns}


# ── The parent ───────────────────────────────────────────────────────────────────────────


def _csv(rows: int, folder: Path) -> Path:
    """The churn CSV of ``rows`` rows from the example's generator, made once per folder."""
    out = folder / f"churn-{rows}"
    path, complete = out / "customers.csv", out / "complete"
    if not complete.exists():  # an interrupted run leaves no mark: made again
        print(f"generating {rows:,} rows with {CHURN / 'generate.py'} ...", flush=True)
        generate = [sys.executable, str(CHURN / "generate.py"), str(out), "--rows", str(rows)]
        subprocess.run(
            [*generate, "--seed", "7"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (out / "customers_2026-12.csv").unlink(missing_ok=True)  # only November is read
        complete.touch()
    return path


def _mlplan_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("MLPLAN_STORE_URL", "MLPLAN_ARTIFACTS_DIR"):
        env.pop(name, None)  # the project's own store, as a new user has it
    env.setdefault("MLPLAN_USER", "bench")
    return env


def _run(command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(
            f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
        )
    return done.stdout


def run_mlplan(csv: Path, work: Path, *, profile: bool) -> dict[str, Any]:
    """``mlplan data add`` in a fresh churn project; its profile read back when asked."""
    project = Path(tempfile.mkdtemp(prefix="project-", dir=work))
    try:
        shutil.copy(CHURN / "mlplan.yaml", project / "mlplan.yaml")
        (project / "data").mkdir()
        try:  # the plan's path, as the demo registers it; a link costs no copy
            os.link(csv, project / "data" / "customers.csv")
            target = "data/customers.csv"
        except OSError:
            target = str(csv)
        peak_file = project / "peak"
        env = _mlplan_env()
        # The store made beforehand, as a project has it after its first command: the time is
        # registering's, not the store's migrations'.
        _run(
            [sys.executable, "-c", "from mlplan.store import open_store; open_store('.')"],
            project,
            env,
        )
        add = [sys.executable, SCRIPT, "--as-mlplan", str(peak_file), "--"]
        add += ["data", "add", "customers", target, "--json"]
        start = time.perf_counter()
        out = _run(add, cwd=project, env=env)
        seconds = time.perf_counter() - start
        added = json.loads(out)
        if not added.get("created"):
            raise SystemExit(f"mlplan data add registered no new version: {out[:400]}")
        result: dict[str, Any] = {"seconds": seconds, "rows": added["rows"]}
        result |= json.loads(peak_file.read_text())
        if profile:
            show = [sys.executable, "-m", "mlplan", "data", "show", added["ref"], "--json"]
            result["profile"] = json.loads(_run(show, cwd=project, env=env))["profile"]
        return result
    finally:
        shutil.rmtree(project, ignore_errors=True)


def run_peer(variant: str, csv: Path) -> dict[str, Any]:
    start = time.perf_counter()
    out = _run([sys.executable, SCRIPT, "--child", variant, "--data", str(csv)])
    seconds = time.perf_counter() - start
    return {"seconds": seconds} | json.loads(out)


def _distinct_bound(column: dict[str, Any]) -> tuple[int | None, float | None]:
    """mlplan's distinct count and its relative error bound (None: exact)."""
    sketch = column.get("sketched", {}).get("distinct")
    if sketch is None:
        return column.get("distinct"), None
    return column.get("distinct"), float(sketch.get("relative_error", float("nan")))


def _close(a: float, b: float, tolerance: float = RELATIVE) -> bool:
    return abs(a - b) <= tolerance * max(1.0, abs(b))


def agree(profile: dict[str, Any], pandas: dict[str, Any], duckdb: dict[str, Any]) -> dict:
    """Checks mlplan's stored profile against both peers; returns counts and problems."""
    problems: list[str] = []
    checks = {"columns": 0, "distinct_exact": 0, "distinct_sketched": 0, "numeric": 0, "pii": 0}
    worst_mean, worst_sketch, worst_approx = 0.0, 0.0, 0.0
    rows = profile["rows"]
    if not rows == pandas["rows"] == duckdb["rows"]:
        problems.append(f"rows: mlplan {rows}, pandas {pandas['rows']}, DuckDB {duckdb['rows']}")
    if set(profile["columns"]) != set(pandas["columns"]) or set(pandas["columns"]) != set(
        duckdb["columns"]
    ):
        problems.append(
            f"columns differ: mlplan {sorted(profile['columns'])}, pandas "
            f"{sorted(pandas['columns'])}, DuckDB {sorted(duckdb['columns'])}"
        )
    for name, col in profile["columns"].items():
        p, d = pandas["columns"].get(name), duckdb["columns"].get(name)
        if p is None or d is None:
            continue
        checks["columns"] += 1
        if col["missing"] != p["missing"] or col["count"] != p["count"]:
            problems.append(
                f"{name}: missing/count mlplan {col['missing']}/{col['count']}, "
                f"pandas {p['missing']}/{p['count']}"
            )
        share = 100 * col["missing"] / rows if rows else 0.0
        if abs(d["null_percentage"] - share) > 0.005 + 1e-9:
            problems.append(
                f"{name}: DuckDB null_percentage {d['null_percentage']} vs mlplan "
                f"{col['missing']} missing of {rows} ({share:.4f}%)"
            )
        distinct, error = _distinct_bound(col)
        if distinct is None:
            problems.append(f"{name}: mlplan has no distinct count")
        elif error is None:
            checks["distinct_exact"] += 1
            if distinct != p["distinct"]:
                problems.append(
                    f"{name}: distinct mlplan {distinct} (exact), pandas {p['distinct']}"
                )
        else:
            checks["distinct_sketched"] += 1
            off = abs(distinct - p["distinct"]) / max(1, p["distinct"])
            worst_sketch = max(worst_sketch, off)
            if error != error:  # NaN: no bound given
                problems.append(f"{name}: distinct sketched, but the profile states no bound")
            elif not off <= error:
                problems.append(
                    f"{name}: distinct mlplan {distinct} (sketched, bound {error}), "
                    f"pandas {p['distinct']}: off by {off:.2%}"
                )
        worst_approx = max(
            worst_approx, abs(d["approx_unique"] - p["distinct"]) / max(1, p["distinct"])
        )
        if col.get("redacted"):
            checks["pii"] += 1
            continue
        if col.get("kind") != "numeric":
            continue
        checks["numeric"] += 1
        for peer, values in (("pandas", p), ("DuckDB", d)):
            if not values["numeric"] or "mean" not in values:
                problems.append(f"{name}: numeric in mlplan, not in {peer} ({values})")
                continue
            for key in ("min", "max"):
                if float(col[key]) != values[key]:
                    problems.append(f"{name}.{key}: mlplan {col[key]}, {peer} {values[key]}")
            worst_mean = max(
                worst_mean, abs(col["mean"] - values["mean"]) / max(1.0, abs(values["mean"]))
            )
            if not _close(col["mean"], values["mean"]):
                problems.append(f"{name}.mean: mlplan {col['mean']!r}, {peer} {values['mean']!r}")
    return checks | {
        "max_relative_mean_difference": worst_mean,
        "max_sketched_distinct_error": worst_sketch if checks["distinct_sketched"] else None,
        "duckdb_approx_unique_max_error": worst_approx,
        "problems": problems,
    }


def measure(rows: int, csv: Path, work: Path, repeat: int) -> dict[str, Any]:
    """Every variant ``repeat`` times on one CSV, in turn; the first runs checked to agree."""
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    for i in range(repeat):
        runs["mlplan"].append(run_mlplan(csv, work, profile=i == 0))
        runs["pandas"].append(run_peer("pandas", csv))
        runs["duckdb"].append(run_peer("duckdb", csv))
        times = ", ".join(f"{v} {runs[v][-1]['seconds']:.2f} s" for v in VARIANTS)
        print(f"  {rows:,} rows, run {i + 1}/{repeat}: {times}", flush=True)
    agreement = agree(
        runs["mlplan"][0].pop("profile"), runs["pandas"][0]["summary"], runs["duckdb"][0]["summary"]
    )
    variants = {}
    for v in VARIANTS:
        for run in runs[v]:
            run.pop("summary", None)
        variants[v] = {
            "seconds": statistics.median(r["seconds"] for r in runs[v]),
            "peak_mb": max(r["peak_mb"] for r in runs[v]),
            "import_seconds": statistics.median(r["import_seconds"] for r in runs[v]),
            "runs": runs[v],
        }
        variants[v]["version"] = runs[v][0]["version"]
    m, p, d = (variants[v] for v in VARIANTS)
    goals = {
        "at least 2x faster than pandas": {
            "value": p["seconds"] / m["seconds"],
            "text": f"pandas/mlplan = {p['seconds'] / m['seconds']:.2f}x (goal >= 2x)",
            "met": p["seconds"] >= 2 * m["seconds"],
        },
        "within 2x DuckDB": {
            "value": m["seconds"] / d["seconds"],
            "text": f"mlplan/DuckDB = {m['seconds'] / d['seconds']:.2f}x (goal <= 2x)",
            "met": m["seconds"] <= 2 * d["seconds"],
        },
        "peak memory below pandas'": {
            "value": m["peak_mb"] / p["peak_mb"],
            "text": f"{m['peak_mb']:,.0f} MB vs {p['peak_mb']:,.0f} MB",
            "met": m["peak_mb"] < p["peak_mb"],
        },
    }
    return {
        "rows": rows,
        "csv_mb": csv.stat().st_size / 2**20,
        "repeat": repeat,
        "variants": variants,
        "agreement": agreement,
        "goals": goals,
    }


def scaling(sizes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """mlplan's time at each larger size against the smallest: at most 1.1x the rows ratio."""
    small = sizes[0]
    out = []
    for large in sizes[1:]:
        rows_ratio = large["rows"] / small["rows"]
        ratio = large["variants"]["mlplan"]["seconds"] / small["variants"]["mlplan"]["seconds"]
        goal = SCALING_SLACK * rows_ratio
        out.append(
            {
                "rows": [small["rows"], large["rows"]],
                "time_ratio": ratio,
                "goal": goal,
                "met": ratio <= goal,
            }
        )
    return out


def _print(size: dict[str, Any]) -> None:
    variants, agreement = size["variants"], size["agreement"]
    repeat = size["repeat"]
    runs = "1 run" if repeat == 1 else f"median of {repeat} runs"
    print(
        f"\nbench_register: churn CSV, {size['rows']:,} rows x {agreement['columns']} columns "
        f"({size['csv_mb']:,.0f} MB), {runs}, {os.cpu_count()} CPUs"
    )
    print(
        f"{'variant':<46}{'seconds':>9}{'imports':>9}{'peak MB':>9}"
        f"{'time/mlplan':>13}{'mem/mlplan':>12}"
    )
    mlplan = variants["mlplan"]
    for v in VARIANTS:
        r = variants[v]
        print(
            f"{LABELS[v]:<46}{r['seconds']:>9.2f}{r['import_seconds']:>9.2f}{r['peak_mb']:>9,.0f}"
            f"{r['seconds'] / mlplan['seconds']:>12.2f}x{r['peak_mb'] / mlplan['peak_mb']:>11.2f}x"
        )
    if agreement["problems"]:
        print(f"results DISAGREE ({len(agreement['problems'])}):")
        for problem in agreement["problems"]:
            print(f"  {problem}")
    else:
        sketched = agreement["distinct_sketched"]
        print(
            f"results agree: rows; missing per column ({agreement['columns']}, DuckDB's "
            f"null_percentage too); distinct counts ({agreement['distinct_exact']} exact"
            + (
                f", {sketched} sketched within their bound, worst "
                f"{agreement['max_sketched_distinct_error']:.2%}"
                if sketched
                else ""
            )
            + f"); min, max and mean of {agreement['numeric']} numeric columns (largest mean "
            f"difference {agreement['max_relative_mean_difference']:.1e}); "
            f"{agreement['pii']} PII columns by counts only"
        )
    for goal, result in size["goals"].items():
        print(f"  {goal:<32} {'met' if result['met'] else 'NOT MET':<8} {result['text']}")


def main() -> None:
    if len(sys.argv) > 3 and sys.argv[1] == "--as-mlplan" and sys.argv[3] == "--":
        _as_mlplan(sys.argv[2], sys.argv[4:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        type=int,
        action="append",
        help="rows of the CSV (default 2,000,000); twice, e.g. 2000000 and 10000000, to measure "
        "how the time grows",
    )
    parser.add_argument(
        "--repeat", type=int, help="runs per variant (default 3 below 5,000,000 rows, else 1)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="keep the generated CSVs here and reuse them (default: a temporary folder)",
    )
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/bench_register.json"))
    parser.add_argument("--child", choices=("pandas", "duckdb"))
    parser.add_argument("--data")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_peer(args.child, args.data)))
        return
    sizes = sorted(set(args.rows or [2_000_000]))
    if sizes[0] < 1:
        parser.error("--rows must be at least 1")
    with tempfile.TemporaryDirectory(prefix="bench_register-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        data_dir.mkdir(parents=True, exist_ok=True)
        results = []
        for rows in sizes:
            csv = _csv(rows, data_dir)
            repeat = args.repeat or (3 if rows < 5_000_000 else 1)
            results.append(measure(rows, csv, Path(tmp), repeat))
    for size in results:
        _print(size)
    growth = scaling(results)
    for g in growth:
        small, large = g["rows"]
        print(
            f"  {large:,} rows took {g['time_ratio']:.2f}x the {small:,}-row time "
            f"(goal <= {g['goal']:.2f}x): {'met' if g['met'] else 'NOT MET'}"
        )
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    report = {
        "benchmark": "bench_register",
        "commit": commit or None,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sizes": results,
        "scaling": growth,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    problems = [p for size in results for p in size["agreement"]["problems"]]
    if problems:
        raise SystemExit(f"results disagree ({len(problems)} problems; see above)")


if __name__ == "__main__":
    main()
