from __future__ import annotations

from mlplan.data._profile import profile_table
from mlplan.data._read import read_table

__all__ = ["profile_table", "read_table"]
