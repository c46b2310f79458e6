"""What the Labels page shows, gathered from the library calls ``mlplan labels batches``,
``agreement``, ``hlp`` and ``queue`` make: the batches with the labels that came back, the
newest stored agreement report with its annotator table, the newest stored HLP baseline
overall, per annotator and per slice, and the open relabel queue. The page never measures:
agreement and HLP are runs of their own, with their bootstrap; it shows what they stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlplan.labels import (
    BatchSummary,
    LabelReportInfo,
    QueueEntry,
    StoredHLP,
    get_hlp,
    latest_label_report,
    list_batches,
    relabel_queue,
)
from mlplan.ui._format import Pager, page_of

if TYPE_CHECKING:
    from mlplan.workspace import Workspace

__all__ = ["LABELS_PAGES", "LabelsView", "labels_view"]

LABELS_PAGES = ("batches", "annotators", "hlp-annotators", "queue")
"""The query parameters naming the page of each long table of the Labels page."""


@dataclass(frozen=True)
class LabelsView:
    """The Labels page: a page of each long table and the stored reports (None when none is
    stored yet)."""

    batches: list[BatchSummary]
    batches_pager: Pager
    agreement: LabelReportInfo | None
    annotators: list[dict[str, Any]]
    annotators_pager: Pager
    hlp: StoredHLP | None
    hlp_annotators: list[dict[str, Any]]
    hlp_annotators_pager: Pager
    queue: list[QueueEntry]
    queue_pager: Pager

    @property
    def empty(self) -> bool:
        """Nothing about labels is stored yet: no batch, report or queued item."""
        return not (
            self.batches_pager.total or self.agreement or self.hlp or self.queue_pager.total
        )


def labels_view(ws: Workspace, *, pages: dict[str, int] | None = None) -> LabelsView:
    """What ``mlplan labels batches``, ``agreement``, ``hlp`` and ``queue`` (its open items)
    show; ``pages`` the page of each long table by its parameter (``LABELS_PAGES``; default
    the first). Tables in the order the commands print them: the annotators by their kappa
    with the others, HLP's by accuracy, lowest first."""
    pages = pages or {}
    if ws.has_store:  # reading must not create a store
        batches = list_batches(ws)
        agreement = latest_label_report(ws, "agreement")
        hlp = get_hlp(ws)
        queue = relabel_queue(ws, status="open")
    else:
        batches, agreement, hlp, queue = [], None, None, []
    annotators = sorted(
        agreement.report.get("annotator_table", []) if agreement else [],
        key=lambda a: _lowest_first(a.get("kappa_with_consensus")),
    )
    per_annotator = sorted(
        hlp.hlp.per_annotator if hlp else [], key=lambda a: _lowest_first(a.get("accuracy"))
    )
    shown_batches, batches_pager = page_of(batches, pages.get("batches", 1))
    shown_annotators, annotators_pager = page_of(annotators, pages.get("annotators", 1))
    shown_hlp, hlp_pager = page_of(per_annotator, pages.get("hlp-annotators", 1))
    shown_queue, queue_pager = page_of(queue, pages.get("queue", 1))
    return LabelsView(
        shown_batches,
        batches_pager,
        agreement,
        shown_annotators,
        annotators_pager,
        hlp,
        shown_hlp,
        hlp_pager,
        shown_queue,
        queue_pager,
    )


def _lowest_first(value: Any) -> tuple[bool, float]:
    """A sort key: numbers lowest first, a figure not measured (None) last."""
    return (value is None, float(value) if value is not None else 0.0)
