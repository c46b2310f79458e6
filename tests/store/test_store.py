from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.conftest import _free_port, migrated, ok, write_churn_project

from mlplan.errors import StoreError
from mlplan.store import (
    HEAD_REVISION,
    ApprovalRecord,
    ArtifactStore,
    Base,
    ProjectRecord,
    RunRecorder,
    Store,
    open_store,
    sha256_file,
    utcnow,
)


def test_head_revision_constant_matches_alembic() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    import mlplan.store._store as store_module

    config = Config()
    config.set_main_option("script_location", str(store_module._MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def test_migrations_build_exactly_the_declared_schema(store_url: str, tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    store = open_store(tmp_path, url=store_url)
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    store.close()


def test_opening_twice_is_idempotent(store_url: str, tmp_path: Path) -> None:
    first = open_store(tmp_path, url=store_url)
    with first.transaction() as session:
        first.project_id(session, "churn")
    first.close()
    second = open_store(tmp_path, url=store_url)
    with second.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(ProjectRecord)) == 1
        assert second.project_id(session, "churn") == 1
    second.close()


def test_default_store_is_sqlite_in_wal_mode_with_foreign_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLPLAN_STORE_URL", raising=False)
    store = open_store(tmp_path)
    assert (tmp_path / ".mlplan" / "store.db").is_file()
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    store.close()


def test_env_url_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere.db"
    monkeypatch.setenv("MLPLAN_STORE_URL", f"sqlite:///{elsewhere}")
    store = open_store(tmp_path / "project")
    assert elsewhere.is_file()
    assert store.url.endswith("elsewhere.db")
    store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", r"is not a database URL: expected e.g. sqlite:///"),
        ("mysql://u:p@localhost/db", r"only sqlite and postgresql stores are supported"),
    ],
    ids=["garbage", "unsupported"],
)
def test_bad_store_urls_are_named(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        open_store(tmp_path, url=url)


def test_unreachable_postgres_says_so_without_the_password(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://alice:s3cret-pw@127.0.0.1:{port}/mlplan"
    with pytest.raises(StoreError) as caught:
        open_store(tmp_path, url=url)
    message = str(caught.value)
    assert message.startswith(
        f"cannot connect to the store at postgresql://alice:***@127.0.0.1:{port}/mlplan"
    )
    assert "s3cret-pw" not in message
    assert "Check the store URL" in message


def test_a_failed_command_leaves_nothing(store_url: str, tmp_path: Path) -> None:
    store = open_store(tmp_path, url=store_url)
    with pytest.raises(RuntimeError), store.transaction() as session:
        project = store.project_id(session, "churn")
        session.add(ApprovalRecord(project_id=project, gate="buy_in", role="r", by="b"))
        session.flush()
        raise RuntimeError("the command failed after writing")
    with store.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(ApprovalRecord)) == 0
        assert session.scalar(sa.select(sa.func.count()).select_from(ProjectRecord)) == 0
    store.close()


def test_constraint_violations_become_store_errors(store_url: str, tmp_path: Path) -> None:
    store = open_store(tmp_path, url=store_url)
    with (
        pytest.raises(StoreError, match=r"refused the write: IntegrityError"),
        store.transaction() as session,
    ):
        session.add(ApprovalRecord(project_id=999, gate="buy_in", role="r", by="b"))
    store.close()


def test_a_store_that_cannot_be_reached_says_so_not_that_it_refused(tmp_path: Path) -> None:
    # A PostgreSQL store gone away after it was opened: a replica cut off from it reads
    # this in its output, so it must not speak of a refused write.
    url = f"postgresql+psycopg://mlplan@127.0.0.1:{_free_port()}/mlplan"
    store = Store(sa.create_engine(url, pool_pre_ping=True), ArtifactStore(tmp_path))
    with (
        pytest.raises(
            StoreError,
            match=rf"^the store at {re.escape(url)} could not be reached: OperationalError: "
            r".*Connection refused",
        ),
        store.transaction() as session,
    ):
        session.execute(sa.text("SELECT 1"))
    store.close()


def test_timestamps_come_back_timezone_aware(store_url: str, tmp_path: Path) -> None:
    store = open_store(tmp_path, url=store_url)
    with store.transaction() as session:
        project = store.project_id(session, "churn")
        run = RunRecorder.start(
            session, project_id=project, job="test", parameters={"a": 1}, root=tmp_path
        )
        run.input("file", "x.csv", sha256="0" * 64)
        run.finish()
    with store.transaction() as session:
        created = session.scalar(sa.select(ProjectRecord.created_at))
    assert created is not None and created.tzinfo is not None
    assert abs(created - utcnow()) < dt.timedelta(minutes=5)
    store.close()


def test_run_records_code_packages_and_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPLAN_USER", "ada")
    store = open_store(tmp_path)
    with store.transaction() as session:
        run = RunRecorder.start(
            session,
            project_id=store.project_id(session, "p"),
            job="j",
            parameters={},
            root=tmp_path,
        )
        run.finish()
        record = run.record
    assert record.user == "ada"
    assert record.status == "completed"
    assert "python" in record.packages and "sqlalchemy" in record.packages
    assert record.code_version is None  # tmp_path is not a git repository
    store.close()


def test_artifacts_are_content_addressed_and_atomic(tmp_path: Path) -> None:
    artifacts = ArtifactStore(tmp_path / "artifacts")
    source = tmp_path / "data.bin"
    source.write_bytes(b"x" * 3_000_000)
    ref = artifacts.put_file(source)
    assert ref.sha256 == hashlib.sha256(b"x" * 3_000_000).hexdigest()
    assert ref.size_bytes == 3_000_000
    assert artifacts.path(ref.sha256).read_bytes() == source.read_bytes()
    assert artifacts.put_bytes(b"x" * 3_000_000) == ref  # same content, same address
    assert sha256_file(artifacts.path(ref.sha256)) == ref
    leftovers = [p for p in (tmp_path / "artifacts").rglob(".incoming-*")]
    assert leftovers == []


def test_a_file_handed_to_the_disk_as_it_is_written_and_started_again_is_stored_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer puts its bytes on the disk in a thread every WRITEBACK_BYTES (lowered here) so
    that the fsync at the end waits for little; a read that starts again starts the file again,
    and what is stored is what was written since, whole."""
    import mlplan.store._artifacts as stored

    monkeypatch.setattr(stored, "WRITEBACK_BYTES", 1_000)
    artifacts = ArtifactStore(tmp_path / "artifacts")
    data = bytes(range(256)) * 11
    with artifacts.writer() as out:
        for _ in range(5):
            out.write(b"x" * 700)
        assert out.handed == 2_800
        out.restart()
        for start in range(0, len(data), 900):
            out.write(data[start : start + 900])
        assert out.handed == len(data)  # 1,800 bytes, then the 1,016 after them
    assert out.ref is not None
    assert out.ref.sha256 == hashlib.sha256(data).hexdigest() and out.ref.size_bytes == len(data)
    assert artifacts.path(out.ref.sha256).read_bytes() == data
    with pytest.raises(KeyError), artifacts.writer() as out:  # a failed read: nothing kept
        out.write(b"y" * 2_500)
        raise KeyError("the read failed")
    assert not [t for t in threading.enumerate() if t.name == "mlplan-sync"]
    assert not list((tmp_path / "artifacts").glob(".incoming-*"))


def test_a_write_the_disk_lost_while_syncing_is_never_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Linux reports a lost write once per open file: when the syncing thread's fdatasync
    fails, the final fsync succeeds, so the thread's error is raised and nothing is stored
    (data add then fails rather than acknowledging a snapshot the disk does not hold)."""
    import errno

    import mlplan.store._artifacts as stored

    monkeypatch.setattr(stored, "WRITEBACK_BYTES", 1_000)

    tried = threading.Event()

    def lost(fd: int) -> None:
        tried.set()
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(stored.os, "fdatasync", lost)
    artifacts = ArtifactStore(tmp_path / "artifacts")
    with pytest.raises(OSError, match="Input/output error"), artifacts.writer() as out:
        out.write(b"z" * 2_500)
        assert tried.wait(10)  # the thread has synced (and lost the write)
    assert out.ref is None
    assert not [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]


def test_an_older_store_is_upgraded_in_place_keeping_its_records(
    store_url: str, tmp_path: Path
) -> None:
    with migrated(store_url, "0001") as connection:
        connection.execute(
            sa.text(
                "INSERT INTO projects (key, name, created_at) VALUES ('name:old', 'old', "
                "CURRENT_TIMESTAMP)"
            )
        )
    store = open_store(tmp_path, url=store_url)  # migrates to head on open
    with store.engine.connect() as connection:
        assert (
            connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            == HEAD_REVISION
        )
        assert connection.execute(sa.text("SELECT name FROM projects")).scalar() == "old"
        assert sa.inspect(connection).has_table("annotations")
    store.close()


def test_shared_artifact_folder(
    cli: Any, project_dir: Path, tmp_path_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path_factory.mktemp("team-artifacts")
    monkeypatch.setenv("MLPLAN_ARTIFACTS_DIR", str(shared))
    added = json.loads(ok(cli("data", "add", "customers", "--json")).stdout)
    snapshot = shared / added["snapshot_sha256"][:2] / added["snapshot_sha256"][2:]
    assert snapshot.is_file()
    assert snapshot.stat().st_mode & 0o044 == 0o044  # teammates can read it


def test_a_runs_package_versions_are_those_the_full_metadata_parser_reads() -> None:
    """Read from the head of each metadata file, the versions equal importlib's parse."""
    import importlib.metadata
    import platform

    from mlplan.store._runs import package_versions

    parsed = {
        dist.metadata["Name"].lower(): dist.version
        for dist in importlib.metadata.distributions()
        if dist.metadata["Name"]
    }
    read = package_versions.__wrapped__()  # fresh: the cached one is the process's first
    assert read == dict(sorted(({"python": platform.python_version()} | parsed).items()))
    assert read["pyarrow"] == importlib.metadata.version("pyarrow")


def test_json_columns_read_back_what_was_written_nan_and_big_integers_included(
    tmp_path: Path,
) -> None:
    """The store reads its JSON columns with orjson where installed and falls back to the
    standard library for what orjson refuses: a NaN metric and an integer past 64 bits come
    back as written, beside ordinary values."""
    import math

    from mlplan.workspace import Workspace

    root = write_churn_project(tmp_path)
    ws = Workspace(root)
    try:
        written = {"plain": [1, 2.5, "é", None, True], "nan": float("nan"), "big": 2**70}
        with ws.record("note", {}) as run:
            run.report("note", written)
        read = ws.latest_report("note")
        assert read is not None
        got = read.report
        assert got["plain"] == written["plain"] and got["big"] == 2**70
        assert math.isnan(got["nan"])
    finally:
        ws.close()
