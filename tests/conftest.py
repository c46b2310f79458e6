"""Shared fixtures: a seeded rng, project folders with a plan and data, stores on SQLite and on
a real PostgreSQL server that this test session starts (and stops) itself."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
import sqlalchemy as sa
from hypothesis import settings
from typer.testing import CliRunner

from mlplan.plan import render_plan
from mlplan.workspace import Workspace

# The CLI's rich consoles read COLUMNS once, when mlplan.cli is first imported — by whichever
# test comes first in a pytest process (with xdist, each worker's first): wide for all of them,
# so no table cell or path is cut where a test looks for it.
os.environ["COLUMNS"] = "200"

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")

# Property tests draw the same examples on every run (deterministic, as all our tests) and
# keep no example database in the working tree.
settings.register_profile("mlplan", derandomize=True, database=None, deadline=None)
settings.load_profile("mlplan")


# -- PostgreSQL ----------------------------------------------------------------------------------


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    return candidates[-1].parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Postgres:
    """A throwaway PostgreSQL cluster in a temporary folder, on a free loopback port."""

    def __init__(self) -> None:
        self.error: str | None = None
        self.url: str | None = os.environ.get("MLPLAN_TEST_POSTGRES_URL")
        self._dir: Path | None = None
        self._bin: Path | None = None
        self._user: list[str] = []
        if self.url is None:
            self._start()

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._user, *args], capture_output=True, text=True, timeout=120, check=False
        )

    def _start(self) -> None:
        self._bin = _postgres_bin()
        if self._bin is None:
            self.error = (
                "PostgreSQL is not installed (no initdb found). `make test` installs it "
                "when run as root; or set MLPLAN_TEST_POSTGRES_URL to a server"
            )
            return
        self._dir = Path(tempfile.mkdtemp(prefix="mlplan-pg-"))
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                self.error = "running as root and there is no 'postgres' user to run the server"
                return
            os.chown(self._dir, pw.pw_uid, pw.pw_gid)
            self._user = ["runuser", "-u", "postgres", "--"]
        data = self._dir / "data"
        port = _free_port()
        init = self._run(
            str(self._bin / "initdb"),
            "-D",
            str(data),
            "-U",
            "mlplan",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        if init.returncode != 0:
            self.error = f"initdb failed: {init.stderr.strip()[-500:]}"
            return
        start = self._run(
            str(self._bin / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-t",
            "60",
            "-l",
            str(self._dir / "log"),
            "-o",
            f"-p {port} -k {self._dir} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )
        if start.returncode != 0:
            log = (self._dir / "log").read_text() if (self._dir / "log").exists() else ""
            self.error = f"pg_ctl start failed: {start.stderr.strip()[-300:]} {log[-300:]}"
            return
        self.url = f"postgresql+psycopg://mlplan@127.0.0.1:{port}/postgres"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import sqlalchemy as sa

        assert self.url is not None
        name = f"t_{uuid.uuid4().hex[:12]}"
        engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def stop(self) -> None:
        if self._bin is not None and self._dir is not None and self.url is not None:
            self._run(
                str(self._bin / "pg_ctl"), "-D", str(self._dir / "data"), "-m", "fast", "-w", "stop"
            )
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)


_SKIP_POSTGRES = os.environ.get("MLPLAN_SKIP_POSTGRES") == "1"


@pytest.fixture(scope="session")
def postgres() -> Iterator[_Postgres]:
    """The session's PostgreSQL server. Tests that need it fail, loudly, when it cannot start
    (MLPLAN_SKIP_POSTGRES=1 turns that into a skip, which the summary reports)."""
    if _SKIP_POSTGRES:
        pytest.skip("MLPLAN_SKIP_POSTGRES=1: PostgreSQL tests skipped")
    server = _Postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL on each backend: SQLite in tmp_path, and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        (tmp_path / ".mlplan").mkdir(exist_ok=True)
        return f"sqlite:///{tmp_path / '.mlplan' / 'store.db'}"
    server: _Postgres = request.getfixturevalue("postgres")
    if server.error:
        pytest.fail(f"PostgreSQL could not be started: {server.error}", pytrace=False)
    return server.new_database()


@contextlib.contextmanager
def migrated(store_url: str, revision: str, *, down: bool = False) -> Iterator[Any]:
    """A connection to the database at ``store_url``, inside one transaction, once Alembic
    has migrated it up (or, with ``down``, down) to ``revision``."""
    from alembic import command
    from alembic.config import Config

    import mlplan.store._store as store_module

    engine = sa.create_engine(store_url)
    config = Config()
    config.set_main_option("script_location", str(store_module._MIGRATIONS))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            (command.downgrade if down else command.upgrade)(config, revision)
            yield connection
    finally:
        engine.dispose()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _SKIP_POSTGRES:
        terminalreporter.write_sep(
            "!", "PostgreSQL tests were SKIPPED (MLPLAN_SKIP_POSTGRES=1)", red=True, bold=True
        )


# -- data and projects ---------------------------------------------------------------------------


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator."""
    return np.random.default_rng(20261128)


def customers_table(rows: int = 400, seed: int = 7) -> pa.Table:
    """A small customer table with demographics, PII, missing values and a rare target."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, rows + 1)
    return pa.table(
        {
            "customer_id": ids,
            "name": [f"Person {i}" for i in ids],
            "email": [f"person{i}@example.com" for i in ids],
            "gender": pa.array(rng.choice(["female", "male"], rows), mask=rng.random(rows) < 0.05),
            "age": rng.integers(18, 90, rows),
            "region": rng.choice(["north", "south", "east"], rows),
            "charges": pa.array(rng.normal(60, 15, rows).round(2), mask=rng.random(rows) < 0.1),
            "churned": (rng.random(rows) < 0.15).astype(np.int64),
        }
    )


def arrests_table(rows: int = 600, seed: int = 3) -> pa.Table:
    """Shaped like a public arrests dataset: the outcome comes first under a name no rule
    knows, 0/1 and yes/no features follow, the last column has few values."""
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "released": rng.choice(["Yes", "No"], rows, p=[0.83, 0.17]),
            "colour": rng.choice(["Black", "White"], rows, p=[0.3, 0.7]),
            "year": rng.integers(1997, 2003, rows),
            "age": rng.integers(12, 66, rows),
            "sex": rng.choice(["Male", "Female"], rows, p=[0.9, 0.1]),
            "employed": rng.choice(["Yes", "No"], rows),
            "citizen": rng.choice(["Yes", "No"], rows, p=[0.85, 0.15]),
            "checks": rng.integers(0, 7, rows),
        }
    )


def write_csv(table: pa.Table, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pcsv.write_csv(table, path)
    return path


def exported_table(
    rows: int = 600, seed: int = 11, *, row_number: str = "rownames", start: int = 1
) -> pa.Table:
    """Clinical data as an R or pandas export leaves it: a row number first (R's
    ``rownames`` from 1, pandas' ``Unnamed: 0`` from 0), then a few columns with few values
    each, so that feature rows repeat naturally, and a binary target."""
    rng = np.random.default_rng(seed)
    chest_pain = rng.choice(
        ["typical", "atypical", "non-anginal", "none"], rows, p=[0.5, 0.2, 0.2, 0.1]
    )
    exang = rng.choice([0, 1], rows, p=[0.7, 0.3])
    slope = rng.choice([0, 1, 2], rows, p=[0.1, 0.5, 0.4])
    risk = (chest_pain == "none") * 1.5 + exang + (slope == 0) + rng.normal(0, 1, rows)
    return pa.table(
        {
            row_number: np.arange(start, rows + start),
            "sex": rng.choice(["F", "M"], rows, p=[0.3, 0.7]),
            "chest_pain": chest_pain,
            "fbs": rng.choice([0, 1], rows, p=[0.85, 0.15]),
            "exang": exang,
            "slope": slope,
            "disease": (risk > 1).astype(np.int64),
        }
    )


def exported_workspace(root: Path) -> Workspace:
    """A project in ``root`` whose dataset ``heart`` is :func:`exported_table`, registered,
    on its default SQLite store (the caller closes it)."""
    write_csv(exported_table(), root / "data" / "heart.csv")
    plan = render_plan("heart", task="binary", target="disease").replace(
        "  main:\n    path: data/main.csv", "  heart:\n    path: data/heart.csv"
    )
    (root / "mlplan.yaml").write_text(plan)
    from mlplan.data import register_dataset

    workspace = Workspace(root)
    register_dataset(workspace, "heart")
    return workspace


def write_churn_project(root: Path) -> Path:
    """Write a plan for a binary churn task and data/customers.csv into ``root``."""
    write_csv(customers_table(), root / "data" / "customers.csv")
    plan = render_plan("churn", task="binary", target="churned")
    plan = plan.replace(
        "  main:\n    path: data/main.csv", "  customers:\n    path: data/customers.csv"
    )
    plan = plan.replace("    pii_columns: null", "    pii_columns: [name, email]")
    (root / "mlplan.yaml").write_text(plan)
    return root


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A project folder with a plan for a binary churn task and data/customers.csv."""
    return write_churn_project(tmp_path)


@pytest.fixture
def ws(project_dir: Path, store_url: str) -> Iterator[Workspace]:
    """The project's workspace, on each store backend (on SQLite, its store file begins as a
    copy of a new one that was migrated once per test process)."""
    if store_url.startswith("sqlite:///"):
        shutil.copyfile(_migrated_sqlite_store(), store_url.removeprefix("sqlite:///"))
    workspace = Workspace(project_dir, store_url=store_url)
    yield workspace
    workspace.close()


_MIGRATED: list[Path] = []


def _migrated_sqlite_store() -> Path:
    """A new SQLite store file, migrated to the head revision as opening one does (made once
    per test process: migrating from nothing was a third of a second of every test on ``ws``),
    and closed; removed with the projects made once."""
    if not _MIGRATED:
        from mlplan.store import open_store

        folder = Path(tempfile.mkdtemp(prefix="mlplan-migrated-"))
        open_store(folder).close()
        (made,) = (folder / ".mlplan").glob("store.db*")  # no journal left beside it
        _MIGRATED.append(made)
    return _MIGRATED[0]


@pytest.fixture
def sqlite_ws(project_dir: Path) -> Iterator[Workspace]:
    """The project's workspace on its default SQLite store (which begins as a copy of a new
    one that was migrated once per test process)."""
    (project_dir / ".mlplan").mkdir(exist_ok=True)
    shutil.copyfile(_migrated_sqlite_store(), project_dir / ".mlplan" / "store.db")
    workspace = Workspace(project_dir)
    yield workspace
    workspace.close()


def ok(result: Any) -> Any:
    """A CliRunner result that must have succeeded (its output shown when it did not)."""
    assert result.exit_code == 0, result.output
    return result


def edit_plan(ws: Workspace, old: str, new: str) -> None:
    """Replace ``old`` (which must be there) by ``new`` in the project's plan, and forget the
    plan read so far."""
    text = ws.plan_path.read_text()
    assert old in text, old
    ws.plan_path.write_text(text.replace(old, new, 1))
    ws.__dict__.pop("plan", None)


def register_split_train(
    ws: Workspace,
    *,
    dataset: str = "customers",
    id_column: str | None = "customer_id",
    stratify: str | None = "churned",
    seed: int = 1,
    family: str | None = "logistic",
) -> Workspace:
    """The usual start of a test about a later stage: the plan's dataset registered (with
    its ``id_column``), split (stratified by the target, seeded) and, unless ``family`` is
    None, one model trained (``logistic-1`` by default).

    Done for real once per test process for each project (its files, its store) and
    arguments, and copied from there afterwards: most tests of a later stage begin so, and this
    was most of their setup (see :func:`_made_once`)."""
    arguments = (dataset, id_column, stratify, seed, family)
    _made_once(
        ws, "register_split_train", arguments, lambda w: _register_split_train(w, *arguments)
    )
    return ws


def _register_split_train(
    ws: Workspace,
    dataset: str,
    id_column: str | None,
    stratify: str | None,
    seed: int,
    family: str | None,
) -> Workspace:
    from mlplan.data import register_dataset, split_dataset
    from mlplan.modeling import train_model

    if id_column is not None:
        edit_plan(ws, "    id_column: null", f"    id_column: {id_column}")
    register_dataset(ws, dataset)
    split_dataset(ws, dataset, stratify=stratify, seed=seed)
    if family is not None:
        train_model(ws, family=family)  # type: ignore[arg-type]
    return ws


_MADE: dict[str, tuple[Path, Any]] = {}
"""Projects made by :func:`_made_once` in this test process, by what they were made from
(see :func:`_made_key`), with what making them returned; removed when the session ends."""


def _made_once(
    ws: Workspace, helper: str, arguments: tuple[Any, ...], make: Callable[[Workspace], T]
) -> T:
    """``make(ws)``, done for real in a copy of the project the first time this test process
    meets the same project (files and store) and ``arguments``, and copied into ``ws``'s
    project every time (so ``ws`` itself has not opened its store). A project that cannot be
    copied so (see :func:`_made_key`) is made in place."""
    key = _made_key(ws, helper, arguments)
    if key is None:
        return make(ws)
    if key not in _MADE:
        made = Path(tempfile.mkdtemp(prefix="mlplan-made-"))
        shutil.copytree(ws.root, made, dirs_exist_ok=True)
        making = Workspace(made)
        try:
            _MADE[key] = (made, make(making))
        finally:
            making.close()
    made, result = _MADE[key]
    shutil.copytree(made, ws.root, dirs_exist_ok=True)
    ws.__dict__.pop("plan", None)  # the plan may have been edited
    return cast(T, result)


def _made_key(ws: Workspace, helper: str, arguments: tuple[Any, ...]) -> str | None:
    """What ``helper(ws, *arguments)`` makes depends on: every file of the project (its plan,
    but for the random project key that each plan rendered gets; its data; its store) and the
    arguments. None where the project cannot be copied: its store is elsewhere than its own
    SQLite file, or is open (``ws`` opened it, or something else holds a journal beside it)."""
    elsewhere = ws._store_url or ws._given_store or os.environ.get("MLPLAN_STORE_URL")
    if elsewhere or os.environ.get("MLPLAN_ARTIFACTS_DIR") or "store" in ws.__dict__:
        return None
    if list((ws.root / ".mlplan").glob("store.db-*")):
        return None
    digest = hashlib.sha256(repr((helper, arguments)).encode())
    for path in sorted(ws.root.rglob("*")):
        if path.is_file():
            content = path.read_bytes()
            if path == ws.plan_path:  # the copy brings the made project's key, in step
                content = re.sub(rb'(?m)^(  key: )"[0-9a-f]+"', rb"\1", content)
            digest.update(f"\0{path.relative_to(ws.root)}\0".encode())
            digest.update(content)
    return digest.hexdigest()


@pytest.fixture(scope="session", autouse=True)
def _made_projects() -> Iterator[None]:
    """Remove the projects and the store made once, when the test process ends."""
    yield
    for made, _ in _MADE.values():
        shutil.rmtree(made, ignore_errors=True)
    for store in _MIGRATED:
        shutil.rmtree(store.parents[1], ignore_errors=True)


def evaluated(ws: Workspace, model: str = "logistic-1", *, by: str = "Priya") -> str:
    """Evaluate ``model`` (no bootstrap) so that it may be deployed: when a gate fails, the
    plan's deploy role approves that evaluation. The package version evaluated.

    Done for real once per test process for each project and arguments, as
    :func:`register_split_train` is (a report is rendered: seconds each time)."""
    return _made_once(ws, "evaluated", (model, by), lambda w: _evaluated(w, model, by))


def _evaluated(ws: Workspace, model: str, by: str) -> str:
    from mlplan.evaluation import evaluate
    from mlplan.workspace import DEPLOY_GATE, approve

    evaluation = evaluate(ws, model, n_boot=0)
    assert evaluation.package is not None
    ref = str(evaluation.package["ref"])
    if not evaluation.passed:
        rule = ws.plan.approval_for(DEPLOY_GATE)
        assert rule is not None
        approve(ws, DEPLOY_GATE, role=rule.role, by=by, subject=ref, note="for the test")
    return ref


@pytest.fixture
def split_ws(sqlite_ws: Workspace) -> Workspace:
    """The project on SQLite with customers registered and split (seed 1, stratified)."""
    return register_split_train(sqlite_ws, family=None)


@pytest.fixture
def trained_ws(sqlite_ws: Workspace) -> Workspace:
    """The project on SQLite with customers registered, split, and logistic-1 trained."""
    return register_split_train(sqlite_ws)


@pytest.fixture
def cli(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run ``mlplan ARGS`` in the project folder through Typer's CliRunner."""
    from mlplan.cli import app

    monkeypatch.chdir(project_dir)
    monkeypatch.delenv("MLPLAN_STORE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def run(*args: str) -> Any:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        if "--json" in args and result.exit_code == 0:
            strict_json(result.stdout)  # every --json answer of every CLI test
        return result

    return run


def strict_json(text: str) -> Any:
    """``text`` parsed as strict JSON: NaN and Infinity, which Python's parser would let
    through and strict parsers refuse, fail the test."""

    def refuse(constant: str) -> Any:
        raise AssertionError(f"not strict JSON: a bare {constant} in the output")

    return json.loads(text, parse_constant=refuse)


@contextlib.contextmanager
def chdir(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def long_tail_table(rows: int = 1200, seed: int = 11) -> pa.Table:
    """Card payments: ``merchant`` has three common values and a long tail of 60 merchants
    seen one to four times each (as a public transactions export has), ``channel`` two
    common values; fraud follows the amount and one common merchant."""
    rng = np.random.default_rng(seed)
    tail = [f"shop-{i:02d}" for i in range(60)]
    tail_rows = np.repeat(tail, rng.integers(1, 5, len(tail)))
    common = rng.choice(["grocer", "fuel", "online"], rows - len(tail_rows), p=[0.4, 0.3, 0.3])
    merchant = rng.permutation(np.concatenate([common, tail_rows]))
    amount = np.round(rng.lognormal(3, 1, rows), 2)
    signal = 0.02 * amount + 1.5 * (merchant == "online") + rng.normal(0, 1, rows)
    return pa.table(
        {
            "merchant": merchant,
            "channel": rng.choice(["card", "phone"], rows),
            "amount": amount,
            "fraud": (signal > 2.0).astype(np.int64),
        }
    )


def table_project(root: Path, table: pa.Table, *, target: str, modeling: str = "") -> Workspace:
    """A binary project on ``table``, a file nobody here shaped: registered as dataset ``rows``
    and split (seed 1); ``modeling`` holds more lines of the plan's modeling section."""
    from mlplan.data import register_dataset, split_dataset

    write_csv(table, root / "data" / "rows.csv")
    (root / "mlplan.yaml").write_text(
        f"""project: {{name: tables, key: tables}}
task: binary
target: {target}
datasets:
  rows:
    path: data/rows.csv
modeling:
  seed: 0
{modeling}"""
    )
    ws = Workspace(root)
    register_dataset(ws, "rows")
    split_dataset(ws, "rows", seed=1)
    return ws


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """A real local Ray cluster of two CPUs for one test module, shut down after it."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
