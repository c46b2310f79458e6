"""Serving: mlplan serve vs ``mlflow models serve`` vs a minimal FastAPI app calling ONNX
Runtime, same model, same machine, same run; and batch scoring vs a bare ONNX Runtime loop.

The model is a logistic regression trained by mlplan on 20 numeric features: mlplan serves
its ONNX package; the minimal app runs the same ONNX graph; MLflow serves the same fitted
scikit-learn pipeline (the package's native copy). Load comes from ``wrk`` (Debian's
package) on loopback at concurrency 1, 8 and 32, one worker process each. mlplan runs with
validation, acked logging (fsync before every answer) and metrics on. The answers of the
three servers are checked to agree on the same record first.

MLflow lives in its own virtual environment (``build/bench-mlflow``, made on first run), so
its pins never touch mlplan's.

    python benchmarks/bench_serving.py [--seconds 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MLFLOW_VENV = ROOT / "build" / "bench-mlflow"
FEATURES = [f"x{i:02d}" for i in range(20)]


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is needed: apt-get install wrk")
    return found


def _ensure_mlflow() -> Path:
    python = MLFLOW_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        import sklearn

        # The same scikit-learn as mlplan's, so MLflow loads the very pipeline mlplan fitted.
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "mlflow==3.17.2",
             f"scikit-learn=={sklearn.__version__}"],
            check=True,
        )  # fmt: skip
    return python


def _project(folder: Path) -> tuple[Any, Any]:
    """An mlplan project with a logistic regression on 20 features; (workspace, model)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from mlplan.data import register_dataset, split_dataset
    from mlplan.modeling import train_model
    from mlplan.plan import render_plan
    from mlplan.workspace import Workspace

    rng = np.random.default_rng(7)
    n = 20_000
    x = rng.normal(size=(n, 20))
    y = (x @ rng.normal(size=20) + rng.normal(size=n) > 0).astype(np.int64)
    table = pa.table({"id": np.arange(n), **{f: x[:, i] for i, f in enumerate(FEATURES)}, "y": y})
    (folder / "data").mkdir(parents=True)
    pcsv.write_csv(table, folder / "data" / "main.csv")
    plan = render_plan("bench", task="binary", target="y")
    plan = plan.replace("    id_column: null", "    id_column: id")
    (folder / "mlplan.yaml").write_text(plan)
    ws = Workspace(folder)
    register_dataset(ws, "main")
    split_dataset(ws, "main", seed=1)
    return ws, train_model(ws, family="logistic")


MINIMAL_APP = textwrap.dedent(
    """
    import numpy as np, onnxruntime as ort
    from fastapi import FastAPI, Request
    options = ort.SessionOptions(); options.intra_op_num_threads = 1
    session = ort.InferenceSession({graph!r}, options, providers=["CPUExecutionProvider"])
    app = FastAPI()
    @app.post("/predict")
    async def predict(request: Request):
        records = (await request.json())["records"]
        feeds = {{k: np.array([[r[k]] for r in records], dtype=np.float32) for k in {names!r}}}
        labels, proba = session.run(None, feeds)
        return {{"predictions": [{{"label": str(l), "p1": float(p[1])}}
                                 for l, p in zip(labels, proba)]}}
    """
)


def _wait_http(
    url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
) -> None:
    import httpx

    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            answer = (
                httpx.post(url, content=body, headers=headers, timeout=2)
                if body is not None
                else httpx.get(url, timeout=2)
            )
            if answer.status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)  # a benchmark waiting for a server to come up, not a test
    raise SystemExit(f"{url} did not come up")


def _wrk(
    wrk: str, url: str, body: str, headers: dict[str, str], connections: int, seconds: int
) -> dict[str, float]:
    lines = ["wrk.method = 'POST'", f"wrk.body = {json.dumps(body)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines) + "\n")
    out = subprocess.run(
        [wrk, "-t", "1" if connections == 1 else "2", "-c", str(connections), "-d", f"{seconds}s",
         "--latency", "-s", script.name, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    Path(script.name).unlink()

    def ms(label: str) -> float:
        found = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", out, flags=re.M)
        assert found, out
        value, unit = float(found.group(1)), found.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    qps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"qps": qps, "p50_ms": ms("50"), "p99_ms": ms("99"),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/bench_serving.json"))
    args = parser.parse_args()
    wrk = _ensure_wrk()
    mlflow_python = _ensure_mlflow()

    import httpx

    from mlplan.serving import create_key

    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    ws, model = _project(work / "project")
    graph = str(ws.store.artifacts.path(model.package["model.onnx"]))
    native = ws.store.artifacts.path(model.package["native.pkl"])
    token = create_key(ws, "bench", roles=["predict"]).token
    record = {
        f: float(v) for f, v in zip(FEATURES, np.random.default_rng(1).normal(size=20), strict=True)
    }
    results: dict[str, Any] = {"seconds": args.seconds, "servers": {}}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        # mlplan: validation, acked logging and metrics on (the plan's defaults).
        port = _port()
        env = {k: v for k, v in os.environ.items() if k != "MLPLAN_STORE_URL"}
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "mlplan", "serve", model.name, "--port", str(port)],
            cwd=ws.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        mlplan_url = f"http://127.0.0.1:{port}/v1/predict"
        # The minimal FastAPI app over the same ONNX graph.
        app_file = work / "minimal_app.py"
        app_file.write_text(MINIMAL_APP.format(graph=graph, names=FEATURES))
        minimal_port = _port()
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "minimal_app:app", "--port", str(minimal_port),
             "--log-level", "warning", "--no-access-log"],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        minimal_url = f"http://127.0.0.1:{minimal_port}/predict"
        # MLflow over the same fitted pipeline.
        mlflow_model = work / "mlflow-model"
        subprocess.run(
            [str(mlflow_python), "-c", textwrap.dedent(f"""
                import pickle, mlflow.sklearn
                pipe = pickle.loads(open({str(native)!r}, "rb").read())
                mlflow.sklearn.save_model(pipe, {str(mlflow_model)!r},
                                          skops_trusted_types=["numpy.dtype"])
            """)],
            check=True,
        )  # fmt: skip
        mlflow_port = _port()
        processes.append(subprocess.Popen(
            [str(MLFLOW_VENV / "bin" / "mlflow"), "models", "serve", "-m", str(mlflow_model),
             "-p", str(mlflow_port), "--env-manager", "local", "-w", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # MLflow starts `uvicorn` by name: its own venv's comes first on the PATH.
            env=os.environ | {"PATH": f"{MLFLOW_VENV / 'bin'}:{os.environ.get('PATH', '')}"},
        ))  # fmt: skip
        mlflow_url = f"http://127.0.0.1:{mlflow_port}/invocations"

        servers = {
            "mlplan": (mlplan_url, json.dumps({"records": [record]}),
                       {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}),
            "minimal FastAPI + ONNX Runtime": (minimal_url, json.dumps({"records": [record]}),
                                               {"Content-Type": "application/json"}),
            "mlflow models serve": (mlflow_url,
                                    json.dumps({"dataframe_records": [record]}),
                                    {"Content-Type": "application/json"}),
        }  # fmt: skip
        answers = {}
        for name, (url, body, headers) in servers.items():
            _wait_http(url, body=body.encode(), headers=headers)
            answers[name] = httpx.post(url, content=body, headers=headers, timeout=10).json()
        p_mlplan = answers["mlplan"]["predictions"][0]["probabilities"]["1"]
        p_minimal = answers["minimal FastAPI + ONNX Runtime"]["predictions"][0]["p1"]
        label_mlflow = str(answers["mlflow models serve"]["predictions"][0])
        assert abs(p_mlplan - p_minimal) < 1e-6, (p_mlplan, p_minimal)
        assert label_mlflow == answers["mlplan"]["predictions"][0]["label"], answers
        print(f"bench_serving: same model on three servers (answers agree), {args.seconds} s "
              "per run, wrk on loopback, one worker each")  # fmt: skip
        print(f"{'server':<32}{'conc':>5}{'QPS':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
        for name, (url, body, headers) in servers.items():
            for connections in (1, 8, 32):
                measured = _wrk(wrk, url, body, headers, connections, args.seconds)
                results["servers"].setdefault(name, {})[str(connections)] = measured
                print(f"{name:<32}{connections:>5}{measured['qps']:>10,.0f}{measured['p50_ms']:>9.2f}"
                      f"{measured['p99_ms']:>9.2f}{measured['non_2xx']:>9}")  # fmt: skip
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    s = results["servers"]
    for c in ("8", "32"):
        mine = s["mlplan"][c]["qps"]
        print(f"concurrency {c}: mlplan {mine / s['mlflow models serve'][c]['qps']:.1f}x MLflow "
              f"(goal >= 20x), {mine / s['minimal FastAPI + ONNX Runtime'][c]['qps']:.2f}x the "
              "minimal app (goal >= 1x)")  # fmt: skip
    print(f"p99 at concurrency 32: {s['mlplan']['32']['p99_ms']:.1f} ms (goal < 20 ms)")
    results["batch"] = _batch(ws, model, work)
    b = results["batch"]
    print(
        f"batch scoring {b['rows']:,} rows: mlplan {b['mlplan_rows_per_s']:,.0f} rows/s, bare "
        f"ONNX Runtime loop {b['bare_rows_per_s']:,.0f} rows/s: {b['ratio']:.2f}x (goal >= 0.8x)"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")


def _batch(ws: Any, model: Any, work: Path) -> dict[str, Any]:
    """mlplan score vs a bare loop (read a chunk, run ONNX Runtime, write the result) on the
    same 1,000,000-row Parquet file; best of three each."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    from mlplan.serving import load_served_model, score_file

    rng = np.random.default_rng(3)
    n = 1_000_000
    source = work / "score.parquet"
    pq.write_table(
        pa.table({"id": np.arange(n), **{f: rng.normal(size=n) for f in FEATURES}}), source
    )
    served = load_served_model(ws, model.name)

    def bare() -> float:
        start = time.perf_counter()
        writer = None
        for batch in pads.dataset(source).to_batches(batch_size=65_536):
            feeds = {
                f: pc.cast(batch.column(f), pa.float32()).to_numpy().reshape(-1, 1)
                for f in FEATURES
            }
            labels, proba = served.session.run(None, feeds)
            out = pa.table(
                {"id": batch.column("id"), "label": pa.array(labels.ravel()), "p_1": proba[:, 1]}
            )
            writer = writer or pq.ParquetWriter(work / "bare.parquet", out.schema)
            writer.write_table(out)
        assert writer is not None
        writer.close()
        return n / (time.perf_counter() - start)

    def ours() -> float:
        start = time.perf_counter()
        score_file(ws, model.name, source, work / "scored.parquet")
        return n / (time.perf_counter() - start)

    bare_best = max(bare() for _ in range(3))
    ours_best = max(ours() for _ in range(3))
    mine = pq.read_table(work / "scored.parquet", columns=["p_1"]).column(0).to_numpy()
    theirs = pq.read_table(work / "bare.parquet", columns=["p_1"]).column(0).to_numpy()
    assert np.allclose(mine, theirs), "batch results disagree"
    return {"rows": n, "mlplan_rows_per_s": ours_best, "bare_rows_per_s": bare_best,
            "ratio": ours_best / bare_best}  # fmt: skip


if __name__ == "__main__":
    main()
