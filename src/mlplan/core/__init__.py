"""The domain core: plain values shared by every stage; no I/O."""

from __future__ import annotations

from mlplan.core._delimiters import DELIMITERS, parse_delimiter
from mlplan.core._json import json_safe
from mlplan.core._metrics import LOWER_IS_BETTER, better
from mlplan.core._refs import DatasetRef, SplitRef, parse_dataset_ref, parse_split_ref

__all__ = [
    "DELIMITERS",
    "LOWER_IS_BETTER",
    "DatasetRef",
    "SplitRef",
    "better",
    "json_safe",
    "parse_dataset_ref",
    "parse_delimiter",
    "parse_split_ref",
]
