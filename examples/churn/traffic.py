"""Traffic for the churn model's server while a rollout moves: the retention app scoring
customers one request each, and — as the outcome becomes known — the true label fed back,
with the retention team's own pick (``decision``, right four times in five) beside it.

    python traffic.py BASE_URL APP_KEY_FILE ADMIN_KEY_FILE CUSTOMERS_CSV \
        [--until promoted,rolled_back,paused] [--deployment production] [--concurrency 6]
        [--seconds 120]

It stops once the deployment's rollout reaches one of the ``--until`` states (read from
``GET /v1/rollouts/NAME`` with the admin key), and prints how many requests each model
answered and with which status. The key files are what ``mlplan keys create --json`` wrote;
tokens are never printed. Seeded: the same customers in the same order each run.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
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
    args = parser.parse_args()
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


if __name__ == "__main__":
    asyncio.run(main())
