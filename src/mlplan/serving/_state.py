"""What one server process holds while it runs: where traffic goes (the routing: the stable
model and, during a rollout, the candidate, each with its validators and micro-batcher), the
keys, the request ids and the prediction log (set by the lifespan, read by the routes)."""

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
from mlplan.serving._router import RouteFollower, Routing
from mlplan.serving._validate import RecordValidator, TensorValidator
from mlplan.workspace import Workspace

__all__ = ["ServerState"]


class ServerState:
    """The state of one server process; ``app.state.mlplan`` in tests."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.ws: Workspace | None = None  # opened at start-up
        self.routing: Routing | None = None  # once loaded and its batcher started
        self.follower: RouteFollower | None = None  # serving a deployment: follows its rollout
        self.reason: str | None = "loading"  # why it is not ready (shown by the ready routes)
        self.stopping = False
        self.keys: KeyRing | None = None
        self.auth = "api_key"
        self.feedback: FeedbackValidator | None = None
        self.ids: RequestIds | None = None  # signed with the log's key, set with the model
        self.log: PredictionLog | None = None
        self.compactor: LogCompactor | None = None  # started once ready
        self.loaded = threading.Event()  # set once loading ended, ready or not
        self.run_id: str | None = None  # the serve run, once it is recorded
        self.started_at: str | None = None
        self.answers: dict[str, int] = {}  # answers by status family ("2xx" ...)

    @property
    def ready(self) -> bool:
        """The model is loaded and warmed up, and the server is not shutting down."""
        return self.routing is not None and not self.stopping

    @property
    def model(self) -> ServedModel | None:
        """The stable model (the one the server describes), once loaded."""
        return None if self.routing is None else self.routing.stable.model

    @property
    def batcher(self) -> MicroBatcher | None:
        """The stable model's micro-batcher, once started."""
        return None if self.routing is None else self.routing.stable.batcher

    @property
    def records(self) -> RecordValidator | None:
        """The stable model's record validator."""
        return None if self.routing is None else self.routing.stable.records

    @property
    def tensors(self) -> TensorValidator | None:
        """The stable model's tensor validator."""
        return None if self.routing is None else self.routing.stable.tensors
