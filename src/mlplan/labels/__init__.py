"""Labels: labeling batches, annotation import, agreement, consensus, human-level performance
(HLP) and the relabel queue."""

from __future__ import annotations

from mlplan._deprecated import moved_names as _moved_names
from mlplan.labels._agreement import (
    AgreementReport,
    AnnotatorStats,
    Interval,
    Level,
    agreement,
    cohen_kappa_pairs,
    coincidence_matrix,
    fleiss_kappa,
    krippendorff_alpha,
    leave_one_out_reference,
    per_class_agreement,
    percent_agreement,
)
from mlplan.labels._annotations import AnnotationSet, within_item_pairs
from mlplan.labels._batches import (
    Assignment,
    Estimate,
    Selection,
    assign,
    compare_strategies,
    estimate,
    label_studio_config,
    opaque_key,
    render_csv,
    render_label_studio,
    select_items,
)
from mlplan.labels._consensus import Consensus, dawid_skene, majority_vote
from mlplan.labels._export import BatchInfo, BatchSummary, export_batch, list_batches
from mlplan.labels._hlp import (
    HARD_LABEL_METRICS,
    HumanLevelPerformance,
    confusion_metrics,
    human_level_performance,
    positive_class,
)
from mlplan.labels._import import (
    AnnotationFile,
    AnnotationRow,
    ImportCheck,
    check_rows,
    read_annotations,
)
from mlplan.labels._ingest import (
    ImportResult,
    StoredAnnotations,
    import_annotations,
    label_count,
    label_set_hash,
    label_set_ref,
    load_annotations,
)
from mlplan.labels._issues import (
    ConfusedPair,
    LabelIssue,
    confused_pairs,
    disagreements,
    find_label_issues,
)
from mlplan.labels._items import ItemTable, item_table
from mlplan.labels._measure import (
    AgreementResult,
    ConsensusResult,
    LabelReportInfo,
    StoredHLP,
    consensus_labels,
    get_hlp,
    latest_label_report,
    measure_agreement,
    measure_hlp,
)
from mlplan.labels._queue import (
    QueueEntry,
    export_relabel_batch,
    issues_from_predictions,
    relabel_queue,
    triage,
)

__all__ = [
    "HARD_LABEL_METRICS",
    "AgreementReport",
    "AgreementResult",
    "AnnotationFile",
    "AnnotationRow",
    "AnnotationSet",
    "AnnotatorStats",
    "Assignment",
    "BatchInfo",
    "BatchSummary",
    "ConfusedPair",
    "Consensus",
    "ConsensusResult",
    "Estimate",
    "HumanLevelPerformance",
    "ImportCheck",
    "ImportResult",
    "Interval",
    "ItemTable",
    "LabelIssue",
    "LabelReportInfo",
    "Level",
    "QueueEntry",
    "Selection",
    "StoredAnnotations",
    "StoredHLP",
    "agreement",
    "assign",
    "check_rows",
    "cohen_kappa_pairs",
    "coincidence_matrix",
    "compare_strategies",
    "confused_pairs",
    "confusion_metrics",
    "consensus_labels",
    "dawid_skene",
    "disagreements",
    "estimate",
    "export_batch",
    "export_relabel_batch",
    "find_label_issues",
    "fleiss_kappa",
    "get_hlp",
    "human_level_performance",
    "import_annotations",
    "issues_from_predictions",
    "item_table",
    "krippendorff_alpha",
    "label_count",
    "label_set_hash",
    "label_set_ref",
    "label_studio_config",
    "latest_label_report",
    "leave_one_out_reference",
    "list_batches",
    "load_annotations",
    "majority_vote",
    "measure_agreement",
    "measure_hlp",
    "opaque_key",
    "per_class_agreement",
    "percent_agreement",
    "positive_class",
    "read_annotations",
    "relabel_queue",
    "render_csv",
    "render_label_studio",
    "select_items",
    "triage",
    "within_item_pairs",
]

__getattr__ = _moved_names(
    __name__,
    {
        "latest_report": (
            "mlplan.labels._measure._latest_report_tuple",
            "mlplan.labels.latest_label_report",
        )
    },
)
