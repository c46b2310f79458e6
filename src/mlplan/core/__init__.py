"""The domain core: plain values shared by every stage; no I/O."""

from __future__ import annotations

from mlplan.core._json import json_safe
from mlplan.core._refs import DatasetRef, SplitRef, parse_dataset_ref, parse_split_ref

__all__ = ["DatasetRef", "SplitRef", "json_safe", "parse_dataset_ref", "parse_split_ref"]
