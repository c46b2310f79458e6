"""The mechanism behind status: one function per item, shared reads once per call, and one
failing check (or plug-in provider) never hides the other items."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlplan.checklist import ItemStatus, StatusContext, check, item, register_provider, status
from mlplan.checklist import _status as mechanism
from mlplan.errors import StoreError
from mlplan.workspace import Workspace

_FIX = "fix the error above and run mlplan status again"


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in checks, in registries this test may change freely."""
    mechanism._load_builtin_checks()
    monkeypatch.setattr(mechanism, "_CHECKS", dict(mechanism._CHECKS))
    monkeypatch.setattr(mechanism, "_PROVIDERS", list(mechanism._PROVIDERS))


def test_every_built_in_item_has_its_own_function() -> None:
    assert set(mechanism._CHECKS) == {i.id for i in mechanism.ITEMS}
    assert mechanism._CHECKS["deploy.mode"].__module__ == "mlplan.checklist._deployment"


@pytest.mark.parametrize(
    ("error", "evidence"),
    [
        (StoreError("the store is locked"), "could not be checked: the store is locked"),
        (
            KeyError("leakage"),
            "could not be checked: internal error in the check of data.splits: KeyError: 'leakage'",
        ),
    ],
    ids=["mlplan-error", "internal-error"],
)
def test_a_failing_check_fails_its_item_only(
    sqlite_ws: Workspace, error: Exception, evidence: str
) -> None:
    before = status(sqlite_ws)

    @check("data.splits")
    def data_splits(context: StatusContext) -> ItemStatus:
        raise error

    after = status(sqlite_ws)

    assert after.get("data.splits") == ItemStatus(item("data.splits"), "failing", evidence, _FIX)
    others = [s for s in after.items if s.item.id != "data.splits"]
    assert others == [s for s in before.items if s.item.id != "data.splits"]


def test_a_check_reporting_another_item_fails(sqlite_ws: Workspace) -> None:
    @check("monitor.software")
    def monitor_software(context: StatusContext) -> ItemStatus:
        return context.status("monitor.input", "done", "watched")

    report = status(sqlite_ws)

    assert report.get("monitor.software").evidence == (
        "could not be checked: internal error in the check of monitor.software: "
        "RuntimeError: the check of monitor.software reported monitor.input"
    )
    assert report.get("monitor.input").state == "missing"  # its own check: nothing stored


def test_a_shared_read_that_fails_is_read_once(sqlite_ws: Workspace) -> None:
    reads: list[int] = []

    def flaky() -> int:
        reads.append(1)
        raise ValueError("the network is down")

    @check("monitor.software")
    def monitor_software(context: StatusContext) -> ItemStatus:
        return context.status("monitor.software", "done", f"read {context.memo('flaky', flaky)}")

    @check("monitor.input")
    def monitor_input(context: StatusContext) -> ItemStatus:
        context.memo("flaky", flaky)
        return context.status("monitor.input", "done", "never")

    @check("monitor.output")
    def monitor_output(context: StatusContext) -> ItemStatus:
        return context.status("monitor.output", "done", "watched")

    report = status(sqlite_ws)

    assert reads == [1]
    for item_id in ("monitor.software", "monitor.input"):
        assert report.get(item_id).evidence == (
            f"could not be checked: internal error in the check of {item_id}: "
            "ValueError: the network is down"
        )
    assert report.get("monitor.output").state == "done"
    assert report.get("monitor.alerts").evidence.startswith("4 rule(s) set")  # its own check


def test_a_check_must_name_a_known_item() -> None:
    with pytest.raises(KeyError, match=r"no checklist item 'rollout.nope'"):
        check("rollout.nope")


def test_a_plug_in_provider_still_reports_and_fails_only_what_it_had_not_reported(
    sqlite_ws: Workspace,
) -> None:
    del mechanism._CHECKS["monitor.alerts"]  # an item only the provider reports

    @register_provider
    class Monitoring:
        stage = "Monitoring"

        def check(self, context: StatusContext) -> Iterator[ItemStatus]:
            yield context.status("monitor.software", "done", "latency and errors watched")
            raise RuntimeError("no alerts table")

    report = status(sqlite_ws)

    assert report.get("monitor.software").state == "done"
    watched = report.get("monitor.alerts")
    assert (watched.state, watched.evidence) == (
        "failing",
        "could not be checked: internal error in the Monitoring provider: "
        "RuntimeError: no alerts table",
    )
    assert report.get("rollout.strategy").state != "failing"
    assert report.get("data.privacy").state == "done"
