"""Request ids that verify themselves across processes and restarts, and the keyed hashes
that stand in for strings a client chose."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplan.serving._ids import ID_LENGTH, RequestIds, keyed_hash, unknown_field
from mlplan.serving._log import PiiPolicy, log_key


def test_an_id_issued_by_one_process_verifies_in_another_and_after_a_restart(
    tmp_path: Path,
) -> None:
    worker = RequestIds(log_key(tmp_path))  # the key is made once, in the log's folder
    issued = [worker.issue() for _ in range(1000)]
    assert len(set(issued)) == 1000 and {len(i) for i in issued} == {ID_LENGTH}
    other = RequestIds(log_key(tmp_path))  # a second worker, or the next start
    assert all(other.issued(i) for i in issued)
    assert other.issue()[:12] != issued[0][:12]  # its own prefix: the two never collide


@pytest.mark.parametrize(
    "forged",
    [
        "ada.lovelace@example.com",
        "+44 20 7946 0958",
        "",
        "0" * ID_LENGTH,
        "é" * ID_LENGTH,
        "tamper",  # replaced below: a real id with one digit of its counter changed
        "other key",  # replaced below: a real id from a project with another key
    ],
)
def test_ids_never_issued_are_refused(tmp_path: Path, forged: str) -> None:
    ids = RequestIds(log_key(tmp_path))
    real = ids.issue()
    if forged == "tamper":
        forged = real[:20] + ("1" if real[20] != "1" else "2") + real[21:]
    elif forged == "other key":
        forged = RequestIds(log_key(tmp_path / "elsewhere")).issue()
    assert ids.issued(real) and not ids.issued(forged)


def test_the_keyed_hash_is_the_one_the_log_gives_personal_data() -> None:
    key = bytes(range(32))
    policy = PiiPolicy(frozenset({"email"}), "hash", key)
    assert policy.apply({"email": "ada@example.com"})["email"] == keyed_hash(key, "ada@example.com")
    assert keyed_hash(key, "\ud800").startswith("hmac:")  # a lone surrogate hashes too


def test_an_unknown_field_is_described_without_its_name() -> None:
    key = bytes(32)
    place, described = unknown_field(key, "ada@example.com", 4)
    assert place == "<unknown field 4>"
    assert described == (
        "unknown field (key 4 of the object, from 0: 15 characters, "
        f"keyed hash {keyed_hash(key, 'ada@example.com')[5:13]})"
    )
    assert "ada" not in place + described
