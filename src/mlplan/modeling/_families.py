"""The model families, one entry each: the data each fits, the tasks it is the quick-and-dirty
baseline or a default for, the hyperparameters tuning searches, and how it is built — a
scikit-learn estimator or a PyTorch network.

A new family is one entry here. Its name also goes in ``Family`` below and in the plan's
``Modeling.families`` (the plan sits below modeling and validates the names when it loads, so
a misspelt family fails with its file and line); ``tests/modeling/test_families.py`` keeps
the three equal.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol, get_args

from mlplan.errors import ParameterError, PlanError, UsageError
from mlplan.modeling._cnn import CNN_DEFAULTS, fit_cnn
from mlplan.modeling._estimators import (
    Estimator,
    fit_lightgbm,
    lightgbm_model,
    lightgbm_parameters,
    logistic_regression,
    register_lightgbm,
    ridge,
    snap_lightgbm_thresholds,
)
from mlplan.modeling._inputs import TrainingData
from mlplan.modeling._networks import Device
from mlplan.modeling._package import Fitted
from mlplan.modeling._rnn import RNN_DEFAULTS, fit_rnn
from mlplan.plan import Plan, Task

__all__ = [
    "BASELINE_FAMILY",
    "DEFAULT_FAMILIES",
    "FAMILIES",
    "SEARCH_SPACES",
    "Family",
    "ModelFamily",
    "Network",
    "check_fits",
    "family_named",
    "hyperparameter_problems",
    "tabular_estimator",
]

Family = Literal["linear", "logistic", "gbt", "cnn", "rnn"]
# A search dimension: (kind, low, high, log) for "int" and "float", or ("choice", options).
SearchSpace = Mapping[str, tuple[Any, ...]]


class Network(Protocol):
    """How a PyTorch family fits prepared data: ``frozen`` keeps a pretrained backbone frozen
    (families without one ignore it); ``export`` asks for the ONNX graph; ``device`` is
    ``modeling.device``, where it trains (the graph is exported from the CPU whatever it is)."""

    def __call__(
        self,
        data: TrainingData,
        seed: int,
        params: dict[str, Any],
        *,
        frozen: bool,
        export: bool,
        device: Device,
    ) -> Fitted: ...


@dataclass(frozen=True)
class ModelFamily:
    """A model family: what it fits, when it is trained by default, what tuning searches, and
    how it is built.

    ``fits`` holds the (input kind, target kind) pairs it can learn: input ``tabular``,
    ``window`` or ``image``; target ``regression`` or ``classification``. ``baseline_for``:
    the tasks whose quick-and-dirty baseline it is (one family per task); ``default_for``:
    the tasks that train it when the plan names no families. A family is built either by a
    scikit-learn ``estimator`` (tables and window features) or by a PyTorch ``network``;
    ``pretrained`` marks a network with a pretrained backbone, which its baseline and
    ``modeling.fine_tune: head`` keep frozen.
    """

    name: Family
    fits: frozenset[tuple[str, str]]
    search_space: SearchSpace
    baseline_for: frozenset[Task] = field(default_factory=frozenset)
    default_for: frozenset[Task] = field(default_factory=frozenset)
    estimator: Estimator | None = None
    network: Network | None = None
    network_parameters: frozenset[str] = frozenset()
    pretrained: bool = False

    def __post_init__(self) -> None:
        if (self.estimator is None) == (self.network is None):
            raise ValueError(f"family {self.name!r} needs an estimator or a network, not both")

    def parameter_names(self, kind: str) -> frozenset[str]:
        """Every hyperparameter the family takes for a target kind (``regression`` or
        ``classification``)."""
        if self.estimator is not None:
            return self.estimator.parameter_names(kind)
        return self.network_parameters

    def check_parameters(
        self, params: Mapping[str, Any], kind: str, *, where: str | None = None
    ) -> None:
        """Refuse a hyperparameter the family does not take, naming the closest one (a
        misspelt ``num_leavs`` would otherwise be passed on and ignored).

        Raises
        ------
        PlanError
            From the plan (``where`` names its place, e.g. ``modeling.hyperparameters.gbt``).
        ParameterError
            Given as ``params``.
        """
        known = self.parameter_names(kind)
        unknown = sorted(set(params) - known)
        if not unknown:
            return
        by_case = {name.lower(): name for name in known}
        close = [by_case[unknown[0].lower()]] if unknown[0].lower() in by_case else []
        close = close or difflib.get_close_matches(unknown[0], sorted(known), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        what = f"{self.name} takes no hyperparameter {unknown[0]!r}{hint}"
        if where is not None:
            raise PlanError(f"{where}: {what}; fix it in the plan")
        raise ParameterError("params", f"{{param}}: {what}")


def hyperparameter_problems(plan: Plan) -> list[str]:
    """The plan's ``modeling.hyperparameters`` a family does not take, each with the closest
    name, for ``plan validate`` (training refuses them too)."""
    kinds = ["regression"] if plan.task == "regression" else ["classification"]
    if plan.task == "sequence":
        kinds = ["regression", "classification"]  # decided by the target's values
    problems = []
    for family, params in plan.modeling.hyperparameters.items():
        if family not in FAMILIES:
            continue  # the plan's schema names unknown families
        where = f"modeling.hyperparameters.{family}"
        for kind in kinds:
            try:
                FAMILIES[family].check_parameters(params, kind, where=where)
            except PlanError as exc:
                problems.append(str(exc))
                break
    return problems


def _pairs(inputs: Iterable[str], targets: Iterable[str]) -> frozenset[tuple[str, str]]:
    return frozenset(itertools.product(inputs, targets))


_CLASSIFICATION: frozenset[Task] = frozenset({"binary", "multiclass"})

FAMILIES: Mapping[str, ModelFamily] = MappingProxyType(
    {
        family.name: family
        for family in (
            ModelFamily(
                "linear",
                fits=_pairs(["tabular", "window"], ["regression"]),
                baseline_for=frozenset({"regression"}),
                default_for=frozenset({"regression"}),
                search_space={"alpha": ("float", 1e-3, 1e3, True)},
                estimator=Estimator(ridge),
            ),
            ModelFamily(
                "logistic",
                fits=_pairs(["tabular", "window"], ["classification"]),
                baseline_for=_CLASSIFICATION,
                default_for=_CLASSIFICATION,
                search_space={"C": ("float", 1e-3, 1e2, True)},
                estimator=Estimator(logistic_regression),
            ),
            ModelFamily(
                "gbt",
                fits=_pairs(["tabular", "window"], ["regression", "classification"]),
                baseline_for=frozenset({"sequence"}),
                default_for=frozenset({"regression", *_CLASSIFICATION, "sequence"}),
                search_space={
                    "n_estimators": ("int", 30, 400, True),
                    "learning_rate": ("float", 0.01, 0.3, True),
                    "num_leaves": ("int", 4, 128, True),
                    "min_child_samples": ("int", 3, 100, True),
                },
                # Trees need no scaling, and scaled float32 inputs in ONNX Runtime would cross
                # split thresholds the float64 training data did not.
                estimator=Estimator(
                    lightgbm_model,
                    scaled=False,
                    converter=register_lightgbm,
                    snap_thresholds=snap_lightgbm_thresholds,
                    more_parameters=lightgbm_parameters,
                    fit=fit_lightgbm,
                    predict_params={"num_threads": 0},
                ),
            ),
            ModelFamily(
                "cnn",
                fits=_pairs(["image"], ["classification"]),
                baseline_for=frozenset({"image_classification"}),
                default_for=frozenset({"image_classification"}),
                search_space={"C": ("float", 1e-2, 1e2, True), "lr": ("float", 1e-4, 1e-2, True)},
                network=fit_cnn,
                network_parameters=frozenset(CNN_DEFAULTS),
                pretrained=True,
            ),
            ModelFamily(
                "rnn",
                fits=_pairs(["window"], ["regression", "classification"]),
                default_for=frozenset({"sequence"}),
                search_space={
                    "hidden": ("int", 8, 64, True),
                    "lr": ("float", 1e-3, 3e-2, True),
                    "cell": ("choice", ["gru", "lstm"]),
                },
                network=fit_rnn,
                network_parameters=frozenset(RNN_DEFAULTS),
            ),
        )
    }
)

# The tables of families that came before the registry, derived from it.
# The quick-and-dirty family per task, and the families a task should try at least.
BASELINE_FAMILY: dict[str, Family] = {
    task: next(f.name for f in FAMILIES.values() if task in f.baseline_for)
    for task in get_args(Task)
}
DEFAULT_FAMILIES: dict[str, list[Family]] = {
    task: [f.name for f in FAMILIES.values() if task in f.default_for] for task in get_args(Task)
}
# name -> (kind, low, high, log) or ("choice", options)
SEARCH_SPACES: dict[str, dict[str, tuple[Any, ...]]] = {
    name: dict(f.search_space) for name, f in FAMILIES.items()
}


def family_named(name: str, *, param: str = "family") -> ModelFamily:
    """The family called ``name``.

    Raises
    ------
    ParameterError
        An unknown name (for the caller's parameter ``param``), listing the known ones.
    """
    family = FAMILIES.get(name)
    if family is None:
        raise ParameterError(param, f"{{param}} {name!r}: choose one of {', '.join(FAMILIES)}")
    return family


def check_fits(family: str, input_kind: str, target_kind: str, task: str) -> None:
    """Refuse a family that does not fit the data, naming those that do.

    Raises
    ------
    UsageError
        The family cannot learn this input and target.
    """
    if (input_kind, target_kind) not in family_named(family).fits:
        usable = [n for n, f in FAMILIES.items() if (input_kind, target_kind) in f.fits]
        raise UsageError(f"family {family!r} does not fit a {task} task; use {' or '.join(usable)}")


def tabular_estimator(family: str) -> Estimator:
    """The scikit-learn estimator of a tabular family.

    Raises
    ------
    ParameterError
        An unknown family, or one that is a PyTorch network.
    """
    estimator = family_named(family).estimator
    if estimator is None:
        tabular = [n for n, f in FAMILIES.items() if f.estimator is not None]
        raise ParameterError(
            "family",
            f"{{param}} {family!r} is a PyTorch network; the tabular families are "
            f"{', '.join(tabular)}",
        )
    return estimator
