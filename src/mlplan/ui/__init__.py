"""The dashboard, ``mlplan ui``: web pages over the same library calls the CLI makes — the
checklist, the datasets with their datasheets, splits and version diffs, the labels (batches,
agreement, HLP, the relabel queue), the models' comparison, the
deployments with their rollouts, the monitoring windows and alerts — rendered on the server
(Starlette and Jinja2, the ``ui`` extra, imported at first use), with front-end libraries from
the npm registry taken at build time and served locally. Read-only but for the rollout moves,
each made with an admin API key in its own request."""

from __future__ import annotations

from mlplan.ui._actions import ActionOutcome, rollout_action
from mlplan.ui._app import PAGES, UiConfig, create_app
from mlplan.ui._assets import ELK, HTMX, LIBRARIES, FrontEndLibrary, load_library, npm_folder
from mlplan.ui._serve import check_ui_host, serve_ui

__all__ = [
    "ELK",
    "HTMX",
    "LIBRARIES",
    "PAGES",
    "ActionOutcome",
    "FrontEndLibrary",
    "UiConfig",
    "check_ui_host",
    "create_app",
    "load_library",
    "npm_folder",
    "rollout_action",
    "serve_ui",
]
