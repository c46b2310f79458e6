"""The domain core: plain values shared by every stage, and the statistics they share (PSI,
Kolmogorov–Smirnov, chi-square, Jensen–Shannon, the tails they test with); no I/O."""

from __future__ import annotations

import importlib
import typing

from mlplan.core._delimiters import DELIMITERS, parse_delimiter
from mlplan.core._expressions import (
    ANALYZERS,
    FUNCTIONS,
    Analyzer,
    Binary,
    Bucketize,
    Call,
    CategoryMap,
    Expression,
    Name,
    Number,
    Unary,
    expression_names,
    parse_expression,
    render_expression,
)
from mlplan.core._json import json_safe
from mlplan.core._metrics import LOWER_IS_BETTER, better
from mlplan.core._refs import DatasetRef, SplitRef, parse_dataset_ref, parse_split_ref

if typing.TYPE_CHECKING:
    from mlplan.core._stats import (
        PSI_FLOOR,
        KSResult,
        TestResult,
        bin_counts,
        binomial_cdf,
        binomial_sf,
        chi2_counts,
        chi2_sf,
        jensenshannon,
        kolmogorov_sf,
        ks_2samp,
        ks_weighted,
        normal_sf,
        psi,
        quantile_edges,
    )

# The statistics need numpy, which the CLI's start never loads: they load on first use.
_STATS = frozenset(
    {
        "PSI_FLOOR",
        "KSResult",
        "Name",
        "Number",
        "TestResult",
        "Unary",
        "bin_counts",
        "binomial_cdf",
        "binomial_sf",
        "chi2_counts",
        "chi2_sf",
        "expression_names",
        "jensenshannon",
        "kolmogorov_sf",
        "ks_2samp",
        "ks_weighted",
        "normal_sf",
        "psi",
        "quantile_edges",
    }
)

__all__ = [
    "ANALYZERS",
    "DELIMITERS",
    "FUNCTIONS",
    "LOWER_IS_BETTER",
    "PSI_FLOOR",
    "Analyzer",
    "Binary",
    "Bucketize",
    "Call",
    "CategoryMap",
    "DatasetRef",
    "Expression",
    "KSResult",
    "Name",
    "Number",
    "SplitRef",
    "TestResult",
    "Unary",
    "better",
    "bin_counts",
    "binomial_cdf",
    "binomial_sf",
    "chi2_counts",
    "chi2_sf",
    "expression_names",
    "jensenshannon",
    "json_safe",
    "kolmogorov_sf",
    "ks_2samp",
    "ks_weighted",
    "normal_sf",
    "parse_dataset_ref",
    "parse_delimiter",
    "parse_expression",
    "parse_split_ref",
    "psi",
    "quantile_edges",
    "render_expression",
]


def __getattr__(name: str) -> typing.Any:
    if name in _STATS:
        return getattr(importlib.import_module("mlplan.core._stats"), name)
    raise AttributeError(f"module 'mlplan.core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
