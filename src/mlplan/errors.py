"""Every error mlplan raises on purpose, in one tree.

::

    MlplanError                         root: catch this to catch everything mlplan means to raise
    ├── UsageError                      the user asked for something malformed (exit code 2)
    │   ├── ParameterError (ValueError) an argument a function cannot take (names the parameter)
    │   ├── PlanError (ValueError)      mlplan.yaml is missing, unparsable or invalid
    │   ├── ProjectNotFoundError        no mlplan.yaml here or in any folder above
    │   ├── RefError (ValueError)       a reference like 'customers@x' that cannot be parsed
    │   └── GateError (ValueError)      an approval for an unknown gate or by the wrong role
    ├── NotFoundError (LookupError)     a name or version that the store does not hold
    │   ├── DatasetNotFoundError        a dataset or dataset version
    │   ├── SplitNotFoundError          a split
    │   ├── ModelNotFoundError          a registered model
    │   ├── DeploymentNotFoundError     a deployment
    │   ├── ApprovalNotFoundError       a recorded sign-off
    │   └── KeyNotFoundError            an API key
    ├── DataError (ValueError)          a data file that cannot be read or used as asked
    ├── PackageError                    a model package that is missing, corrupt or truncated
    ├── StoreError                      the store cannot be opened, migrated or written
    ├── MissingExtraError (ImportError) an optional dependency is not installed
    └── CheckFailedError                a check ran and failed (a gate, status --strict) (exit 1)

The CLI renders each as one red line and exits with ``exit_code``: 2 for usage errors, 1 for
failures. The messages say what was wrong, where, what was expected and what to do next. A
``ParameterError`` names the Python parameter (``'part'``); the CLI names the option that sets
it (``--split``) instead.
"""

from __future__ import annotations

__all__ = [
    "ApprovalNotFoundError",
    "CheckFailedError",
    "DataError",
    "DatasetNotFoundError",
    "DeploymentNotFoundError",
    "GateError",
    "KeyNotFoundError",
    "MissingExtraError",
    "MlplanError",
    "ModelNotFoundError",
    "NotFoundError",
    "PackageError",
    "ParameterError",
    "PlanError",
    "ProjectNotFoundError",
    "RefError",
    "SplitNotFoundError",
    "StoreError",
    "UsageError",
]


class MlplanError(Exception):
    """Root of every error mlplan raises on purpose."""

    exit_code: int = 1


class UsageError(MlplanError):
    """The user asked for something malformed; fix the command or the plan and retry."""

    exit_code = 2


class ParameterError(UsageError, ValueError):
    """An argument that the function cannot take.

    ``message`` holds ``{param}`` where the parameter is named: the text reads ``'part' must
    be train, valid or test`` from Python, and the CLI shows the option that sets ``part``
    instead (``--split must be ...``) through :meth:`naming`.

    Examples
    --------
    >>> error = ParameterError("part", "{param} must be train, valid or test; got 'x'")
    >>> str(error)
    "'part' must be train, valid or test; got 'x'"
    >>> error.naming("--split")
    "--split must be train, valid or test; got 'x'"
    """

    def __init__(self, param: str, message: str) -> None:
        self.param = param
        self.template = message
        super().__init__(self.naming(repr(param)))

    def naming(self, name: str) -> str:
        """The message with the parameter called ``name`` (an option's flag, say)."""
        return self.template.replace("{param}", name)


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


class SplitNotFoundError(NotFoundError):
    """No such split (or no split yet)."""


class ModelNotFoundError(NotFoundError):
    """No registered model of that name."""


class DeploymentNotFoundError(NotFoundError):
    """No deployment of that name."""


class ApprovalNotFoundError(NotFoundError):
    """No recorded approval with that id."""


class KeyNotFoundError(NotFoundError):
    """No API key with that id."""


class DataError(MlplanError, ValueError):
    """A data file that cannot be read, is empty, or lacks what the command needs."""


class PackageError(MlplanError):
    """A model package that is missing, corrupt or truncated (a server with one stays not
    ready, with the reason)."""


class StoreError(MlplanError):
    """The store cannot be opened, migrated or written."""


class MissingExtraError(MlplanError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class CheckFailedError(MlplanError):
    """A check ran and did not pass (a gate of ``evaluate --gate``, ``status --strict``)."""
