"""The route follower of a deployment's server, alone: what it does while the store cannot be
read. (Following real moves, in real servers: tests/rollout/test_traffic.py and
test_replicas.py.)"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from mlplan.errors import StoreError
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
