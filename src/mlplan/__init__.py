"""mlplan: run a machine-learning project from its plan to production.

The plan (``mlplan.yaml``) drives every stage; every stage leaves evidence in one store; the
checklist (``mlplan status``) reads plan and evidence together. The command line and Python
call the same library. From a notebook::

    import mlplan

    ws = mlplan.Workspace("churn")                    # the folder holding mlplan.yaml
    mlplan.register_dataset(ws, "customers")          # the file the plan names
    mlplan.split_dataset(ws, "customers", stratify="churned", group="customer_id", seed=7)
    model = mlplan.train_model(ws, baseline=True)
    result = mlplan.evaluate(ws, model.name)
    result.passed, result.failed_gates
    mlplan.status(ws).failing
    mlplan.lineage.lineage(ws, "customers@1")

The stage packages (``mlplan.data``, ``mlplan.labels``, ``mlplan.modeling``,
``mlplan.evaluation``, ``mlplan.serving``, ``mlplan.checklist``, ``mlplan.lineage`` ...) hold
the rest; they and the names above are imported on first use, so ``import mlplan`` stays light.
"""

from __future__ import annotations

import importlib
import typing

if typing.TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from mlplan import (
        checklist,
        core,
        data,
        errors,
        evaluation,
        labels,
        lineage,
        modeling,
        plan,
        serving,
        store,
        workspace,
    )
    from mlplan.checklist import status
    from mlplan.data import create_from_data, get_dataset, register_dataset, split_dataset
    from mlplan.evaluation import evaluate
    from mlplan.labels import export_batch, import_annotations, measure_agreement, measure_hlp
    from mlplan.modeling import compare_models, get_model, train_model
    from mlplan.serving import deploy, score_file
    from mlplan.workspace import Workspace, approve

__all__ = [
    "Workspace",
    "__version__",
    "approve",
    "checklist",
    "compare_models",
    "core",
    "create_from_data",
    "data",
    "deploy",
    "errors",
    "evaluate",
    "evaluation",
    "export_batch",
    "get_dataset",
    "get_model",
    "import_annotations",
    "labels",
    "lineage",
    "measure_agreement",
    "measure_hlp",
    "modeling",
    "plan",
    "register_dataset",
    "score_file",
    "serving",
    "split_dataset",
    "status",
    "store",
    "train_model",
    "workspace",
]

from mlplan._version import __version__

_PACKAGES = frozenset(
    {
        "checklist",
        "core",
        "data",
        "errors",
        "evaluation",
        "labels",
        "lineage",
        "modeling",
        "plan",
        "serving",
        "store",
        "workspace",
    }
)
# The verbs a notebook needs most, each from the package that owns it.
_NAMES = {
    "Workspace": "workspace",
    "approve": "workspace",
    "create_from_data": "data",
    "register_dataset": "data",
    "get_dataset": "data",
    "split_dataset": "data",
    "export_batch": "labels",
    "import_annotations": "labels",
    "measure_agreement": "labels",
    "measure_hlp": "labels",
    "train_model": "modeling",
    "get_model": "modeling",
    "compare_models": "modeling",
    "evaluate": "evaluation",
    "deploy": "serving",
    "score_file": "serving",
    "status": "checklist",
}


def __getattr__(name: str) -> typing.Any:
    if name in _PACKAGES:
        return importlib.import_module(f"mlplan.{name}")
    home = _NAMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mlplan' has no attribute {name!r}")
    return getattr(importlib.import_module(f"mlplan.{home}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
