"""Every error mlplan raises on purpose, in one tree.

::

    MlplanError                         root: catch this to catch everything mlplan means to raise
    ├── UsageError                      the user asked for something malformed (exit code 2)
    │   ├── PlanError (ValueError)      mlplan.yaml is missing, unparsable or invalid
    │   ├── ProjectNotFoundError        no mlplan.yaml here or in any folder above
    │   ├── RefError (ValueError)       a reference like 'customers@x' that cannot be parsed
    │   └── GateError (ValueError)      an approval for an unknown gate or by the wrong role
    ├── NotFoundError (LookupError)     a name or version that the store does not hold
    │   ├── DatasetNotFoundError
    │   └── RunNotFoundError
    ├── DataError (ValueError)          a data file that cannot be read or used as asked
    ├── StoreError                      the store cannot be opened, migrated or written
    ├── MissingExtraError (ImportError) an optional dependency is not installed
    └── CheckFailedError                a check ran and failed (status --strict) (exit code 1)

The CLI renders each as one red line and exits with ``exit_code``: 2 for usage errors, 1 for
failures. The messages say what was wrong, where, what was expected and what to do next.
"""

from __future__ import annotations

__all__ = [
    "CheckFailedError",
    "DataError",
    "DatasetNotFoundError",
    "GateError",
    "MissingExtraError",
    "MlplanError",
    "NotFoundError",
    "PlanError",
    "ProjectNotFoundError",
    "RefError",
    "RunNotFoundError",
    "StoreError",
    "UsageError",
]


class MlplanError(Exception):
    """Root of every error mlplan raises on purpose."""

    exit_code: int = 1


class UsageError(MlplanError):
    """The user asked for something malformed; fix the command or the plan and retry."""

    exit_code = 2


class PlanError(UsageError, ValueError):
    """The plan file is missing, cannot be parsed, or does not validate.

    ``problems`` holds one line per problem, each naming file, line and field.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class ProjectNotFoundError(UsageError):
    """No ``mlplan.yaml`` in the given folder or any folder above it."""


class RefError(UsageError, ValueError):
    """A reference such as ``customers@2`` that cannot be parsed."""


class GateError(UsageError, ValueError):
    """An approval names a gate or a role that the plan does not define."""


class NotFoundError(MlplanError, LookupError):
    """A name or version that the store does not hold; the message lists what it does hold."""


class DatasetNotFoundError(NotFoundError):
    """No such dataset or dataset version."""


class RunNotFoundError(NotFoundError):
    """No such run."""


class DataError(MlplanError, ValueError):
    """A data file that cannot be read, is empty, or lacks what the command needs."""


class StoreError(MlplanError):
    """The store cannot be opened, migrated or written."""


class MissingExtraError(MlplanError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class CheckFailedError(MlplanError):
    """A check ran and did not pass (e.g. ``mlplan status --strict`` with a failing item)."""
