"""One monitoring window over a large prediction log: ``monitor`` (every family, and the ML
family alone) vs a hand-written DuckDB query over the same Parquet.

A binary logistic regression on 8 numbers and two categories (``gender`` x 50 ``region``
values: the plan's one slice, 100 slice values) is trained and deployed as ``production``;
then ``--rows`` predictions (default 10,000,000) are written straight into its prediction
log, as the compactor leaves it (four writers' folders of ``seg-NNNNNN.parquet`` segments of
250,000 records, each over the whole hour, row groups of 32,768 records, the log's columns;
one input record and one answer per request), all in one hour, and a feedback record with
the true label for ``--labelled`` of them (default a half) in the next hour. No server is
involved.

Three sides, each in a process of its own with its peak resident memory (past
``--max-memory-gib``, default 8, it is stopped and said so):

- ``monitor``: every family of that hour (``window="1h"``, not stored): rows per second and
  peak memory;
- ``monitor --family ml``: the ML metrics per slice alone (what the query computes);
- the hand-written query: the plan's ML metrics (ROC AUC, precision, recall, with the
  labelled count) per slice value straight from the Parquet.

Both monitor sides' numbers must equal the query's per slice. ``monitor`` parses a window's
records in DuckDB into typed columns, a part of about a million requests at a time, cut by
time (``_read.answered_records``), so its memory grows by the typed columns (about 150
bytes a record here), not by DuckDB's working set or Python objects.

Goal (#15): per-slice ML metrics for 100 slices within 1.5x the time of the hand-written
query; ``monitor`` over 10,000,000 predictions in bounded memory. Take the figures on a quiet
machine.

    python benchmarks/bench_monitor.py [--rows 10000000] [--labelled 0.5]
        [--max-memory-gib 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

FEATURES = [f"x{i}" for i in range(8)]
GENDERS = ["female", "male"]
REGIONS = [f"r{k:02d}" for k in range(50)]
HOUR = dt.datetime(2026, 11, 30, 10, tzinfo=dt.UTC)
SEGMENT_ROWS = 250_000
ROW_GROUP = 32_768
WRITERS = 4
# The log's columns, as serving's writer and compactor keep them.
LOG_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        ("request_id", pa.string()),
        ("time", pa.string()),
        ("model", pa.string()),
        ("version", pa.string()),
        ("route", pa.string()),
        ("status", pa.int64()),
        ("latency_ms", pa.float64()),
        ("inputs", pa.string()),
        ("outputs", pa.string()),
        ("error", pa.string()),
        ("client_id", pa.string()),
        ("deployment", pa.string()),
    ]
)

HAND_QUERY = """
WITH p AS (
    SELECT request_id,
           json_extract_string(inputs, '$[0].gender') AS gender,
           json_extract_string(inputs, '$[0].region') AS region,
           json_extract_string(outputs, '$[0].label') AS label,
           CAST(json_extract(outputs, '$[0].probabilities."1"') AS DOUBLE) AS score
    FROM read_parquet({files})
    WHERE kind = 'prediction' AND status >= 200 AND status < 300
      AND time >= '{since}' AND time < '{until}'
),
f AS (
    SELECT request_id, arg_max(json_extract_string(outputs, '$.label'), time) AS y
    FROM read_parquet({files})
    WHERE kind = 'feedback' AND time >= '{since}'
    GROUP BY request_id
),
j AS (
    SELECT gender, region, label, score, y = '1' AS positive,
           rank() OVER w + (count(*) OVER (PARTITION BY gender, region, score) - 1) / 2.0
               AS score_rank
    FROM p JOIN f USING (request_id)
    WINDOW w AS (PARTITION BY gender, region ORDER BY score)
)
SELECT gender, region, count(*) AS n,
       (sum(score_rank) FILTER (WHERE positive)
        - count(*) FILTER (WHERE positive) * (count(*) FILTER (WHERE positive) + 1) / 2.0)
       / nullif(count(*) FILTER (WHERE positive) * count(*) FILTER (WHERE NOT positive), 0)
           AS roc_auc,
       count(*) FILTER (WHERE positive AND label = '1')
           / nullif(count(*) FILTER (WHERE label = '1'), 0) AS precision,
       count(*) FILTER (WHERE positive AND label = '1')
           / nullif(count(*) FILTER (WHERE positive), 0) AS recall
FROM j GROUP BY gender, region ORDER BY gender, region
"""


def make_project(folder: Path) -> tuple[str, str]:
    """Train and deploy the model the log is of; (its name, its version in the log)."""
    import pyarrow.csv as pcsv

    from mlplan.data import register_dataset, split_dataset
    from mlplan.evaluation import evaluate
    from mlplan.modeling import get_model, train_model
    from mlplan.plan import render_plan
    from mlplan.serving import deploy
    from mlplan.workspace import Workspace

    rng = np.random.default_rng(7)
    n = 20_000
    x = rng.normal(size=(n, len(FEATURES)))
    gender, region = rng.integers(0, 2, n), rng.integers(0, len(REGIONS), n)
    margin = x @ rng.normal(size=len(FEATURES)) + 0.5 * gender + (region % 5 - 2) * 0.2
    y = (margin + rng.normal(size=n) > 0).astype(np.int64)
    table = pa.table(
        {
            "id": np.arange(n),
            **{f: x[:, i] for i, f in enumerate(FEATURES)},
            "gender": np.asarray(GENDERS)[gender],
            "region": np.asarray(REGIONS)[region],
            "y": y,
        }
    )
    (folder / "data").mkdir(parents=True)
    pcsv.write_csv(table, folder / "data" / "main.csv")
    plan = render_plan("bench", task="binary", target="y")
    plan = plan.replace("    id_column: null", "    id_column: id")
    lines = [
        "slices: [{name: group, columns: [gender, region]}]" if line.startswith("slices:") else line
        for line in plan.splitlines()
    ]
    (folder / "mlplan.yaml").write_text("\n".join(lines) + "\n")
    ws = Workspace(folder)
    try:
        register_dataset(ws, "main")
        split_dataset(ws, "main", seed=1)
        model = train_model(ws, family="logistic")
        evaluation = evaluate(ws, model.ref, n_boot=0)
        assert evaluation.package is not None
        info = deploy(ws, str(evaluation.package["ref"]), by="bench", allow_failed_gates=True)
        served = get_model(ws, info.model)
        return served.name, served.package_sha256[:12]
    finally:
        ws.close()


def _text(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _stamps(seconds: np.ndarray, start: dt.datetime) -> pa.Array:
    """ISO 8601 in UTC, as the writer stamps ``time``."""
    base = np.datetime64(start.replace(tzinfo=None), "us")
    moments = pa.array(base + (seconds * 1e6).astype("timedelta64[us]"))
    return pc.binary_join_element_wise(
        pc.strftime(moments, format="%Y-%m-%dT%H:%M:%S"), pa.scalar("+00:00"), ""
    )


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(
        *[pa.scalar(p) if isinstance(p, str) else p for p in parts], pa.scalar(""), ""
    )


def _segment(
    rng: np.random.Generator, rows: int, start_id: int, model: str, version: str, hours: int = 1
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """``rows`` answered predictions over ``hours`` from HOUR: the records, their true labels
    and their times (seconds from HOUR, ascending)."""
    ids = _join("req-", _text(np.arange(start_id, start_id + rows)))
    x = rng.normal(size=(rows, len(FEATURES))).round(4)
    gender, region = rng.integers(0, 2, rows), rng.integers(0, len(REGIONS), rows)
    score = 1 / (1 + np.exp(-(x[:, 0] + 0.5 * gender)))
    truth = rng.random(rows) < score
    score = score.round(6)
    parts: list[pa.Array | str] = ["[{"]
    for i, name in enumerate(FEATURES):
        parts += [f'"{name}":', _text(x[:, i]), ","]
    parts += [
        '"gender":"',
        pa.array(np.asarray(GENDERS)[gender]),
        '","region":"',
        pa.array(np.asarray(REGIONS)[region]),
        '"}]',
    ]
    label = np.where(score >= 0.5, "1", "0")
    outputs = _join(
        '[{"label":"',
        pa.array(label),
        '","probabilities":{"0":',
        _text((1 - score).round(6)),
        ',"1":',
        _text(score),
        "}}]",
    )
    seconds = np.sort(rng.uniform(0, 3600 * hours, rows))

    def records(kind: str, n: int, **columns: Any) -> pa.Table:
        constant = {"kind": kind, "model": model, "deployment": "production"}
        filled = {k: pa.array([v] * n, pa.string()) for k, v in constant.items()}
        return pa.table({**filled, **columns}).select(
            [c for c in LOG_SCHEMA.names if c in {**filled, **columns}]
        )

    predictions = records(
        "prediction",
        rows,
        request_id=ids,
        time=_stamps(seconds, HOUR),
        version=pa.array([version] * rows),
        route=pa.array(["/v1/predict"] * rows),
        status=pa.array(np.full(rows, 200)),
        latency_ms=pa.array(rng.gamma(2.0, 2.0, rows).round(3)),
        inputs=_join(*parts),
        outputs=outputs,
    )
    return predictions, truth, seconds


def write_log(
    folder: Path, rows: int, labelled: float, model: str, version: str, *, hours: int = 1
) -> int:
    """The log of ``rows`` predictions, as the compactor writes it; the records labelled.
    ``hours`` past 1 spreads the predictions over that many hours from HOUR, each label
    sent an hour after its prediction (bench_ui: hourly windows)."""
    rng = np.random.default_rng(11)
    written = labelled_rows = 0
    segment = 0
    while written < rows:
        n = min(SEGMENT_ROWS, rows - written)
        predictions, truth, seconds = _segment(rng, n, written, model, version, hours)
        chosen = np.flatnonzero(rng.random(n) < labelled)
        feedback = pa.table(
            {
                "kind": pa.array(["feedback"] * len(chosen)),
                "request_id": predictions.column("request_id").take(chosen),
                "time": _stamps(
                    np.sort(rng.uniform(3600, 7200, len(chosen)))
                    if hours == 1
                    else seconds[chosen] + 3600,
                    HOUR,
                ),
                "model": pa.array([model] * len(chosen)),
                "version": pa.array(["x"] * len(chosen)),
                "route": pa.array(["/v1/feedback"] * len(chosen)),
                "status": pa.array(np.full(len(chosen), 202)),
                "latency_ms": pa.array(np.full(len(chosen), 0.1)),
                "outputs": _join('{"label":"', _text(truth[chosen].astype(np.int64)), '"}'),
                "deployment": pa.array(["production"] * len(chosen)),
            }
        )
        for part in (predictions, feedback):
            full = pa.table(
                {
                    f.name: part.column(f.name).cast(f.type)
                    if f.name in part.column_names
                    else pa.nulls(part.num_rows, f.type)
                    for f in LOG_SCHEMA
                },
                schema=LOG_SCHEMA,
            )
            writer = folder / f"w-20261130T100000-{segment % WRITERS:04d}-bench"
            writer.mkdir(parents=True, exist_ok=True)
            pq.write_table(full, writer / f"seg-{segment:06d}.parquet", row_group_size=ROW_GROUP)
            segment += 1
        written += n
        labelled_rows += len(chosen)
    return labelled_rows


def side_monitor(project: Path, families: list[str] | None = None) -> dict[str, Any]:
    """In this process: ``monitor`` over the hour (``families``: only those); the time, the
    ML family per slice, and this process's peak memory."""
    from mlplan.monitoring import monitor
    from mlplan.workspace import Workspace

    ws = Workspace(project)
    started = time.perf_counter()
    result = monitor(
        ws,
        "production",
        window="1h",
        since=HOUR,
        until=HOUR + dt.timedelta(hours=1),
        store=False,
        families=families,
    )
    seconds = time.perf_counter() - started
    ml = {
        w.slice: {"n": w.samples, **w.metrics.get("metrics", {})}
        for w in result.windows
        if w.family == "ml"
    }
    ws.close()
    return {
        "seconds": seconds,
        "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "windows": len(result.windows),
        "ml": ml,
    }


def side_duckdb(project: Path) -> dict[str, Any]:
    """In this process: the hand-written query; its time, rows and peak memory."""
    import duckdb

    files = sorted((project / ".mlplan").rglob("seg-*.parquet"))
    listed = "[" + ", ".join(f"'{f}'" for f in files) + "]"
    sql = HAND_QUERY.format(
        files=listed,
        since=HOUR.isoformat(),
        until=(HOUR + dt.timedelta(hours=1)).isoformat(),
    )
    con = duckdb.connect()
    started = time.perf_counter()
    rows = con.execute(sql).fetchall()
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "slices": {
            f"gender={g} & region={r}": {"n": n, "roc_auc": a, "precision": p, "recall": c}
            for g, r, n, a, p, c in rows
        },
    }


def _run_side(side: str, project: Path, cap_bytes: int) -> dict[str, Any]:
    """One side in its own process, stopped past ``cap_bytes`` of resident memory."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--side", side, str(project)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stopped = threading.Event()

    def watch() -> None:
        status = Path(f"/proc/{process.pid}/status")
        while process.poll() is None:
            try:
                rss = next(
                    int(line.split()[1]) * 1024
                    for line in status.read_text().splitlines()
                    if line.startswith("VmRSS:")
                )
            except (OSError, StopIteration):
                return
            if rss > cap_bytes:
                stopped.set()
                process.kill()
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = process.communicate()
    watcher.join()
    if stopped.is_set():
        return {"stopped": f"past {cap_bytes / 2**30:.1f} GiB of resident memory"}
    if process.returncode != 0:
        raise SystemExit(f"the {side} side failed:\n{err[-4000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--labelled", type=float, default=0.5)
    parser.add_argument("--max-memory-gib", type=float, default=8.0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--side", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side is not None:
        side, project = args.side[0], Path(args.side[1])
        if side == "duckdb":
            done = side_duckdb(project)
        else:
            done = side_monitor(project, ["ml"] if side == "monitor-ml" else None)
        print(json.dumps(done))
        return

    cap = int(args.max_memory_gib * 2**30)
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder) / "project"
        project.mkdir()
        started = time.perf_counter()
        model, version = make_project(project)
        made = time.perf_counter() - started
        started = time.perf_counter()
        labelled = write_log(project / ".mlplan" / "predictions" / model, args.rows,
                             args.labelled, model, version)  # fmt: skip
        logged = time.perf_counter() - started
        size = sum(p.stat().st_size for p in (project / ".mlplan").rglob("seg-*.parquet"))
        print(f"bench_monitor: {args.rows:,} predictions ({labelled:,} labelled), "
              f"{size / 2**20:,.0f} MiB of Parquet written in {logged:.1f} s "
              f"(project {made:.1f} s)", flush=True)  # fmt: skip
        hand = _run_side("duckdb", project, cap)
        ours = _run_side("monitor", project, cap)
        ml = _run_side("monitor-ml", project, cap)
    result: dict[str, Any] = {"rows": args.rows, "labelled": labelled, "parquet_bytes": size,
                              "monitor": ours, "monitor_ml": ml, "duckdb": hand}  # fmt: skip
    print(f"{'':<32}{'seconds':>10}{'rows/s':>14}{'peak GiB':>10}")
    sides = (("mlplan monitor, every family", ours), ("mlplan monitor --family ml", ml),
             ("hand-written DuckDB query", hand))  # fmt: skip
    for name, side in sides:
        if "stopped" in side:
            print(f"{name:<32}  stopped: {side['stopped']}")
            continue
        rate = args.rows / side["seconds"]
        print(
            f"{name:<32}{side['seconds']:>10.2f}{rate:>14,.0f}{side['peak_bytes'] / 2**30:>10.2f}"
        )
    if "stopped" not in hand:
        for label, side in (("monitor", ours), ("monitor_ml", ml)):
            if "stopped" in side:
                continue
            worst = 0.0
            for key, theirs in hand["slices"].items():
                mine = side["ml"][key]
                assert mine["n"] == theirs["n"], (key, mine["n"], theirs["n"])
                for metric in ("roc_auc", "precision", "recall"):
                    worst = max(worst, abs(mine[metric] - theirs[metric]))
            ratio = side["seconds"] / hand["seconds"]
            result[f"{label}_ratio_to_duckdb"] = ratio
            result[f"{label}_max_abs_difference"] = worst
            print(f"{label} vs the query: {ratio:.2f}x its time; all {len(hand['slices'])} "
                  f"slices agree (largest difference {worst:.1e})")  # fmt: skip
            if worst > 1e-9:
                raise SystemExit(f"{label}: results disagree by {worst:.2e}")
        print("goal: the ML family per slice (monitor_ml) <= 1.5x the query")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
