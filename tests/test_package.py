from __future__ import annotations

import importlib
import inspect
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mlplan.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
PUBLIC_MODULES = [
    "mlplan",
    "mlplan.errors",
    "mlplan.workspace",
    "mlplan.core",
    "mlplan.plan",
    "mlplan.store",
    "mlplan.data",
    "mlplan.labels",
    "mlplan.features",
    "mlplan.modeling",
    "mlplan.evaluation",
    "mlplan.serving",
    "mlplan.checklist",
    "mlplan.lineage",
    "mlplan.ui",
    "mlplan.cli",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_lists_exactly_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    public = {
        n
        for n, value in vars(module).items()
        if not n.startswith("_") and not inspect.ismodule(value) and n != "annotations"
    }
    if not hasattr(module, "__path__"):  # a plain module: only what it defines
        public = {n for n in public if getattr(vars(module)[n], "__module__", None) == name}
    if name == "mlplan":
        public.add("__version__")
    if hasattr(module, "__getattr__"):  # lazy names (the root's, core's statistics) resolve
        assert public <= set(module.__all__)  # on first use
        for lazy in module.__all__:
            assert getattr(module, lazy) is not None
        return
    assert sorted(module.__all__) == sorted(public)


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; import json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_import_mlplan_is_light() -> None:
    loaded = _loaded_after("import mlplan")
    heavy = {
        "torch",
        "ray",
        "onnxruntime",
        "sklearn",
        "lightgbm",
        "pandas",
        "duckdb",
        "pyarrow",
        "sqlalchemy",
        "pydantic",
    }
    assert not heavy & {m.split(".")[0] for m in loaded}


def test_cli_starts_without_data_or_database_libraries() -> None:
    loaded = {m.split(".")[0] for m in _loaded_after("import mlplan.cli")}
    assert not {"duckdb", "pyarrow", "sqlalchemy", "pandas", "numpy", "alembic"} & loaded


def test_data_add_loads_no_library_it_does_not_use(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mlplan data add` reads, profiles (its sketches too: distinct values past a low limit
    here) and stores without pandas (which pyarrow's own numpy conversions import), the
    model libraries or Alembic (the store is current): each costs start-up time and memory."""
    monkeypatch.delenv("MLPLAN_STORE_URL", raising=False)  # the project's own SQLite store
    workspace = Workspace(project_dir)
    assert workspace.store is not None  # made, as after the project's first command
    workspace.close()
    modules = project_dir / "modules.json"
    code = (
        "import json, sys; import mlplan.data._profile as profile; "
        "profile.EXACT_DISTINCT = 50; from mlplan.cli import app\n"
        "try:\n    app(['data', 'add', 'customers', '--json'])\n"
        "except SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
        f"open({str(modules)!r}, 'w').write(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=project_dir, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["created"]
    loaded = {m.split(".")[0] for m in json.loads(modules.read_text())}
    assert "datasketches" in loaded  # the sketches ran
    heavy = {"pandas", "sklearn", "scipy", "alembic", "torch", "onnxruntime", "lightgbm"}
    assert heavy & loaded == set()


def test_every_extra_named_in_a_message_exists() -> None:
    extras = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    named: set[str] = set()
    for path in (REPO / "src").rglob("*.py"):
        text = path.read_text()
        named |= set(re.findall(r"require\([^)]*?extra=\"([a-z_-]+)\"", text, re.DOTALL))
        named |= set(re.findall(r"mlplan\[([a-z_-]+)\]", text))
    assert named, "expected some optional features"
    assert named <= extras, f"extras named but not defined: {sorted(named - extras)}"


def test_missing_extra_names_the_install_command() -> None:
    from mlplan._optional import require
    from mlplan.errors import MissingExtraError

    with pytest.raises(
        MissingExtraError,
        match=r"^profiling images requires "
        r"'no_such_module_xyz'. Install it with: "
        r"pip install 'mlplan\[images\]'$",
    ):
        require("no_such_module_xyz.sub", extra="images", purpose="profiling images")


def test_error_tree_roots_at_mlplan_error() -> None:
    import mlplan.errors as errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.MlplanError)
    assert issubclass(errors.PlanError, ValueError)
    assert errors.UsageError.exit_code == 2
    assert errors.DataError.exit_code == 1


MOVED = [
    ("mlplan.checklist", "approve", "mlplan.workspace", "approve"),
    ("mlplan.checklist", "list_approvals", "mlplan.workspace", "list_approvals"),
    ("mlplan.checklist", "revoke_approval", "mlplan.workspace", "revoke_approval"),
    ("mlplan.checklist", "ApprovalRecord", "mlplan.workspace", "ApprovalInfo"),
    ("mlplan.evaluation", "clearance", "mlplan.serving", "clearance"),
    ("mlplan.evaluation", "Clearance", "mlplan.serving", "Clearance"),
    ("mlplan.evaluation", "OVERRIDE_GATE", "mlplan.workspace", "DEPLOY_GATE"),
    ("mlplan.evaluation", "LOWER_IS_BETTER", "mlplan.core", "LOWER_IS_BETTER"),
    ("mlplan.serving", "get_deployment", "mlplan.workspace", "get_deployment"),
    ("mlplan.serving", "list_deployments", "mlplan.workspace", "list_deployments"),
    ("mlplan.serving", "DeploymentInfo", "mlplan.workspace", "DeploymentInfo"),
    ("mlplan.serving", "PRODUCTION", "mlplan.workspace", "PRODUCTION"),
    ("mlplan.serving", "PackageError", "mlplan.errors", "PackageError"),
    ("mlplan.lineage", "RunRecord", "mlplan.lineage", "RunInfo"),
    ("mlplan.errors", "RunNotFoundError", "mlplan.errors", "NotFoundError"),
    ("mlplan.store", "Project", "mlplan.store", "ProjectRecord"),
    ("mlplan.store", "Model", "mlplan.store", "ModelRecord"),
    ("mlplan.store", "Deployment", "mlplan.store", "DeploymentRecord"),
    ("mlplan.plan", "Project", "mlplan.plan", "ProjectSpec"),
    ("mlplan.plan", "Deployment", "mlplan.plan", "DeploymentSpec"),
    ("mlplan.plan", "Approval", "mlplan.plan", "ApprovalSpec"),
]


@pytest.mark.parametrize(("old", "name", "new", "new_name"), MOVED, ids=lambda v: str(v))
def test_moved_names_keep_working_for_one_release_with_a_warning(
    old: str, name: str, new: str, new_name: str
) -> None:
    with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} is deprecated: use {new}"):
        found = getattr(importlib.import_module(old), name)
    assert found is getattr(importlib.import_module(new), new_name)


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        _ = importlib.import_module("mlplan.store").no_such_name


def test_old_ways_in_keep_working_for_one_release_with_a_warning(tmp_path: Path) -> None:
    from mlplan.workspace import Workspace

    data = tmp_path / "customers.csv"
    data.write_text(
        "customer_id,age,churned\n" + "".join(f"{i},{20 + i},{i % 2}\n" for i in range(40))
    )
    with pytest.warns(DeprecationWarning, match=r"Workspace.create\(from_data=...\) is deprecated"):
        ws = Workspace.create(tmp_path / "churn", "churn", from_data=data)
    assert ws.plan.target == "churned"
    with pytest.warns(DeprecationWarning, match=r"Store.write is deprecated"):
        assert ws.store.write(lambda session: 42) == 42
    with pytest.warns(DeprecationWarning, match=r"mlplan.labels.latest_report is deprecated"):
        old_latest = importlib.import_module("mlplan.labels").latest_report
    assert old_latest(ws, "agreement") is None  # the old (report, passed, when) when there is one
    with pytest.warns(DeprecationWarning, match=r"mlplan.evaluation.clearance is deprecated"):
        old_clearance = importlib.import_module("mlplan.evaluation").clearance
    failed = {"gates": [{"id": "target:roc_auc", "state": "fail"}], "passed": False}
    cleared = old_clearance(ws, "m-1", evaluation=failed)  # the stored JSON, as it was passed
    assert not cleared.allowed and "target:roc_auc" in cleared.reason
    ws.close()


def test_a_server_process_loads_no_data_engine_it_does_not_use() -> None:
    # duckdb and pandas cost a server ~16 MB each worker; they load where they are used.
    loaded = {m.split(".")[0] for m in _loaded_after("import mlplan.serving, mlplan.checklist")}
    assert not {"duckdb", "pandas", "sklearn", "scipy", "matplotlib", "torch", "ray"} & loaded
