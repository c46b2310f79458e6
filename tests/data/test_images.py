"""Image-folder datasets: the image table, its profile, registration, splits and errors."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from mlplan.data import (
    check_leakage,
    image_table,
    load_table,
    profile_images,
    register_dataset,
    scan_data,
    split_dataset,
)
from mlplan.errors import DataError
from mlplan.workspace import Workspace

Image = pytest.importorskip("PIL.Image")

# Uniform grey images (brightness = the level, contrast 0), 8 wide and 6 high.
LEVELS = {"cat": [10, 20, 30], "dog": [200, 220]}


def _save(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def images(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    for label, levels in LEVELS.items():
        for i, level in enumerate(levels):
            _save(root / label / f"{i}.png", np.full((6, 8), level, np.uint8))
    return root


def test_image_table_has_one_row_per_image(images: Path) -> None:
    table = image_table(images)
    assert table.column_names == [
        "path",
        "label",
        "width",
        "height",
        "mode",
        "brightness",
        "contrast",
        "sha256",
    ]
    rows = table.to_pylist()
    assert [(r["path"], r["label"]) for r in rows] == [
        ("cat/0.png", "cat"),
        ("cat/1.png", "cat"),
        ("cat/2.png", "cat"),
        ("dog/0.png", "dog"),
        ("dog/1.png", "dog"),
    ]
    assert {(r["width"], r["height"], r["mode"]) for r in rows} == {(8, 6, "L")}
    assert [r["brightness"] for r in rows] == [10.0, 20.0, 30.0, 200.0, 220.0]
    assert [r["contrast"] for r in rows] == [0.0] * 5
    assert rows[0]["sha256"] == hashlib.sha256((images / "cat" / "0.png").read_bytes()).hexdigest()


def test_brightness_and_contrast_of_a_two_tone_image(tmp_path: Path) -> None:
    pixels = np.zeros((4, 4), np.uint8)
    pixels[:, 2:] = 200  # half black, half at 200: mean 100, std 100
    _save(tmp_path / "x" / "a" / "half.png", pixels)
    row = image_table(tmp_path / "x").to_pylist()[0]
    assert (row["brightness"], row["contrast"]) == (100.0, 100.0)


def test_colour_images_are_measured_in_grey(tmp_path: Path) -> None:
    _save(tmp_path / "x" / "red" / "r.png", np.full((5, 7, 3), (255, 0, 0), np.uint8))
    row = image_table(tmp_path / "x").to_pylist()[0]
    assert (row["width"], row["height"], row["mode"]) == (7, 5, "RGB")
    assert row["brightness"] == pytest.approx(0.299 * 255, abs=1)  # ITU-R 601-2 luma


def test_profile_summarises_classes_sizes_and_brightness(images: Path) -> None:
    summary = profile_images(image_table(images))["images"]
    assert summary["count"] == 5
    assert summary["classes"] == {"cat": 3, "dog": 2}
    assert summary["modes"] == {"L": 5}
    assert summary["width"] == {"min": 8, "max": 8, "mean": 8.0, "median": 8.0, "std": 0.0}
    brightness = summary["brightness"]
    assert (brightness["min"], brightness["max"], brightness["median"]) == (10.0, 220.0, 30.0)
    assert brightness["mean"] == pytest.approx(96.0)
    assert brightness["std"] == pytest.approx(float(np.std([10, 20, 30, 200, 220], ddof=1)))


def test_corrupt_image_is_named(images: Path) -> None:
    bad = images / "dog" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    with pytest.raises(
        DataError, match=rf"^{re.escape(str(bad))}: not a readable image \(.*\); remove or replace"
    ):
        image_table(images)


def test_folder_without_images_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match=r"empty: no images found"):
        image_table(tmp_path / "empty")


def test_scan_of_an_image_folder_suggests_image_classification(images: Path) -> None:
    suggestions = scan_data(images)
    assert suggestions.format == "images"
    assert suggestions.task == "image_classification"
    assert suggestions.rows == 5
    assert suggestions.classes == ["cat", "dog"]
    assert suggestions.target_candidates == ["label"]


# -- in the store ----------------------------------------------------------------------------


def _store_is_empty(ws: Workspace) -> bool:
    import sqlalchemy as sa

    from mlplan.store import Base

    with ws.store.engine.connect() as connection:
        return all(
            (connection.scalar(sa.select(sa.func.count()).select_from(t)) or 0) == 0
            for t in Base.metadata.sorted_tables
            if t.name != "alembic_version"
        )


def test_image_dataset_registers_without_the_tabular_target(
    sqlite_ws: Workspace, images: Path
) -> None:
    result = register_dataset(sqlite_ws, "pets", images)
    info = result.version
    assert result.created is True
    assert result.warnings and "not in the plan" in result.warnings[0]
    assert (info.ref, info.format, info.rows) == ("pets@1", "images", 5)
    assert info.profile["images"]["classes"] == {"cat": 3, "dog": 2}
    assert info.profile["images"]["brightness"]["mean"] == pytest.approx(96.0)
    json.dumps(info.to_dict(), allow_nan=False)


def test_same_images_again_are_the_same_version(sqlite_ws: Workspace, images: Path) -> None:
    register_dataset(sqlite_ws, "pets", images)
    assert register_dataset(sqlite_ws, "pets", images).created is False


def test_renaming_a_class_folder_makes_a_new_version(sqlite_ws: Workspace, images: Path) -> None:
    register_dataset(sqlite_ws, "pets", images)
    (images / "dog").rename(images / "puppy")
    second = register_dataset(sqlite_ws, "pets", images)
    assert (second.created, second.version.ref) == (True, "pets@2")
    assert second.version.profile["images"]["classes"] == {"cat": 3, "puppy": 2}


def test_image_snapshot_outlives_the_folder(sqlite_ws: Workspace, images: Path) -> None:
    expected = image_table(images)
    info = register_dataset(sqlite_ws, "pets", images).version
    shutil.rmtree(images)
    assert load_table(sqlite_ws, info).equals(expected)


def test_corrupt_image_fails_registration_and_writes_nothing(
    sqlite_ws: Workspace, images: Path
) -> None:
    (images / "cat" / "zz.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"zz\.png: not a readable image"):
        register_dataset(sqlite_ws, "pets", images)
    assert _store_is_empty(sqlite_ws)


def test_duplicate_image_bytes_across_splits_are_leakage(images: Path) -> None:
    shutil.copy(images / "cat" / "0.png", images / "dog" / "copy.png")  # same bytes, other name
    table = image_table(images)
    codes = np.array(
        [2 if p == "dog/copy.png" else 0 for p in table.column("path").to_pylist()], np.int8
    )
    report = check_leakage(table, codes, group=None, id_column=None, ignore=["path"])
    assert report.compared_columns == ["sha256"]
    assert report.duplicate_groups == 1
    assert report.passed is False


def test_image_dataset_splits_and_counts_labels(sqlite_ws: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "many"
    for label in ("cat", "dog"):
        for i in range(10):
            _save(root / label / f"{i}.png", np.full((4, 4), i * 10 + (label == "dog"), np.uint8))
    register_dataset(sqlite_ws, "pets", root)
    split = split_dataset(sqlite_ws, "pets", stratify="label", test=0.2, valid=0.1, seed=0)
    assert split.counts["test"]["target"] == {"cat": 2, "dog": 2}
    assert split.counts["train"]["target"] == {"cat": 7, "dog": 7}
    assert split.leakage["compared_columns"] == ["sha256"]
    assert split.passed is True
