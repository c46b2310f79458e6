"""What a version diff page shows: ``mlplan data diff A B`` (``diff_datasets``) of a dataset
version against another, by default the version before it: rows, schema changes, and a page
of the columns with their PSI and shift, each from the stored profiles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlplan.data import ColumnShift, DatasetDiff, diff_datasets, get_dataset, list_datasets
from mlplan.errors import DatasetNotFoundError
from mlplan.ui._format import Pager, page_of

if TYPE_CHECKING:
    from mlplan.workspace import Workspace

__all__ = ["DataDiffView", "data_diff_view"]


@dataclass(frozen=True)
class DataDiffView:
    """The diff of ``diff.a`` → ``diff.b`` (``mlplan data diff A B``), a page of its columns'
    shifts, and the versions of B's dataset, to compare it with another."""

    diff: DatasetDiff
    shifts: list[ColumnShift]
    shifts_pager: Pager
    name: str
    version: int
    versions: int

    @property
    def flagged(self) -> list[str]:
        """The columns whose PSI is above the threshold (every page's, not this page's)."""
        return [s.column for s in self.diff.shifts if s.flagged]


def data_diff_view(
    ws: Workspace, ref: str, *, against: str | None = None, page: int = 1
) -> DataDiffView:
    """``mlplan data diff AGAINST REF``: ``against`` defaults to the version before ``ref``
    (``NAME`` for its latest version, or ``NAME@VERSION``).

    Raises
    ------
    DatasetNotFoundError
        No such dataset or version, or ``ref`` is a first version and ``against`` is not given
        (nothing before it to compare with).
    RefError
        ``ref`` or ``against`` is not a dataset reference.
    """
    if not ws.has_store:  # reading must not create a store
        raise DatasetNotFoundError(
            f"no dataset is registered yet, so no {ref}: mlplan data add NAME FILE registers one"
        )
    info = get_dataset(ws, ref)
    if against is None:
        if info.version <= 1:
            raise DatasetNotFoundError(
                f"{info.ref} is the first version of {info.name}: there is none before it to "
                f"compare with. Name another with ?against=NAME@VERSION"
            )
        against = f"{info.name}@{info.version - 1}"
    diff = diff_datasets(ws, against, info.ref)
    versions = next((d.versions for d in list_datasets(ws) if d.name == info.name), 1)
    shown, pager = page_of(diff.shifts, page)
    return DataDiffView(diff, shown, pager, info.name, info.version, versions)
