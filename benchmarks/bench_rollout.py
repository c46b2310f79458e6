"""Rollouts on the request path: one ``mlplan serve --deployment production`` process, its
QPS and latency measured plain, with a 50 % canary split, with a full-traffic shadow, and with
a full-traffic shadow that raises on every request or takes 10 s per batch; same model pair,
same process, same run.

Two logistic regressions on 20 numeric features (seeds 1 and 2) are trained by mlplan;
logistic-1 serves production. The server follows the store, so the phases are the same
process, in rounds (3 by default): plain (no rollout); a canary of logistic-2 advanced to 50 %
(random routing), rolled back; a shadow of logistic-2 mirroring every request, aborted; the
same shadow raising on every request, aborted; the same shadow taking 10 s per batch, aborted.
Each ratio is of the phases' medians, so that a noisy moment on a 2-core machine weighs on one
round, not on one phase. The log keeps one segment for the whole run (no compaction lands on a
phase).

The faults are injected inside the real server process, where the server loads a rollout's
candidate: the server starts through a small launcher (``_LAUNCHER``) that wraps
``Lifespan._load_arm`` and, for a shadow's arm, swaps its batcher's runner for one that raises,
or sleeps 10 s before answering, as ``shadow-fault.txt`` in the project says when the arm is
loaded; then it runs mlplan's CLI (no product code serves only the benchmark). When a rollout
ends, the next phase waits until the candidate's arm is stopped (the server drops an arm once
its queued requests are answered or timed out) and the shadow's counters are still: the time
from the abort to then is the phase's recovery. A hanging shadow holds at most 256 mirrored
requests (past that, mirrors are dropped); each times out after the request timeout, 10 s.

Load comes from ``wrk`` (Debian's package) on loopback: at concurrency 8 and 32, closed loop
(a connection sends its next request when answered, so at full load p99 follows throughput),
and paced: 8 connections, each waiting 8 / R seconds after an answer, R being half of the plain
QPS at concurrency 32 in the first round (the same wait in every phase and round). wrk has no
fixed rate (wrk2 has; Debian does not package it) and ``mlplan loadtest`` is a closed loop too,
so the pacing is wrk's ``delay()``: the connections offer R less what the answers' own latency
takes (each run's QPS says what was sent), and a stall is under-counted (coordinated
omission). Validation, acked logging and metrics are on. The answers are checked: in the
canary each answer's probability is the one its named model gives (logistic-2's through
``/v1/preview``); the shadow's logged outputs are logistic-2's; the raising shadow's records
are 500s and the hanging one's 504s.

Goals (issue 14): canary routing costs under 5 % of QPS; a full-traffic shadow under 50 %,
never on the client's path (0 non-2xx answers); a shadow that raises on every request, or
takes 10 s, causes 0 client errors (non-2xx answers and wrk's socket errors, timeouts
included) and adds at most 5 % to client p99. That p99 is compared with the healthy full
shadow's, the same mirrored share in the same rounds (a faulty shadow is to cost no more than
a working one), and shown against plain.

The JSON holds each phase's runs per load (``8``, ``32``, ``paced``); for the shadows, per
round, the mirrored requests by outcome (``mlplan_shadow_requests_total``, from the phase's
start to its arm's stop) and the recovery in seconds; and the summary. Figures for quoting
come from a quiet machine: on one shared with other work, p99 moves more than 5 % by itself.

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

HANG_SECONDS = 10

# ``mlplan serve`` with a fault in the shadow's arm: the real command, with only the runner of
# a shadow's batcher swapped as the project's shadow-fault.txt says when the arm is loaded
# (none, raise, hang). It says on its output when it loads and stops a candidate's arm.
_LAUNCHER = r"""
import runpy, sys, time
from pathlib import Path
from mlplan.serving._lifespan import Lifespan

load_arm = Lifespan._load_arm


def runner(fault, run):
    if fault == "raise":
        def raises(feeds):
            raise RuntimeError("bench: the shadow raises on every request")
        return raises

    def hangs(feeds):
        time.sleep(HANG_SECONDS)
        return run(feeds)
    return hangs


async def faulty_load_arm(self, ref, shadow):
    arm = await load_arm(self, ref, shadow)
    fault = Path("shadow-fault.txt").read_text().strip() if shadow else "none"
    if fault != "none":
        arm.batcher._run = runner(fault, arm.batcher._run)
    stop = arm.batcher.stop

    async def stopped():
        await stop()
        print(f"bench: {ref} stopped", flush=True)

    arm.batcher.stop = stopped
    print(f"bench: {ref} loaded, shadow {shadow}, fault {fault}", flush=True)
    return arm


Lifespan._load_arm = faulty_load_arm
sys.argv = ["mlplan", *sys.argv[1:]]
runpy.run_module("mlplan", run_name="__main__", alter_sys=True)
""".replace("HANG_SECONDS", str(HANG_SECONDS))

SHADOWS = {"shadow 100%": "none", "shadow raises": "raise", "shadow hangs 10 s": "hang"}
"""The shadow phases and the fault of each."""

LOADS = ("8", "32", "paced")


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


def _shadow_counts(base: str, headers: dict[str, str]) -> dict[str, float]:
    """``mlplan_shadow_requests_total`` by outcome, from the server's /metrics."""
    import httpx

    metrics = httpx.get(f"{base}/metrics", headers=headers, timeout=10).text
    return {
        outcome: sum(
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith(f'mlplan_shadow_requests_total{{outcome="{outcome}"}}')
        )
        for outcome in ("scored", "failed", "dropped")
    }


def _still(base: str, headers: dict[str, str]) -> dict[str, float]:
    """The shadow's counters once they stay the same for half a second (its last mirrors
    counted)."""
    last = _shadow_counts(base, headers)
    deadline = time.time() + 60
    while time.time() < deadline:
        time.sleep(0.5)  # a benchmark waiting for the last mirrors to be counted
        now = _shadow_counts(base, headers)
        if now == last:
            return now
        last = now
    raise SystemExit("the shadow's counters never settled")


class _Output:
    """The server's output, a file: how many lines hold a text, waited on."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def count(self, text: str) -> int:
        return sum(text in line for line in self.path.read_text().splitlines())

    def wait(self, text: str, before: int) -> None:
        _until(lambda: self.count(text) > before, f"{text!r} in {self.path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/bench_rollout.json"))
    args = parser.parse_args()
    wrk = _ensure_wrk()

    from mlplan.evaluation import evaluate
    from mlplan.modeling import get_model, train_model
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
    candidate = get_model(ws, second.name).ref  # the package version a server loads
    start_rollout(ws, first.name, strategy="replace", allow_failed_gates=True, by="bench")
    token = create_key(ws, "bench", roles=["predict", "admin"]).token
    record = {
        f: float(v) for f, v in zip(FEATURES, np.random.default_rng(1).normal(size=20), strict=True)
    }
    body = json.dumps({"records": [record]})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    port = _port()
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/v1/predict"
    env = {k: v for k, v in os.environ.items() if k != "MLPLAN_STORE_URL"}
    fault_file = ws.root / "shadow-fault.txt"
    fault_file.write_text("none")
    output = _Output(work / "server.log")
    with output.path.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, "serve", "--deployment", "production",
             "--port", str(port)],
            cwd=ws.root, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    results: dict[str, Any] = {
        "seconds": args.seconds, "rounds": args.rounds, "hang_seconds": HANG_SECONDS,
        "phases": {},
    }  # fmt: skip
    paced: dict[str, float] = {}  # the paced load's rate and delay, set in the first round

    def measure(phase: str, round_: int, loads: tuple[str, ...] = LOADS) -> None:
        runs = results["phases"].setdefault(phase, {})
        for load in loads:
            if load == "paced":
                if not paced:
                    rate = 0.5 * results["phases"]["plain"]["32"][0]["qps"]
                    paced.update(rate=rate, delay_ms=8 / rate * 1000)
                    results["paced"] = {"connections": 8, **paced}
                measured = _wrk(wrk, url, body, headers, 8, args.seconds,
                                delay_ms=paced["delay_ms"])  # fmt: skip
            else:
                measured = _wrk(wrk, url, body, headers, int(load), args.seconds)
            runs.setdefault(load, []).append(measured)
            print(f"{phase + f' (round {round_})':<32}{load:>6}{measured['qps']:>10,.0f}"
                  f"{measured['p50_ms']:>9.2f}{measured['p99_ms']:>9.2f}"
                  f"{measured['non_2xx'] + measured['socket_errors']:>8}")  # fmt: skip

    def move(action: str, by: str = "bench") -> None:
        kind = "controller" if action in ("start", "advance") else "person"
        move_rollout(ws, "production", action, by=by, actor_kind=kind)  # type: ignore[arg-type]

    def end(action: str) -> float:
        """Roll back or abort, and wait until the candidate's arm is stopped; the seconds
        that took."""
        stopped = output.count(f"bench: {candidate} stopped")
        began = time.perf_counter()
        move(action)
        output.wait(f"bench: {candidate} stopped", stopped)
        return time.perf_counter() - began

    def shadow(phase: str, fault: str, round_: int) -> None:
        """A full shadow of logistic-2 with ``fault``: measured, aborted, waited out."""
        fault_file.write_text(fault)
        mirrored = output.count(f"mirrored to {candidate}")
        loaded = output.count(f"bench: {candidate} loaded, shadow True, fault {fault}")
        start_rollout(ws, second.name, strategy="shadow", allow_failed_gates=True, by="bench")
        move("start")
        output.wait(f"bench: {candidate} loaded, shadow True, fault {fault}", loaded)
        output.wait(f"mirrored to {candidate}", mirrored)
        if fault == "none":
            before = int(query_log(log_folder(ws), shadow_sql).to_pylist()[0]["n"])

            def shadowed(before: int = before) -> bool:
                _answer(url, body, headers)
                return int(query_log(log_folder(ws), shadow_sql).to_pylist()[0]["n"]) > before

            _until(shadowed, "a shadow record")
        counted = _still(base, headers)
        measure(phase, round_)
        recovery = end("abort")
        after = _still(base, headers)
        outcomes = {k: after[k] - counted[k] for k in after}
        runs = results["phases"][phase]
        runs.setdefault("shadow_requests", []).append(outcomes)
        runs.setdefault("recovery_s", []).append(recovery)
        print(f"{'':<32}mirrors: {outcomes['scored']:,.0f} scored, {outcomes['failed']:,.0f} "
              f"failed, {outcomes['dropped']:,.0f} dropped; arm stopped {recovery:.1f} s after "
              "the abort")  # fmt: skip

    shadow_sql = "SELECT count(*) AS n FROM predictions WHERE kind = 'shadow'"
    try:
        _wait_http(url, body=body.encode(), headers=headers)
        stable_p = _answer(url, body, headers)["predictions"][0]["probabilities"]["1"]
        preview = f"{base}/v1/preview"
        print(
            f"bench_rollout: one server, {args.rounds} rounds of plain / canary / shadow / "
            f"shadow raising / shadow taking {HANG_SECONDS} s, {args.seconds} s per run, wrk on "
            "loopback at 8 and 32 connections and paced (8 connections, half the plain QPS)"
        )
        print(f"{'phase':<32}{'load':>6}{'QPS':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
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
            measure("canary 50%", round_, ("8", "32"))
            end("rollback")
            for phase, fault in SHADOWS.items():
                shadow(phase, fault, round_)
            _until(lambda: _answer(url, body, headers)["model"]["name"] == first.name, "plain")
        outputs = query_log(
            log_folder(ws),
            "SELECT outputs FROM predictions WHERE kind = 'shadow' AND status = 200 LIMIT 50",
        ).to_pylist()
        assert outputs and all(
            abs(json.loads(r["outputs"])[0]["probabilities"]["1"] - candidate_p) < 1e-9
            for r in outputs
        )
        statuses = {
            int(r["status"]): int(r["n"])
            for r in query_log(
                log_folder(ws),
                "SELECT status, count(*) AS n FROM predictions WHERE kind = 'shadow' "
                "GROUP BY status",
            ).to_pylist()
        }
        assert {500, 504} <= set(statuses) <= {200, 500, 504}, statuses
        raised = query_log(
            log_folder(ws),
            "SELECT count(*) AS n FROM predictions WHERE kind = 'shadow' AND status = 500 "
            "AND error LIKE '%the shadow raises on every request%'",
        ).to_pylist()[0]["n"]
        assert raised == statuses[500], (raised, statuses)
        results["shadow_records"] = {str(k): v for k, v in sorted(statuses.items())}
        mirrored = _shadow_counts(base, headers)
        results["shadow_requests"] = mirrored
        print(
            "shadows, in all: {scored:,.0f} mirrored requests scored, {failed:,.0f} failed, "
            "{dropped:,.0f} dropped (too many in flight)".format(**mirrored)
        )
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    results["summary"] = _summary(results["phases"], args.rounds)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")


def _summary(phases: dict[str, Any], rounds: int) -> dict[str, Any]:
    """The goals' figures per load, from the medians over the rounds; printed."""

    def median(phase: str, load: str, field: str) -> float:
        return float(np.median([m[field] for m in phases[phase][load]]))

    def errors(phase: str, load: str) -> int:
        return sum(m["non_2xx"] + m["socket_errors"] for m in phases[phase][load])

    summary: dict[str, Any] = {}
    for load in LOADS:
        figures: dict[str, Any] = {}
        plain = median("plain", load, "qps")
        if load in phases["canary 50%"]:
            figures["canary_qps_ratio"] = median("canary 50%", load, "qps") / plain
        figures["shadow_qps_ratio"] = median("shadow 100%", load, "qps") / plain
        figures["shadow_client_errors"] = errors("shadow 100%", load)
        healthy_p99 = median("shadow 100%", load, "p99_ms")
        plain_p99 = median("plain", load, "p99_ms")
        for phase, fault in SHADOWS.items():
            if fault == "none":
                continue
            p99 = median(phase, load, "p99_ms")
            figures[fault] = {
                "client_errors": errors(phase, load),
                "p99_ms": p99,
                "p99_ratio_to_healthy_shadow": p99 / healthy_p99,
                "p99_ratio_to_plain": p99 / plain_p99,
            }
        summary[load] = figures
        if load == "paced":  # the rate is the load's, not the server's: no QPS goal
            print(
                f"paced, {median('plain', load, 'qps'):,.0f} QPS plain (medians of {rounds} "
                f"rounds): full shadow client errors {figures['shadow_client_errors']} (goal 0)"
            )
        else:
            canary = figures["canary_qps_ratio"]
            print(
                f"concurrency {load} (medians of {rounds} rounds): canary {canary:.3f}x plain "
                f"QPS (goal >= 0.95), full shadow {figures['shadow_qps_ratio']:.3f}x (goal >= "
                f"0.50), client errors {figures['shadow_client_errors']} (goal 0)"
            )
        for fault in ("raise", "hang"):
            f = figures[fault]
            print(
                f"  shadow that {'raises' if fault == 'raise' else f'takes {HANG_SECONDS} s'}: "
                f"client errors {f['client_errors']} (goal 0), p99 {f['p99_ms']:.2f} ms = "
                f"{f['p99_ratio_to_healthy_shadow']:.3f}x the healthy shadow's (goal <= 1.05), "
                f"{f['p99_ratio_to_plain']:.3f}x plain's"
            )
    shadows = {
        phase: {
            "shadow_requests": {
                k: sum(r[k] for r in phases[phase]["shadow_requests"])
                for k in ("scored", "failed", "dropped")
            },
            "recovery_s_max": max(phases[phase]["recovery_s"]),
        }
        for phase in SHADOWS
    }
    summary["shadows"] = shadows
    for phase, figures in shadows.items():
        n = figures["shadow_requests"]
        print(
            f"{phase}, mirrors in all: {n['scored']:,.0f} scored, {n['failed']:,.0f} failed, "
            f"{n['dropped']:,.0f} dropped; the arm stopped at most "
            f"{figures['recovery_s_max']:.1f} s after the abort"
        )
    return summary


if __name__ == "__main__":
    main()
