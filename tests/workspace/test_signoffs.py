"""Sign-offs on the record: an approval keeps what it approves."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import ok


def test_approval_records_its_subject(cli: Any) -> None:
    record = json.loads(
        ok(
            cli(
                "approve",
                "deploy",
                "--role",
                "ml_lead",
                "--by",
                "P",
                "--subject",
                "customers@1",
                "--json",
            )
        ).stdout
    )
    assert record["subject"] == "customers@1"
