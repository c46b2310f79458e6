"""Rollouts on the request path: one ``mlplan serve --deployment production`` process, its
QPS and latency measured plain, with a 50 % canary split, and with a full-traffic shadow,
same model pair, same process, same run.

Two logistic regressions on 20 numeric features (seeds 1 and 2) are trained by mlplan;
logistic-1 serves production. The server follows the store, so the three phases are the
same process, in rounds (3 by default): plain (no rollout), a canary of logistic-2 advanced to
50 % (random routing), rolled back, then a shadow of logistic-2 mirroring every request,
aborted; each ratio is of the phases' medians, so that a noisy moment on a 2-core machine
weighs on one round, not on one phase. The log keeps one segment for the whole run (no
compaction lands on a phase). Load comes from ``wrk``
(Debian's package) on loopback at concurrency 8 and 32; validation, acked logging and
metrics are on. Before measuring, the answers are checked: in the canary each answer's
probability is the one its named model gives (logistic-2's through ``/v1/preview``), and the
shadow's logged outputs are logistic-2's.

Goals (issue 14): canary routing costs under 5 % of QPS; a full-traffic shadow under 50 %,
never on the client's path (0 non-2xx answers).

    python benchmarks/bench_rollout.py [--seconds 5] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import FEATURES, _ensure_wrk, _port, _project, _wrk


def _answer(url: str, body: str, headers: dict[str, str]) -> dict[str, Any]:
    import httpx

    answer: dict[str, Any] = httpx.post(url, content=body, headers=headers, timeout=10).json()
    return answer


def _wait_http(url: str, *, body: bytes, headers: dict[str, str]) -> None:
    import httpx

    def up() -> bool:
        try:
            return httpx.post(url, content=body, headers=headers, timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    _until(up, url)


def _until(condition: Any, what: str) -> None:
    deadline = time.time() + 60
    while not condition():
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)  # a benchmark waiting for the server to follow the store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/bench_rollout.json"))
    args = parser.parse_args()
    wrk = _ensure_wrk()

    from mlplan.evaluation import evaluate
    from mlplan.modeling import train_model
    from mlplan.rollout import move_rollout, start_rollout
    from mlplan.serving import create_key, log_folder, query_log

    work = Path(tempfile.mkdtemp(prefix="bench-rollout-"))
    ws, first = _project(work / "project")
    # One log segment for the whole run: a segment closed mid-run is compacted to Parquet in
    # the background, and that work would land on whichever phase runs then (each phase
    # still logs every request, acked).
    text = ws.plan_path.read_text()
    old = "  logging: {predictions: true, mode: acked, retention_days: 90, pii: hash}"
    assert old in text
    ws.plan_path.write_text(text.replace(old, old[:-1] + ", segment_mb: 4096}"))
    ws.__dict__.pop("plan", None)
    second = train_model(ws, family="logistic", seed=2)
    for model in (first, second):
        evaluate(ws, model.name, n_boot=0)
    start_rollout(ws, first.name, strategy="replace", allow_failed_gates=True, by="bench")
    token = create_key(ws, "bench", roles=["predict", "admin"]).token
    record = {
        f: float(v) for f, v in zip(FEATURES, np.random.default_rng(1).normal(size=20), strict=True)
    }
    body = json.dumps({"records": [record]})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    port = _port()
    url = f"http://127.0.0.1:{port}/v1/predict"
    env = {k: v for k, v in os.environ.items() if k != "MLPLAN_STORE_URL"}
    server = subprocess.Popen(
        [sys.executable, "-m", "mlplan", "serve", "--deployment", "production",
         "--port", str(port)],
        cwd=ws.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    results: dict[str, Any] = {"seconds": args.seconds, "rounds": args.rounds, "phases": {}}

    def measure(phase: str, round_: int) -> None:
        for connections in (8, 32):
            measured = _wrk(wrk, url, body, headers, connections, args.seconds)
            results["phases"].setdefault(phase, {}).setdefault(str(connections), []).append(
                measured
            )
            print(f"{phase + f' (round {round_})':<28}{connections:>5}{measured['qps']:>10,.0f}"
                  f"{measured['p50_ms']:>9.2f}{measured['p99_ms']:>9.2f}"
                  f"{measured['non_2xx']:>9}")  # fmt: skip

    def move(action: str, by: str = "bench") -> None:
        kind = "controller" if action in ("start", "advance") else "person"
        move_rollout(ws, "production", action, by=by, actor_kind=kind)  # type: ignore[arg-type]

    try:
        _wait_http(url, body=body.encode(), headers=headers)
        stable_p = _answer(url, body, headers)["predictions"][0]["probabilities"]["1"]
        preview = f"http://127.0.0.1:{port}/v1/preview"
        print(
            f"bench_rollout: one server, {args.rounds} rounds of plain / canary / shadow, "
            f"{args.seconds} s per run, wrk on loopback"
        )
        print(f"{'phase':<28}{'conc':>5}{'QPS':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
        shadow_sql = "SELECT count(*) AS n FROM predictions WHERE kind = 'shadow'"
        for round_ in range(1, args.rounds + 1):
            measure("plain", round_)
            # A canary at 50 %, routed at random.
            start_rollout(ws, second.name, strategy="canary", allow_failed_gates=True, by="bench")
            _until(lambda: _answer(preview, body, headers).get("model") is not None, "green")
            candidate_p = _answer(preview, body, headers)["predictions"][0]["probabilities"]["1"]
            move("start")
            for _ in range(3):  # 5, 25, 50
                move("advance")
            seen: dict[str, float] = {}

            def both(seen: dict[str, float] = seen) -> bool:
                answer = _answer(url, body, headers)
                seen[answer["model"]["name"]] = answer["predictions"][0]["probabilities"]["1"]
                return len(seen) == 2

            _until(both, "answers from both models")
            assert abs(seen[first.name] - stable_p) < 1e-9, (seen, stable_p)
            assert abs(seen[second.name] - candidate_p) < 1e-9, (seen, candidate_p)
            measure("canary 50%", round_)
            move("rollback")
            # A shadow of every request.
            start_rollout(ws, second.name, strategy="shadow", allow_failed_gates=True, by="bench")
            move("start")
            before = int(query_log(log_folder(ws), shadow_sql).to_pylist()[0]["n"])

            def shadowed(before: int = before) -> bool:
                _answer(url, body, headers)
                return int(query_log(log_folder(ws), shadow_sql).to_pylist()[0]["n"]) > before

            _until(shadowed, "a shadow record")
            measure("shadow 100%", round_)
            move("abort")
            _until(lambda: _answer(url, body, headers)["model"]["name"] == first.name, "plain")
        outputs = query_log(
            log_folder(ws),
            "SELECT outputs FROM predictions WHERE kind = 'shadow' AND status = 200 LIMIT 50",
        ).to_pylist()
        assert outputs and all(
            abs(json.loads(r["outputs"])[0]["probabilities"]["1"] - candidate_p) < 1e-9
            for r in outputs
        )
        import httpx

        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=headers).text
        mirrored = {
            outcome: sum(
                float(line.split()[-1])
                for line in metrics.splitlines()
                if line.startswith(f'mlplan_shadow_requests_total{{outcome="{outcome}"}}')
            )
            for outcome in ("scored", "failed", "dropped")
        }
        results["shadow_requests"] = mirrored
        print(
            "shadow: {scored:,.0f} mirrored requests scored, {failed:,.0f} failed, "
            "{dropped:,.0f} dropped (too many in flight)".format(**mirrored)
        )
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    phases = results["phases"]
    summary = {}
    for c in ("8", "32"):

        def median(phase: str, c: str = c) -> float:
            return float(np.median([m["qps"] for m in phases[phase][c]]))

        plain = median("plain")
        canary = median("canary 50%") / plain
        shadow = median("shadow 100%") / plain
        errors = sum(m["non_2xx"] for m in phases["shadow 100%"][c])
        summary[c] = {"canary_qps_ratio": canary, "shadow_qps_ratio": shadow}
        print(
            f"concurrency {c} (medians of {args.rounds} rounds): canary {canary:.3f}x plain QPS "
            f"(goal >= 0.95), full shadow {shadow:.3f}x (goal >= 0.50); non-2xx under shadow "
            f"{errors} (goal 0)"
        )
    results["summary"] = summary
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
