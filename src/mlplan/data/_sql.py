"""DuckDB for expressions that come from the plan (slice filters): a connection that cannot
touch files, the network or its own settings, so a plan from a pull request cannot do
anything but filter rows."""

from __future__ import annotations

from typing import Any

__all__ = ["sandboxed_duckdb"]


def sandboxed_duckdb() -> Any:
    """An in-memory DuckDB connection with external access disabled and settings locked.

    Examples
    --------
    >>> con = sandboxed_duckdb()
    >>> con.execute("SELECT 1 + 1").fetchone()
    (2,)
    """

    import duckdb  # on use: it is heavy to import, and a server never needs it

    return duckdb.connect(
        config={
            "enable_external_access": False,
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
            "lock_configuration": True,
        }
    )
