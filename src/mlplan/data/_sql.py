"""DuckDB for expressions that come from the plan (slice filters): a connection that cannot
touch files, the network or its own settings, so a plan from a pull request cannot do
anything but filter rows; the prediction log's reader passes the segment files it may read."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["sandboxed_duckdb"]


def sandboxed_duckdb(readable: Sequence[Path] = ()) -> Any:
    """An in-memory DuckDB connection with external access disabled and settings locked;
    it may read the files ``readable`` (DuckDB's ``allowed_paths``) and no other.

    Examples
    --------
    >>> con = sandboxed_duckdb()
    >>> con.execute("SELECT 1 + 1").fetchone()
    (2,)
    """

    import duckdb  # on use: it is heavy to import, and a server never needs it

    config: dict[str, Any] = {
        "autoload_known_extensions": False,
        "autoinstall_known_extensions": False,
    }
    if not readable:
        return duckdb.connect(
            config=config | {"enable_external_access": False, "lock_configuration": True}
        )
    con = duckdb.connect(config=config)
    try:  # the files first, then no other access, then no more settings
        listed = ", ".join("'" + str(p.resolve()).replace("'", "''") + "'" for p in readable)
        con.execute(f"SET allowed_paths = [{listed}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except Exception:
        con.close()
        raise
    return con
