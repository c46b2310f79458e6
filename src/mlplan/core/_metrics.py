"""Which way each metric is better: the one home of metric direction (evaluation's gates and
focus, modeling's tuning and comparison read it)."""

from __future__ import annotations

__all__ = ["LOWER_IS_BETTER", "better"]

LOWER_IS_BETTER = frozenset(
    {"fpr", "fnr", "fdr", "for", "log_loss", "brier", "ece", "mae", "rmse", "mape"}
)
"""Metrics where a smaller value is better (error rates and losses); every other metric the
project computes (accuracy, precision, recall, F1, ROC AUC, PR AUC, R²) is higher-is-better."""


def better(metric: str, a: float, b: float) -> bool:
    """Whether ``a`` is strictly better than ``b`` on ``metric``.

    Examples
    --------
    >>> better("mae", 1.0, 2.0), better("accuracy", 1.0, 2.0)
    (True, False)
    """
    return a < b if metric in LOWER_IS_BETTER else a > b
