"""Ray Serve peer for bench_serving.py: one replica with ``@serve.batch``, running the ONNX graph
named on the command line with ONNX Runtime on one thread, behind Serve's HTTP proxy.

bench_serving.py runs it with its own virtualenv's Python (build/bench-ray):

    python ray_serve_app.py model.onnx PORT

It starts a local Ray cluster of its own (``ray.init``, 2 CPUs, no dashboard), serves
POST /predict on 127.0.0.1:PORT and, on SIGINT, shuts Serve and the cluster down (on SIGTERM
too, but Ray's own handler then aborts the process once the cluster is down).
The body is {"records": [{feature: value, ...}, ...]}, as for every server in the benchmark;
the answer is {"predictions": [{"label", "p1"}, ...]}, one per record. Serve batches the
records of concurrent requests into one ONNX Runtime call and splits the answers back.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import numpy as np
import onnxruntime as ort
import ray
from ray import serve
from starlette.requests import Request

# A batch holds at most the benchmark's highest concurrency and waits at most 2 ms to fill;
# a replica takes as many requests at once as the benchmark sends (the default is 5).
MAX_BATCH_SIZE = 32
BATCH_WAIT_TIMEOUT_S = 0.002
MAX_ONGOING_REQUESTS = 64


@serve.deployment(
    num_replicas=1,
    max_ongoing_requests=MAX_ONGOING_REQUESTS,
    logging_config={"enable_access_log": False},
)
class Model:
    """The benchmark's model; each request's records join a batch."""

    def __init__(self, graph: str) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_TIMEOUT_S)
    async def predict(self, batches: list[list[dict[str, float]]]) -> list[list[dict[str, Any]]]:
        """One ONNX Runtime call for the records of every request in the batch."""
        records = [r for b in batches for r in b]
        feeds = {k: np.array([[r[k]] for r in records], dtype=np.float32) for k in self.names}
        labels, proba = self.session.run(None, feeds)
        rows = [
            {"label": str(label), "p1": float(p[1])} for label, p in zip(labels, proba, strict=True)
        ]
        out, start = [], 0
        for b in batches:
            out.append(rows[start : start + len(b)])
            start += len(b)
        return out

    async def __call__(self, request: Request) -> dict[str, Any]:
        records = (await request.json())["records"]
        return {"predictions": await self.predict(records)}


def main() -> None:
    graph, port = sys.argv[1], int(sys.argv[2])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # The cluster lives on loopback: nothing of it listens on another address.
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="warning",
        _node_ip_address="127.0.0.1",
    )
    try:
        serve.start(
            http_options={"host": "127.0.0.1", "port": port},
            logging_config={"enable_access_log": False},
        )
        serve.run(Model.bind(graph), route_prefix="/predict")
        print("ready", flush=True)
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
