"""What one server process holds while it runs: the model and its validators, the keys, the
request ids, the prediction log and the micro-batcher (set by the lifespan, read by the
routes)."""

from __future__ import annotations

import threading

from mlplan.serving._batcher import MicroBatcher
from mlplan.serving._compactor import LogCompactor
from mlplan.serving._config import ServeConfig
from mlplan.serving._feedback import FeedbackValidator
from mlplan.serving._ids import RequestIds
from mlplan.serving._keys import KeyRing
from mlplan.serving._log import PredictionLog
from mlplan.serving._model import ServedModel
from mlplan.serving._validate import RecordValidator, TensorValidator
from mlplan.workspace import Workspace

__all__ = ["ServerState"]


class ServerState:
    """The state of one server process; ``app.state.mlplan`` in tests."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.ws: Workspace | None = None  # opened at start-up
        self.model: ServedModel | None = None
        self.reason: str | None = "loading"  # why it is not ready (shown by the ready routes)
        self.stopping = False
        self.keys: KeyRing | None = None
        self.auth = "api_key"
        self.records: RecordValidator | None = None
        self.tensors: TensorValidator | None = None
        self.feedback: FeedbackValidator | None = None
        self.ids: RequestIds | None = None  # signed with the log's key, set with the model
        self.log: PredictionLog | None = None
        self.compactor: LogCompactor | None = None  # started once ready
        self.batcher: MicroBatcher | None = None
        self.loaded = threading.Event()  # set once loading ended, ready or not
        self.run_id: str | None = None  # the serve run, once it is recorded
        self.started_at: str | None = None
        self.answers: dict[str, int] = {}  # answers by status family ("2xx" ...)

    @property
    def ready(self) -> bool:
        """The model is loaded and warmed up, and the server is not shutting down."""
        return self.model is not None and self.batcher is not None and not self.stopping
