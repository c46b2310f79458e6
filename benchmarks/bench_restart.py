"""Restarts over a large prediction log: ready first, the log compacted in the background.

A served logistic regression (20 features, bench_serving's project) gets a prediction log of
about ``--log-mb`` of closed JSONL segments, as stopped servers leave it: 64 MB segments
written by mlplan's own log writer (one, copied) in four writers' folders. Then:

1. ``mlplan serve`` is started over it: the seconds from the process's start to
   ``/v2/health/ready`` answering ready (goal: within 5 s over 1 GB), beside the same with no
   log at all;
2. the seconds the background compaction then takes, the server's resident memory at ready
   and at its peak (the kernel's high-water mark, VmHWM), also once the first segment was done
   (goal: bounded by the chunk size, not the log's: the first compaction loads the Parquet
   writer once, about 60 MB; the segments after it add next to nothing), and the latency of
   a light load (50 requests a second) while it compacts and after;
3. ``--restarts`` times: ``mlplan serve --workers 2`` under a light load, killed with
   ``kill -9`` (every process) once it has answered; how many starts came back ready (both
   workers; goal: all), and every acknowledged prediction in the log exactly once.

    python benchmarks/bench_restart.py [--log-mb 1024] [--restarts 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from bench_serving import FEATURES, _port, _project

SEGMENT_MB = 64
WRITERS = 4


def _old_log(folder: Path, log_mb: int) -> dict[str, Any]:
    """About ``log_mb`` of closed segments under ``folder``, as stopped servers leave them."""
    from mlplan.serving._log import PredictionLog

    rng = np.random.default_rng(11)
    staging = folder.parent / "staging"
    with PredictionLog(staging, segment_bytes=SEGMENT_MB * 2**20) as log:
        while log.stats.segments_closed == 0:  # one full segment, from the real writer
            waiting = []
            for _ in range(2000):
                x = rng.normal(size=(4, len(FEATURES))).round(6)
                p = rng.uniform(size=4).round(6)
                waiting.append(log.record(
                    kind="prediction", request_id=os.urandom(16).hex(), model="logistic-1",
                    version="1", route="/v1/predict", status=200,
                    latency_ms=float(rng.uniform(0.5, 5)),
                    inputs=[dict(zip(FEATURES, row, strict=True)) for row in x.tolist()],
                    outputs=[{"label": str(int(q > 0.5)), "probabilities": {"0": 1 - q, "1": q}}
                             for q in p.tolist()],
                ))  # fmt: skip
            for done in waiting:
                assert done is not None
                done.result(timeout=60)
    segment = next(staging.rglob("seg-000000.jsonl"))
    rows = sum(1 for _ in segment.open("rb"))
    count = max(1, math.ceil(log_mb / SEGMENT_MB))
    for i in range(count):
        writer = folder / f"w-20260101T00000{i % WRITERS}-{1000 + i % WRITERS}-beef"
        writer.mkdir(parents=True, exist_ok=True)
        (writer / ".lock").touch()
        shutil.copyfile(segment, writer / f"seg-{i // WRITERS:06d}.jsonl")
    shutil.rmtree(staging)
    size = sum(p.stat().st_size for p in folder.rglob("seg-*.jsonl"))
    return {"segments": count, "bytes": size, "rows": rows * count}


def _serve(root: Path, model: str, port: int, workers: int = 1) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"MLPLAN_STORE_URL"}}
    return subprocess.Popen(
        [sys.executable, "-m", "mlplan", "serve", model, "--port", str(port),
         "--workers", str(workers)],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _rss(pid: int, field: str = "VmRSS") -> int:
    """A process's resident memory (or its peak, VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _descendants(pid: int) -> list[int]:
    """The processes ``pid`` started, and theirs (the server's workers)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def _load(
    base: str, token: str, stop: threading.Event, rate: float
) -> tuple[threading.Thread, list[tuple[float, float, int, str]]]:
    """One client sending ``rate`` predictions a second until ``stop``: (time, latency ms,
    status, request id) of each answer."""
    import httpx

    answers: list[tuple[float, float, int, str]] = []
    record = {f: 0.1 * i for i, f in enumerate(FEATURES)}

    def work() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
            while not stop.is_set():
                start = time.perf_counter()
                try:
                    answer = client.post("/v1/predict", json={"records": [record]})
                except httpx.HTTPError:
                    if stop.is_set():
                        return
                    continue  # killed mid-request: not acknowledged
                took = time.perf_counter() - start
                rid = answer.json().get("request_id", "") if answer.status_code == 200 else ""
                answers.append((time.time(), took * 1000, answer.status_code, rid))
                stop.wait(max(0.0, 1 / rate - took))

    thread = threading.Thread(target=work)
    thread.start()
    return thread, answers


def _drain(process: subprocess.Popen[str], workers: int) -> threading.Event:
    """Read what the server prints until it exits (it never blocks on a full pipe); the event
    is set once every worker has said it is ready."""
    ready = threading.Event()

    def read() -> None:
        said = 0
        assert process.stdout is not None
        for line in process.stdout:
            said += " ready (" in line
            if said == workers:
                ready.set()
            if "Traceback" in line or "not ready" in line:
                print("  server:", line.rstrip())

    threading.Thread(target=read, daemon=True).start()
    return ready


def _percentiles(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"n": 0, "p50_ms": float("nan"), "p99_ms": float("nan")}
    ordered = sorted(latencies)
    return {"n": len(ordered), "p50_ms": statistics.median(ordered),
            "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]}  # fmt: skip


def _until_ready(process: subprocess.Popen[str], port: int, started: float) -> float:
    """Seconds from ``started`` until the ready route answers ready (polled every 20 ms, as
    a load balancer would)."""
    import httpx

    _drain(process, 1)
    with httpx.Client(timeout=1) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                answer = client.get(f"http://127.0.0.1:{port}/v2/health/ready")
                if answer.status_code == 200 and answer.json().get("ready"):
                    return time.perf_counter() - started
            if process.poll() is not None or time.perf_counter() - started > 600:
                raise SystemExit("the server did not become ready")
            time.sleep(0.02)


def _empty_start(ws: Any, model: str) -> float:
    """Phase 0, the baseline: seconds from start to ready with no log at all."""
    port = _port()
    started = time.perf_counter()
    process = _serve(ws.root, model, port)
    try:
        return _until_ready(process, port, started)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def _first_start(ws: Any, model: str, token: str, old: list[Path]) -> dict[str, Any]:
    """Phases 1 and 2: one server over the old log; ready, then the compaction."""
    port = _port()
    started = time.perf_counter()
    process = _serve(ws.root, model, port)
    try:
        ready_s = _until_ready(process, port, started)
        left_at_ready = sum(1 for p in old if p.exists())
        rss_ready = _rss(process.pid)
        stop = threading.Event()
        loader, answers = _load(f"http://127.0.0.1:{port}", token, stop, rate=50)
        first_peak = None  # once one segment is done: what the others add to it
        while any(p.exists() for p in old):
            if first_peak is None and not all(p.exists() for p in old):
                first_peak = _rss(process.pid, "VmHWM")
            if process.poll() is not None or time.perf_counter() - started > 3600:
                raise SystemExit("the compaction did not end")
            time.sleep(0.05)
        compacted_at = time.time()
        compaction_s = time.perf_counter() - started - ready_s
        peak = _rss(process.pid, "VmHWM")
        time.sleep(3)  # the same load after the compaction, to compare
        stop.set()
        loader.join()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    during = [ms for t, ms, status, _ in answers if t <= compacted_at and status == 200]
    after = [ms for t, ms, status, _ in answers if t > compacted_at and status == 200]
    return {
        "ready_s": ready_s,
        "segments_left_at_ready": left_at_ready,
        "compaction_s": compaction_s,
        "rss_at_ready_mb": rss_ready / 2**20,
        "rss_peak_mb": peak / 2**20,
        "rss_peak_after_first_segment_mb": (first_peak or peak) / 2**20,
        "latency_during_compaction": _percentiles(during),
        "latency_after_compaction": _percentiles(after),
        "non_200": sum(1 for *_, status, _ in answers if status != 200),
    }


def _kill_9_restarts(ws: Any, model: str, token: str, restarts: int) -> dict[str, Any]:
    """Phase 3: ``restarts`` starts of two workers, each killed with kill -9 under load."""
    from mlplan.serving import query_log

    folder = ws.root / ".mlplan" / "predictions" / model
    before = set(folder.glob("w-*"))
    acknowledged: list[str] = []
    ready, ready_s = 0, []
    for _ in range(restarts):
        port = _port()
        started = time.perf_counter()
        process = _serve(ws.root, model, port, workers=2)
        came_back = _drain(process, 2).wait(120)
        ready += came_back
        if came_back:
            ready_s.append(time.perf_counter() - started)
            stop = threading.Event()
            loader, answers = _load(f"http://127.0.0.1:{port}", token, stop, rate=50)
            while len(answers) < 20 and loader.is_alive():
                time.sleep(0.01)
        for pid in [*_descendants(process.pid), process.pid]:  # kill -9, workers too
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait()
        if came_back:
            stop.set()
            loader.join()
            acknowledged += [rid for _, _, status, rid in answers if status == 200]
    logged: Counter[str] = Counter()
    for writer in sorted(set(folder.glob("w-*")) - before):  # the old log holds none of them
        ids = query_log(writer, "SELECT request_id FROM predictions WHERE kind = 'prediction'")
        logged.update(ids.column(0).to_pylist())
    return {
        "restarts": restarts,
        "ready": ready,
        "ready_s_median": statistics.median(ready_s) if ready_s else float("nan"),
        "ready_s_max": max(ready_s) if ready_s else float("nan"),
        "acknowledged": len(acknowledged),
        "lost": sum(1 for rid in acknowledged if rid not in logged),
        "duplicated": sum(1 for rid in acknowledged if logged[rid] > 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-mb", type=int, default=1024)
    parser.add_argument("--restarts", type=int, default=20)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/bench_restart.json"))
    args = parser.parse_args()

    from mlplan.serving import create_key

    work = Path(tempfile.mkdtemp(prefix="bench-restart-"))
    try:
        ws, model = _project(work / "project")
        token = create_key(ws, "bench", roles=["predict"]).token
        folder = ws.root / ".mlplan" / "predictions" / model.name
        empty_s = _empty_start(ws, model.name)
        shutil.rmtree(folder)
        log = _old_log(folder, args.log_mb)
        old = sorted(folder.rglob("seg-*.jsonl"))
        print(f"bench_restart: {model.name}, a log of {log['bytes'] / 2**20:,.0f} MB in "
              f"{log['segments']} closed segments ({log['rows']:,} records)")  # fmt: skip
        first = _first_start(ws, model.name, token, old)
        kills = _kill_9_restarts(ws, model.name, token, args.restarts)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    during, after = first["latency_during_compaction"], first["latency_after_compaction"]
    first["ready_s_without_log"] = empty_s
    grown = first["rss_peak_mb"] - first["rss_at_ready_mb"]
    rows = [
        ("start to ready, no log", f"{empty_s:.2f} s"),
        ("start to ready over the log (goal <= 5 s over 1 GB)", f"{first['ready_s']:.2f} s"),
        ("segments still waiting at ready", f"{first['segments_left_at_ready']} of {len(old)}"),
        ("background compaction after ready", f"{first['compaction_s']:.1f} s"),
        ("server RSS at ready", f"{first['rss_at_ready_mb']:.0f} MB"),
        ("server RSS peak (VmHWM) while compacting",
         f"{first['rss_peak_mb']:.0f} MB (+{grown:.0f} MB; segments of {SEGMENT_MB} MB)"),
        ("  peak once the first segment was done",
         f"{first['rss_peak_after_first_segment_mb']:.0f} MB"),
        ("p50 / p99 at 50 req/s, compacting",
         f"{during['p50_ms']:.1f} / {during['p99_ms']:.1f} ms ({during['n']} requests)"),
        ("p50 / p99 at 50 req/s, after",
         f"{after['p50_ms']:.1f} / {after['p99_ms']:.1f} ms ({after['n']} requests)"),
        ("kill -9 restarts, --workers 2, ready (goal all)",
         f"{kills['ready']} of {kills['restarts']}"),
        ("  their start to ready, median / max",
         f"{kills['ready_s_median']:.2f} / {kills['ready_s_max']:.2f} s"),
        ("  acknowledged predictions: lost / twice (goal 0 / 0)",
         f"{kills['lost']} / {kills['duplicated']} of {kills['acknowledged']}"),
    ]  # fmt: skip
    for name, value in rows:
        print(f"{name:<56}{value}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"log": log, "first_start": first, "kill_9": kills}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
