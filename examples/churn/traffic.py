"""Traffic for the churn model's server while a rollout moves: the retention app scoring
customers one request each, and — as the outcome becomes known — the true label fed back,
with the retention team's own pick (``decision``, right four times in five) beside it.

    python traffic.py BASE_URL APP_KEY_FILE ADMIN_KEY_FILE CUSTOMERS_CSV \
        [--until promoted,rolled_back,paused] [--deployment production] [--concurrency 6]
        [--seconds 120] [--monitored SECONDS]

It stops once the deployment's rollout reaches one of the ``--until`` states (read from
``GET /v1/rollouts/NAME`` with the admin key), and prints how many requests each model
answered and with which status.

With ``--monitored SECONDS`` it sends traffic for monitoring instead: from the start of the
next window of that length (windows are aligned on the epoch, as ``mlplan monitor``'s), one
window as usual, then one in which the prices of the north region went up by 40 (its
``monthly_charges``: a drifted input); and only after both, the delayed outcomes, each
customer who stayed after the team called them (its pick ``1``) with their monthly charges
as a business ``value``. Its first line is the two windows' start and end (ISO 8601).

The key files are what ``mlplan keys create --json`` wrote;
tokens are never printed. Seeded: the same customers in the same order each run.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import itertools
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

_NOT_INPUTS = {"customer_id", "name", "email", "phone", "signup_date", "churned"}
_NUMBERS = {"age", "tenure_months", "monthly_charges", "support_calls", "data_gb"}


def _customers(path: Path) -> list[tuple[dict[str, Any], str]]:
    """Each customer's inputs as the app sends them, and whether they churned."""
    out = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if any(row[k] == "" for k in _NUMBERS):
                continue  # the app sends complete records
            record: dict[str, Any] = {
                k: (float(v) if k in _NUMBERS else v or None)  # a blank category is missing
                for k, v in row.items()
                if k not in _NOT_INPUTS
            }
            out.append((record, row["churned"]))
    random.Random(7).shuffle(out)
    return out


async def _state(client: httpx.AsyncClient, deployment: str) -> str | None:
    answer = await client.get(f"/v1/rollouts/{deployment}")
    if answer.status_code != 200:
        return None
    (rollout,) = answer.json()
    return str(rollout["state"])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base")
    parser.add_argument("app_key", type=Path)
    parser.add_argument("admin_key", type=Path)
    parser.add_argument("customers", type=Path)
    parser.add_argument("--until", default="promoted,rolled_back,paused,aborted")
    parser.add_argument("--deployment", default="production")
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--monitored", type=float, default=None)
    args = parser.parse_args()
    if args.monitored is not None:
        await _monitored(args)
        return
    token, admin = (json.loads(p.read_text())["token"] for p in (args.app_key, args.admin_key))
    wanted = set(args.until.split(","))
    customers = itertools.cycle(_customers(args.customers))
    picks = random.Random(11)
    answered: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=args.concurrency * 2)
    app = httpx.AsyncClient(
        base_url=args.base, headers={"Authorization": f"Bearer {token}"}, limits=limits
    )
    ops = httpx.AsyncClient(base_url=args.base, headers={"Authorization": f"Bearer {admin}"})

    async def score() -> None:
        while not stop.is_set():
            record, churned = next(customers)
            answer = await app.post("/v1/predict", json={"records": [record]})
            statuses[answer.status_code] += 1
            if answer.status_code != 200:
                continue
            body = answer.json()
            answered[body["model"]["name"]] += 1
            # The team's own pick, right four times in five, and later the outcome.
            decision = churned if picks.random() < 0.8 else ("0" if churned == "1" else "1")
            await ops.post(
                "/v1/feedback",
                json={"request_id": body["request_id"], "label": churned, "decision": decision},
            )

    async def watch() -> str:
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            state = await _state(ops, args.deployment)
            if state in wanted:
                return state
            await asyncio.sleep(0.5)
        return "still running after the time allowed"

    workers = [asyncio.create_task(score()) for _ in range(args.concurrency)]
    try:
        ended = await watch()
    finally:
        stop.set()
        await asyncio.gather(*workers, return_exceptions=True)
        await app.aclose()
        await ops.aclose()
    shown = ", ".join(f"{n:,} by {model}" for model, n in sorted(answered.items()))
    codes = ", ".join(f"{n:,} × {code}" for code, n in sorted(statuses.items()))
    print(f"{sum(statuses.values()):,} requests ({codes}): {shown}; the rollout is {ended}")


async def _monitored(args: argparse.Namespace) -> None:
    """Two windows of traffic, the second with a price change in one region, then the
    delayed outcomes and business values (see the module's notes)."""
    token, admin = (json.loads(p.read_text())["token"] for p in (args.app_key, args.admin_key))
    customers = itertools.cycle(_customers(args.customers))
    picks = random.Random(13)
    window = args.monitored
    start = (time.time() // window + 1) * window
    await asyncio.sleep(start - time.time())
    outcomes: list[dict[str, Any]] = []
    statuses: Counter[int] = Counter()
    limits = httpx.Limits(max_connections=args.concurrency * 2)
    app = httpx.AsyncClient(
        base_url=args.base, headers={"Authorization": f"Bearer {token}"}, limits=limits
    )
    ops = httpx.AsyncClient(base_url=args.base, headers={"Authorization": f"Bearer {admin}"})

    async def score() -> None:
        while (now := time.time()) < start + 2 * window - 0.2:  # not past the second window
            record, churned = next(customers)
            if now >= start + window and record.get("region") == "north":
                record = record | {"monthly_charges": record["monthly_charges"] + 40}
            answer = await app.post("/v1/predict", json={"records": [record]})
            statuses[answer.status_code] += 1
            if answer.status_code != 200:
                continue
            decision = churned if picks.random() < 0.8 else ("0" if churned == "1" else "1")
            body = {"request_id": answer.json()["request_id"], "label": churned}
            body["decision"] = decision
            if churned == "0" and decision == "1":  # called, and stayed
                body["value"] = record["monthly_charges"]
            outcomes.append(body)

    async def feed(part: list[dict[str, Any]]) -> None:
        for body in part:
            await ops.post("/v1/feedback", json=body)

    try:
        await asyncio.gather(*(score() for _ in range(args.concurrency)))
        # The outcomes come later, after every prediction.
        n = args.concurrency
        await asyncio.gather(*(feed(outcomes[k::n]) for k in range(n)))
    finally:
        await app.aclose()
        await ops.aclose()
    codes = ", ".join(f"{n:,} × {code}" for code, n in sorted(statuses.items()))
    valued = sum(1 for b in outcomes if "value" in b)
    first = dt.datetime.fromtimestamp(start, dt.UTC)
    print(f"{first.isoformat()} {(first + dt.timedelta(seconds=2 * window)).isoformat()}")
    print(
        f"{sum(statuses.values()):,} requests ({codes}) in two windows of {window:g} s, the "
        f"second with north's prices up by 40; then {len(outcomes):,} outcomes fed back, "
        f"{valued:,} with a business value"
    )


if __name__ == "__main__":
    asyncio.run(main())
