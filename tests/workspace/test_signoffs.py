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
                "buy_in",
                "--role",
                "business_owner",
                "--by",
                "P",
                "--subject",
                "customers@1",
                "--json",
            )
        ).stdout
    )
    assert record["subject"] == "customers@1" and record["evaluation"] is None


def test_a_deploy_approval_names_a_model_with_an_evaluation(cli: Any) -> None:
    said = cli("approve", "deploy", "--role", "ml_lead", "--by", "P", "--json")
    assert said.exit_code == 2
    assert "an approval of 'deploy' names the model it lets ship: give --subject" in said.output
    said = cli("approve", "deploy", "--role", "ml_lead", "--by", "P", "--subject", "gbt-1")
    assert said.exit_code == 2
    assert "gbt-1 has no evaluation to override; run mlplan evaluate gbt-1" in said.output
    said = cli("approve", "buy_in", "--role", "business_owner", "--by", "P", "--evaluation", "x")
    assert said.exit_code == 2 and "--evaluation goes with the 'deploy' gate" in said.output
