"""Which model the checklist follows, read once per status call: the models, the newest
comparison, the candidate (the best model of the newest comparison, else the newest model) and
the model in production."""

from __future__ import annotations

from mlplan.checklist._status import StatusContext
from mlplan.errors import DeploymentNotFoundError
from mlplan.modeling import Comparison, ModelInfo, latest_comparison, list_models
from mlplan.workspace import get_deployment

__all__ = ["candidate", "comparison", "in_production", "models"]


def models(context: StatusContext) -> list[ModelInfo]:
    """Every trained model, oldest first."""
    ws = context.ws
    return context.memo("models", lambda: list_models(ws))


def comparison(context: StatusContext) -> Comparison | None:
    """The newest comparison of the models with the baselines, if any."""
    ws = context.ws
    return context.memo("comparison", lambda: latest_comparison(ws))


def candidate(context: StatusContext) -> str | None:
    """The model the project would ship now."""
    trained = models(context)
    if not trained:
        return None
    found = comparison(context)
    best = None if found is None else found.best_model
    names = {m.name for m in trained}
    return str(best) if best in names else str(trained[-1].name)


def in_production(context: StatusContext) -> str | None:
    """The model deployed to production, if one is."""

    def read() -> str | None:
        try:
            return get_deployment(context.ws).model
        except DeploymentNotFoundError:
            return None

    return context.memo("in_production", read)
