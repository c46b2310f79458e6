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
``ParameterError`` (or any error made with ``.about(param, message)``) names the Python
parameter (``'part'``); the CLI names the option that sets it (``--split``) instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Self

from mlplan._deprecated import moved_names as _moved_names

__all__ = [
    "AlertNotFoundError",
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
    "RolloutNotFoundError",
    "RolloutStateError",
    "SplitNotFoundError",
    "StoreError",
    "UsageError",
    "WebhookURLError",
]


class MlplanError(Exception):
    """Root of every error mlplan raises on purpose.

    An error about a function's own parameters is made with :meth:`about`: its message names
    each one where it holds ``{name}`` (``{param}`` is the first), as ``'name'`` from Python;
    the CLI shows the option that sets it instead (:meth:`naming`).
    """

    exit_code: int = 1
    params: tuple[str, ...] = ()
    template: str | None = None

    @classmethod
    def about(cls, param: str | Sequence[str], message: str) -> Self:
        """This error, about the parameter ``param`` (or several, each named in ``message``).

        Examples
        --------
        >>> error = DataError.about("stratify", "{param} column 'age' is not a class")
        >>> str(error), error.naming({"stratify": "--stratify"})
        ("'stratify' column 'age' is not a class", "--stratify column 'age' is not a class")
        """
        params = (param,) if isinstance(param, str) else tuple(param)
        error = cls(_render(message, params, {}))
        error.params, error.template = params, message
        return error

    def naming(self, names: str | Mapping[str, str]) -> str:
        """The message with its parameters called ``names`` (each one's option, say; a single
        name is the first parameter's)."""
        if self.template is None:
            return str(self)
        if isinstance(names, str):
            names = {self.params[0]: names}
        return _render(self.template, self.params, names)


def _render(template: str, params: tuple[str, ...], names: Mapping[str, str]) -> str:
    text = template.replace("{param}", "{" + params[0] + "}") if params else template
    for param in params:
        text = text.replace("{" + param + "}", names.get(param, repr(param)))
    return text


class UsageError(MlplanError):
    """The user asked for something malformed; fix the command or the plan and retry."""

    exit_code = 2


class ParameterError(UsageError, ValueError):
    """An argument (or a combination of arguments) that the function cannot take.

    ``message`` holds ``{param}`` where the parameter is named (``{name}`` for each of
    several): the text reads ``'part' must be train, valid or test`` from Python, and the CLI
    shows the option that sets ``part`` instead (``--split must be ...``).

    Examples
    --------
    >>> error = ParameterError("part", "{param} must be train, valid or test; got 'x'")
    >>> str(error)
    "'part' must be train, valid or test; got 'x'"
    >>> error.naming("--split")
    "--split must be train, valid or test; got 'x'"
    >>> ParameterError(("test", "valid"), "{test} + {valid} must leave rows to train on").naming(
    ...     {"test": "--test", "valid": "--valid"})
    '--test + --valid must leave rows to train on'
    """

    def __init__(self, param: str | Sequence[str], message: str) -> None:
        self.params = (param,) if isinstance(param, str) else tuple(param)
        self.template = message
        super().__init__(_render(message, self.params, {}))

    @property
    def param(self) -> str:
        """The (first) parameter at fault."""
        return self.params[0]


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


class RolloutNotFoundError(NotFoundError):
    """No rollout of that deployment (none active, or none ever)."""


class AlertNotFoundError(NotFoundError):
    """No alert with that id."""


class WebhookURLError(UsageError, ValueError):
    """The plan's webhook URL is malformed, does not resolve, or points where mlplan does not
    post by default (loopback, link-local, private-range, cloud metadata)."""


class DataError(MlplanError, ValueError):
    """A data file that cannot be read, is empty, or lacks what the command needs."""


class PackageError(MlplanError):
    """A model package that is missing, corrupt or truncated (a server with one stays not
    ready, with the reason)."""


class StoreError(MlplanError):
    """The store cannot be opened, migrated or written."""


class MissingExtraError(MlplanError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class RolloutStateError(MlplanError):
    """A rollout cannot make that move from where it stands (an ended rollout, a promotion by
    the wrong kind of actor, a second rollout while one is active); the message names the
    rollout, its state and the moves allowed."""


class CheckFailedError(MlplanError):
    """A check ran and did not pass (a gate of ``evaluate --gate``, ``status --strict``)."""


__getattr__ = _moved_names(
    __name__,
    {"RunNotFoundError": ("mlplan.errors.NotFoundError", "mlplan.errors.NotFoundError")},
)
