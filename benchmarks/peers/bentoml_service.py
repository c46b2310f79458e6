"""BentoML peer for bench_serving.py: one service, one worker, adaptive batching on, running the
ONNX graph named by BENCH_ONNX_GRAPH with ONNX Runtime on one thread.

bench_serving.py starts it from its own virtualenv (build/bench-bentoml):

    BENCH_ONNX_GRAPH=model.onnx bentoml serve bentoml_service:Model --host 127.0.0.1 --port N

POST /predict takes {"records": [{feature: value, ...}, ...]}, the body every server in the
benchmark gets; the answer is a list of {"label", "p1"}, one per record. BentoML batches the
records of concurrent requests into one ONNX Runtime call and splits the answers back.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
import numpy as np
import onnxruntime as ort

# A batch holds at most the benchmark's highest concurrency; the latency budget is wide enough
# that the dispatcher never refuses a request under load (BentoML answers 503 past it).
MAX_BATCH_SIZE = 32
MAX_LATENCY_MS = 1000


@bentoml.service(workers=1, logging={"access": {"enabled": False}}, traffic={"timeout": 30})
class Model:
    """The benchmark's model behind a batchable API."""

    def __init__(self) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(
            os.environ["BENCH_ONNX_GRAPH"], options, providers=["CPUExecutionProvider"]
        )
        self.names = [i.name for i in self.session.get_inputs()]

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, records: list[dict[str, float]]) -> list[dict[str, Any]]:
        """Label and probability of class 1 for each record, in order."""
        feeds = {k: np.array([[r[k]] for r in records], dtype=np.float32) for k in self.names}
        labels, proba = self.session.run(None, feeds)
        return [
            {"label": str(label), "p1": float(p[1])} for label, p in zip(labels, proba, strict=True)
        ]
