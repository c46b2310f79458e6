"""Profile 1,000,000 rows x 25 columns from Parquet: mlplan vs pandas, same data, same run.

pandas' baseline is ``describe(include="all")``, ``isna().sum()`` and ``nunique()``; mlplan's is its
complete profile (which also has quantiles, string lengths and top values). Each variant runs
in its own process so thread pools and peak memory do not mix; the results are compared
column by column and must agree. Also measures content hashing throughput.

    python benchmarks/bench_profile.py [--rows 1000000] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def make_data(rows: int, path: Path, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    columns: dict[str, pa.Array] = {}
    for i in range(15):
        if i % 3 == 0:
            values = rng.integers(0, 10_000 if i else 5, rows).astype("float64")
        else:
            values = rng.normal(i * 10, i + 1, rows)
        mask = rng.random(rows) < (0.02 * (i % 5))
        columns[f"num_{i:02d}"] = pa.array(values, mask=mask)
    for i in range(10):
        cardinality = [2, 5, 20, 50, 100, 1000, 3, 8, 200, 10_000][i]
        vocabulary = np.array([f"cat{i}_{k}" for k in range(cardinality)], dtype=object)
        values = vocabulary[rng.zipf(1.5, rows) % cardinality]
        mask = rng.random(rows) < (0.03 * (i % 4))
        columns[f"cat_{i:02d}"] = pa.array(values, type=pa.string(), mask=mask)
    pq.write_table(pa.table(columns), path)


def _proc_status_mb(field: str) -> float:
    # /proc, not getrusage: ru_maxrss survives exec, so a child would inherit its parent's peak.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    return _proc_status_mb("VmRSS")


def _peak_rss_mb() -> float:
    return _proc_status_mb("VmHWM")


def run_variant(variant: str, path: str, repeat: int) -> dict[str, object]:
    """Runs inside a child process: one variant, timed ``repeat`` times."""
    if variant == "mlplan":
        from mlplan.data import profile_table, read_table

        baseline = _rss_mb()

        def job() -> object:
            return profile_table(read_table(Path(path), "parquet"))
    else:
        import pandas as pd

        baseline = _rss_mb()

        def job() -> object:
            df = pd.read_parquet(path)
            return (df.describe(include="all"), df.isna().sum(), df.nunique())

    # The first call gives the peak memory of one profile in a fresh process; later calls
    # are timed (allocators keep freed pages, so their peaks would measure the allocator).
    start = time.perf_counter()
    result = job()
    times = [time.perf_counter() - start]
    peak = _peak_rss_mb() - baseline
    for _ in range(repeat - 1):
        start = time.perf_counter()
        result = job()
        times.append(time.perf_counter() - start)
    decoded = pq.read_table(path).nbytes
    return {
        "seconds": statistics.median(times),
        "peak_mb": peak,
        "decoded_mb": decoded / 2**20,
        "summary": _summary(variant, result),
    }


def _summary(variant: str, result: object) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    if variant == "mlplan":
        assert isinstance(result, dict)
        for name, col in result["columns"].items():
            row: dict[str, float | None] = {
                "count": col["count"],
                "missing": col["missing"],
                "distinct": col["distinct"],
            }
            if col["kind"] == "numeric":
                row |= {
                    "mean": col["mean"],
                    "std": col["std"],
                    "min": col["min"],
                    "max": col["max"],
                    "q25": col["quantiles"]["0.25"],
                    "q50": col["quantiles"]["0.5"],
                    "q75": col["quantiles"]["0.75"],
                }
            else:
                row["top_count"] = col["top"][0]["count"]
            out[name] = row
        return out
    describe, missing, nunique = result  # type: ignore[misc]
    for name in describe.columns:
        d = describe[name]
        row = {
            "count": float(d["count"]),
            "missing": float(missing[name]),
            "distinct": float(nunique[name]),
        }
        if name.startswith("num"):
            row |= {
                "mean": d["mean"],
                "std": d["std"],
                "min": d["min"],
                "max": d["max"],
                "q25": d["25%"],
                "q50": d["50%"],
                "q75": d["75%"],
            }
        else:
            row["top_count"] = float(d["freq"])
        out[name] = {k: float(v) for k, v in row.items()}
    return out


def compare(a: dict[str, dict[str, float | None]], b: dict[str, dict[str, float | None]]) -> float:
    worst = 0.0
    for name, row in a.items():
        for key, value in row.items():
            other = b[name][key]
            assert value is not None and other is not None, (name, key)
            diff = abs(value - other) / max(1.0, abs(other))
            if not diff <= 1e-9:
                raise SystemExit(
                    f"results disagree on {name}.{key}: mlplan {value}, pandas {other}"
                )
            worst = max(worst, diff)
    return worst


def child(variant: str, path: str, repeat: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", variant, "--data", path, "--repeat", str(repeat)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/bench_profile.json"))
    parser.add_argument("--child")
    parser.add_argument("--data")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_variant(args.child, args.data, args.repeat)))
        return

    from mlplan.store import sha256_file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.parquet"
        make_data(args.rows, path)
        size_mb = path.stat().st_size / 2**20
        hash_times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            sha256_file(path)
            hash_times.append(time.perf_counter() - start)
        mlplan = child("mlplan", str(path), args.repeat)
        pandas = child("pandas", str(path), args.repeat)
    worst = compare(mlplan.pop("summary"), pandas.pop("summary"))  # type: ignore[arg-type]
    speedup = pandas["seconds"] / mlplan["seconds"]  # type: ignore[operator]
    memory_ratio = mlplan["peak_mb"] / mlplan["decoded_mb"]  # type: ignore[operator]
    hash_mb_s = size_mb / statistics.median(hash_times)
    rows = [
        (
            "profile seconds (median)",
            f"{mlplan['seconds']:.3f}",
            f"{pandas['seconds']:.3f}",
            f"pandas/mlplan = {speedup:.1f}x (goal >= 3x)",
        ),
        (
            "peak memory over imports, MB",
            f"{mlplan['peak_mb']:.0f}",
            f"{pandas['peak_mb']:.0f}",
            f"mlplan/decoded = {memory_ratio:.2f} (goal < 2)",
        ),
        ("decoded data, MB", f"{mlplan['decoded_mb']:.0f}", "", ""),
        ("content hashing, MB/s", f"{hash_mb_s:.0f}", "", f"file {size_mb:.0f} MB"),
    ]
    print(
        f"bench_profile: {args.rows:,} rows x 25 columns, Parquet; results agree "
        f"(max relative difference {worst:.1e})"
    )
    print(f"{'measure':<32} {'mlplan':>10} {'pandas':>10}  ratio")
    for label, a, b, ratio in rows:
        print(f"{label:<32} {a:>10} {b:>10}  {ratio}")
    report = {
        "rows": args.rows,
        "columns": 25,
        "mlplan": mlplan,
        "pandas": pandas,
        "speedup_vs_pandas": speedup,
        "memory_over_decoded": memory_ratio,
        "hash_mb_per_s": hash_mb_s,
        "max_relative_difference": worst,
        "goals": {"speedup >= 3": speedup >= 3, "memory < 2x decoded": memory_ratio < 2},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=float))
    print(f"wrote {args.json}")
    if not math.isfinite(speedup):
        raise SystemExit("no timing")


if __name__ == "__main__":
    main()
