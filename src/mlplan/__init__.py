"""mlplan: run a machine-learning project from its plan to production.

The plan (``mlplan.yaml``) drives every stage; every stage leaves evidence in one store; the
checklist (``mlplan status``) reads plan and evidence together. Stages live in their own
subpackages (``mlplan.plan``, ``mlplan.store``, ``mlplan.data``, ``mlplan.checklist`` ...) and are
imported on use, so ``import mlplan`` stays light.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
