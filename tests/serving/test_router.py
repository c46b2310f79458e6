"""The route follower of a deployment's server, alone: what it does while the store cannot be
read. (Following real moves, in real servers: tests/rollout/test_traffic.py and
test_replicas.py.)"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from mlplan.errors import PackageError, StoreError
from mlplan.serving._router import Arm, RouteFollower, Routing
from mlplan.workspace import DeploymentRoute


def test_a_store_that_cannot_be_read_is_said_once_per_outage_and_the_routing_kept() -> None:
    # Only the arm's ref matters while the route names the model it serves.
    stable = Arm("logistic-1@2", *([None] * 4))  # type: ignore[arg-type]
    routing = Routing(stable)
    route = DeploymentRoute("production", "logistic-1@2")
    down = {1, 2, 3, 6, 7}  # the reads that fail: two outages
    reads: list[int] = []
    reports: list[str] = []
    published: list[Routing] = []

    def read() -> DeploymentRoute:
        reads.append(len(reads) + 1)
        if reads[-1] in down:
            raise StoreError("cannot connect to the store at postgresql://db/mlplan: refused")
        return route

    async def load(ref: str, shadow: bool) -> Any:
        raise AssertionError(f"nothing to load, yet {ref} was")

    async def follow() -> RouteFollower:
        follower = RouteFollower(
            routing,
            route,
            read=read,
            load=load,
            publish=published.append,
            report=reports.append,
            refresh_seconds=0.001,
        )
        follower.start()
        deadline = time.monotonic() + 30
        while len(reads) < 9:
            assert time.monotonic() < deadline, f"only {len(reads)} reads"
            await asyncio.sleep(0.001)
        await follower.stop()
        return follower

    follower = asyncio.run(follow())
    warning = (
        "cannot read the deployment's rollout from the store, so traffic stays as it is "
        "until it can: cannot connect to the store at postgresql://db/mlplan: refused"
    )
    again = r"reads the deployment's rollout again, after {} failed reads over \d+ s"
    assert len(reports) == 4 and reports[0] == reports[2] == warning
    assert re.fullmatch(again.format(3), reports[1]), reports[1]
    assert re.fullmatch(again.format(2), reports[3]), reports[3]
    assert follower.routing is routing and published == []


def test_a_candidate_whose_package_is_missing_leaves_traffic_as_it_is_and_is_tried_again() -> None:
    # A replica to which the candidate's package was not copied before its rollout started.
    stable = Arm("logistic-1@2", *([None] * 4))  # type: ignore[arg-type]
    routing = Routing(stable)
    route = DeploymentRoute(
        "production", "logistic-1@2", "logistic-2@2", "canary", "progressing", 5.0, 1
    )
    reads = 0
    loads: list[tuple[int, str]] = []  # at which read, which package
    reports: list[str] = []
    published: list[Routing] = []

    def read() -> DeploymentRoute:
        nonlocal reads
        reads += 1
        return route

    async def load(ref: str, shadow: bool) -> Arm:
        loads.append((reads, ref))
        if len(loads) == 1:  # copied after the first try
            raise PackageError("model.onnx of the package cannot be read from the artifact store")
        return Arm(ref, *([None] * 4))  # type: ignore[arg-type]

    async def follow() -> None:
        follower = RouteFollower(
            routing,
            DeploymentRoute("production", "logistic-1@2"),
            read=read,
            load=load,
            publish=published.append,
            report=reports.append,
            refresh_seconds=0.001,
        )
        follower.start()
        deadline = time.monotonic() + 30
        while not published or published[-1].candidate is None:
            assert time.monotonic() < deadline, "the candidate never loaded"
            await asyncio.sleep(0.001)
        await follower.stop()

    asyncio.run(follow())
    assert reports == [
        "logistic-2@2 does not load, so traffic stays as it is: model.onnx of the package "
        "cannot be read from the artifact store"
    ]
    # Tried again 30 reads later (half a minute at a server's one read a second), not at each.
    assert loads == [(1, "logistic-2@2"), (32, "logistic-2@2")]
    # Meanwhile every request went to the stable model; then 5 % to the candidate.
    before, after = published
    assert (before.stable, before.candidate, before.mode) == (stable, None, "single")
    assert after.candidate is not None and after.candidate.ref == "logistic-2@2"
    assert (after.stable, after.mode, after.weight) == (stable, "split", 5.0)
