"""Replicas on other machines: servers of one deployment, each in a project folder of its own,
sharing one PostgreSQL store, each apply every move of a rollout from the store on their own,
within 2 s of the move's commit (issue #14 part 6); one cut off from the store keeps serving
as it was and follows again once the store is back."""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from tests.serving.conftest import RECORD, bearer, server_process

from mlplan.modeling import get_model, list_models
from mlplan.rollout import move_rollout, start_rollout
from mlplan.serving import create_key
from mlplan.serving._log import log_key
from mlplan.serving._router import bucket_of
from mlplan.store import Base, open_store
from mlplan.workspace import Workspace, get_deployment

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

APPLIED_WITHIN = 2.0  # seconds from a move's commit to every replica routing by it (#14)


@pytest.fixture
def team(live: Workspace, postgres: Any) -> Iterator[Workspace]:
    """``live`` on a PostgreSQL database of its own (its SQLite store copied row for row:
    training the models again there would take longer than the tests), callers routed by
    their X-User-Id header."""
    if postgres.error:
        pytest.fail(f"PostgreSQL could not be started: {postgres.error}", pytrace=False)
    text = live.plan_path.read_text()
    live.plan_path.write_text(text.replace("  sticky: null", "  sticky: header:X-User-Id", 1))
    url = postgres.new_database()
    target = open_store(live.root, url=url)  # made, and migrated to head
    try:
        with live.store.engine.connect() as read, target.engine.begin() as write:
            for table in Base.metadata.sorted_tables:
                rows = [dict(row._mapping) for row in read.execute(sa.select(table))]
                if not rows:
                    continue
                write.execute(table.insert(), rows)
                if "id" in table.c and isinstance(table.c.id.type, sa.Integer):
                    write.execute(
                        sa.text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                            f"(SELECT max(id) FROM {table.name}))"
                        )
                    )
    finally:
        target.close()
    ws = Workspace(live.root, store_url=url)
    # The prediction log's key, made once: every replica holds a copy.
    log_key(live.root / ".mlplan" / "predictions" / "logistic-1")
    yield ws
    ws.close()


def _replica(ws: Workspace, folder: Path) -> Path:
    """What a replica on another machine holds of the project: the plan, the files of the
    model packages it may serve (of every artifact, only those; or a folder every replica
    reaches, MLPLAN_ARTIFACTS_DIR), and the prediction log's key, so that a request id one
    replica issued verifies on every other. No store: that is the PostgreSQL database they
    share."""
    folder.mkdir()
    shutil.copy2(ws.plan_path, folder / "mlplan.yaml")
    artifacts = ws.store.artifacts
    for model in list_models(ws, versions=True):
        for sha256 in model.package.values():
            copy = folder / artifacts.path(sha256).relative_to(ws.root)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(artifacts.path(sha256), copy)
    key = Path(".mlplan", "predictions", "logistic-1", ".pii-key")
    (folder / key).parent.mkdir(parents=True)
    shutil.copy2(ws.root / key, folder / key)
    return folder


@contextlib.contextmanager
def _servers(folders: list[Path], urls: list[str]) -> Iterator[list[tuple[Any, str]]]:
    """``mlplan serve --deployment production`` in each folder, on the store at the URL
    beside it, started side by side (a start is mostly imports); each yielded with its
    base URL."""
    with contextlib.ExitStack() as stack:
        managers = [
            server_process(folder, "--deployment", "production", env={"MLPLAN_STORE_URL": url})
            for folder, url in zip(folders, urls, strict=True)
        ]
        with ThreadPoolExecutor(len(managers)) as pool:
            entering = [pool.submit(manager.__enter__) for manager in managers]
        for manager, entered in zip(managers, entering, strict=True):
            if entered.exception() is None:
                stack.push(manager)  # stopped at the end, whatever happens
        yield [entered.result() for entered in entering]


class _Output:
    """A server's output, read as it comes, each line with the moment it was read."""

    def __init__(self, process: Any) -> None:
        self.lines: list[tuple[float, str]] = []
        threading.Thread(target=self._read, args=(process.stdout,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        with contextlib.suppress(ValueError, OSError):  # closed as the server is stopped
            for line in stream:
                self.lines.append((time.monotonic(), line.rstrip()))

    def said(self, text: str, since: float) -> float | None:
        """When the server printed a line holding ``text`` at ``since`` or later (None: not
        yet)."""
        return next((t for t, line in list(self.lines) if t >= since and text in line), None)

    def wait_for(self, text: str, since: float, what: str) -> float:
        """When the server printed ``text`` (since ``since``), waiting up to 30 s for it."""
        deadline = time.monotonic() + 30
        while (at := self.said(text, since)) is None:
            if time.monotonic() > deadline:
                said = "\n".join(line for _, line in self.lines)
                raise AssertionError(f"no {text!r} after {what}; the server said:\n{said}")
            time.sleep(0.01)
        return at


def _user(low: float, high: float) -> str:
    """A caller whose sticky bucket is in [low, high): on the candidate from that weight."""
    return next(u for u in (f"user-{i}" for i in range(10_000)) if low <= bucket_of(u) < high)


CALLERS = {5: _user(0, 5), 25: _user(5, 25), 100: _user(50, 100)}
"""Callers on the candidate from 5 %, from 25 %, and only at 100 %."""


class _Replica:
    """A running replica as a client sees it: which model answers each caller, and which
    the preview does (the rollout's candidate, None without one)."""

    def __init__(self, http: httpx.Client, process: Any, url: str) -> None:
        self.http, self.url, self.output = http, url, _Output(process)

    def answers(self) -> dict[int, str]:
        got = {}
        for weight, user in CALLERS.items():
            answer = self.http.post(
                f"{self.url}/v1/predict", json={"records": [RECORD]}, headers={"X-User-Id": user}
            )
            assert answer.status_code == 200, answer.text
            got[weight] = answer.json()["model"]["name"]
        return got

    def preview(self) -> str | None:
        answer = self.http.post(f"{self.url}/v1/preview", json={"records": [RECORD]})
        return answer.json()["model"]["name"] if answer.status_code == 200 else None


ONE = dict.fromkeys(CALLERS, "logistic-1")
TWO = dict.fromkeys(CALLERS, "logistic-2")


def test_replicas_sharing_a_postgresql_store_each_apply_every_move_within_2_s(
    team: Workspace, tmp_path: Path
) -> None:
    ws = team
    token = create_key(ws, "app", roles=["predict", "feedback", "admin"]).token
    folders = [_replica(ws, tmp_path / f"replica-{i}") for i in range(3)]
    blue, green = get_deployment(ws).model_ref, get_model(ws, "logistic-2").ref
    took: dict[str, list[float]] = {}
    with (
        httpx.Client(headers=bearer(token), timeout=30) as http,
        _servers(folders, [ws.store.engine.url.render_as_string(False)] * 3) as servers,
    ):
        replicas = [_Replica(http, process, url) for process, url in servers]

        def moved(
            what: str, move: Callable[[], object], routes: str, expect: dict[int, str]
        ) -> None:
            """Make ``move``: every replica says it routes ``routes`` (how long after is
            kept in ``took``), and answers its callers as ``expect`` says."""
            before = time.monotonic()
            move()
            for replica in replicas:
                took.setdefault(what, []).append(
                    replica.output.wait_for(routes, before, what) - before
                )
                assert replica.answers() == expect, (what, replica.url)

        def controller(action: str) -> Callable[[], object]:
            return lambda: move_rollout(
                ws,
                "production",
                action,  # type: ignore[arg-type]
                by="controller",
                actor_kind="controller",
            )

        for replica in replicas:
            assert replica.answers() == ONE and replica.preview() is None
        # A canary of logistic-2: loaded on every replica as it is started, then its steps.
        moved(
            "canary started",
            lambda: start_rollout(ws, "logistic-2", strategy="canary", by="Ana"),
            f"({green} loaded, pending)",
            ONE,
        )
        assert {replica.preview() for replica in replicas} == {"logistic-2"}
        moved("start", controller("start"), f"({green} loaded, progressing)", ONE)
        moved(
            "5 %", controller("advance"), f"95% to {blue}, 5% to {green}", ONE | {5: "logistic-2"}
        )
        moved(
            "25 %",
            controller("advance"),
            f"75% to {blue}, 25% to {green}",
            TWO | {100: "logistic-1"},
        )
        moved(
            "promotion",
            lambda: move_rollout(ws, "production", "promote", by="Ana"),
            f"every request to {green}",
            TWO,
        )
        assert {replica.preview() for replica in replicas} == {None}
        # Then logistic-1 back, blue-green: the switch, and a rollback.
        moved(
            "blue-green started",
            lambda: start_rollout(ws, "logistic-1", strategy="blue-green", by="Ana"),
            f"({blue} loaded, pending)",
            TWO,
        )
        controller("start")()
        moved("switch", controller("advance"), f"0% to {green}, 100% to {blue}", ONE)
        moved(
            "rollback",
            lambda: move_rollout(ws, "production", "rollback", by="Ana", note="instant"),
            f"every request to {green}",
            TWO,
        )
        assert {replica.preview() for replica in replicas} == {None}
        # Feedback reaches any replica: a request id one issued verifies on another.
        answered = http.post(f"{replicas[0].url}/v1/predict", json={"records": [RECORD]})
        feedback = http.post(
            f"{replicas[2].url}/v1/feedback",
            json={"request_id": answered.json()["request_id"], "label": 1},
        )
        assert feedback.status_code == 202, feedback.text
    # Every move of traffic is one read of the store a second away, the candidate loaded as
    # its rollout started (a load, whose time is the package's, is not held to the bound).
    late = {
        what: max(seconds)
        for what, seconds in took.items()
        if "started" not in what and max(seconds) >= APPLIED_WITHIN
    }
    assert not late, f"a replica applied a move {APPLIED_WITHIN} s or more after it: {took}"


class _Link:
    """A TCP link to PostgreSQL that the test cuts (every connection reset, new ones
    refused) and mends, as a network between a replica and its store fails and heals."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        with contextlib.suppress(OSError):  # the listener closed: cut
            while True:
                client, _ = listener.accept()
                server = socket.create_connection(self.target)
                with self._lock:
                    self._open += [client, server]
                for a, b in ((client, server), (server, client)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        # shutdown() first: on Linux, close() alone leaves a thread blocked in accept() or
        # recv() on the socket, and the socket with it.
        with self._lock:
            ends, self._open = [self._listener, *self._open], []
        for end in ends:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def mend(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()


def test_a_replica_cut_off_from_its_store_keeps_serving_and_follows_once_it_is_back(
    team: Workspace, tmp_path: Path
) -> None:
    ws = team
    token = create_key(ws, "app", roles=["predict", "admin"]).token
    url = ws.store.engine.url
    link = _Link((str(url.host), int(url.port or 5432)))
    through = url.set(port=link.port).render_as_string(False)
    blue, green = get_deployment(ws).model_ref, get_model(ws, "logistic-2").ref
    start_rollout(ws, "logistic-2", strategy="blue-green", by="Ana")
    move_rollout(ws, "production", "start", by="controller", actor_kind="controller")
    with (
        httpx.Client(headers=bearer(token), timeout=30) as http,
        _servers([_replica(ws, tmp_path / "replica")], [through]) as [(process, base)],
    ):
        replica = _Replica(http, process, base)
        assert replica.answers() == ONE and replica.preview() == "logistic-2"
        cut = time.monotonic()
        link.cut()
        replica.output.wait_for("cannot read the deployment's rollout", cut, "the cut")
        # The switch is made while the replica cannot read it: it serves blue, ready, as it
        # did before the cut.
        move_rollout(ws, "production", "advance", by="controller", actor_kind="controller")
        assert replica.answers() == ONE
        assert http.get(f"{base}/v2/health/ready").status_code == 200
        mended = time.monotonic()
        link.mend()
        replica.output.wait_for("reads the deployment's rollout again", mended, "the mend")
        at = replica.output.wait_for(f"0% to {blue}, 100% to {green}", mended, "the mend")
        assert replica.answers() == TWO
    said = [line for _, line in replica.output.lines if "cannot read" in line]
    # Said once, and why: the store could not be reached (refused, or reset mid-read).
    assert len(said) == 1 and f"the store at {through} could not be reached" in said[0], said
    assert at - mended < APPLIED_WITHIN
