"""The project as every stage sees it: the plan and the store together (``Workspace``), the
one way to record in the store (runs, reports, project-scoped selects), the records every
stage may read — sign-offs and deployments — and what crashes leave, collected (``gc``)."""

from __future__ import annotations

from mlplan.workspace._crashed import close_crashed_runs
from mlplan.workspace._deployments import (
    PRODUCTION,
    DeploymentInfo,
    DeploymentRoute,
    deployment_route,
    get_deployment,
    list_deployments,
)
from mlplan.workspace._gc import GarbageFile, GarbageReport, collect_garbage, parse_duration
from mlplan.workspace._signoffs import (
    DEPLOY_GATE,
    ApprovalInfo,
    approve,
    list_approvals,
    revoke_approval,
)
from mlplan.workspace._workspace import (
    ReportInfo,
    Workspace,
    find_root,
    runs_under,
    staged_file,
    write_atomic,
)

__all__ = [
    "DEPLOY_GATE",
    "PRODUCTION",
    "ApprovalInfo",
    "DeploymentInfo",
    "DeploymentRoute",
    "GarbageFile",
    "GarbageReport",
    "ReportInfo",
    "Workspace",
    "approve",
    "close_crashed_runs",
    "collect_garbage",
    "deployment_route",
    "find_root",
    "get_deployment",
    "list_approvals",
    "list_deployments",
    "parse_duration",
    "revoke_approval",
    "runs_under",
    "staged_file",
    "write_atomic",
]
