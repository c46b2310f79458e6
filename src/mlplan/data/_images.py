"""Image-folder datasets: one subfolder per class. Each image becomes a row (path, label,
size, brightness, contrast), and the profile summarises sizes, brightness and contrast."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mlplan._optional import require
from mlplan.data._profile import profile_table
from mlplan.data._read import list_images
from mlplan.errors import DataError

__all__ = ["image_table", "profile_images"]


def image_table(root: Path) -> pa.Table:
    """One row per image: ``path`` (relative), ``label`` (its folder), ``width``, ``height``,
    ``mode``, ``brightness`` (mean grey level, 0–255), ``contrast`` (its standard deviation) and
    ``sha256`` (of the file's bytes, to find duplicates across splits).

    Raises
    ------
    DataError
        When a file cannot be decoded as an image (the file is named).
    """
    image_module = require("PIL.Image", extra="images", purpose="reading image folders")
    rows: dict[str, list[Any]] = {
        k: []
        for k in ("path", "label", "width", "height", "mode", "brightness", "contrast", "sha256")
    }
    for image in list_images(root):
        try:
            data = image.path.read_bytes()
            with image_module.open(io.BytesIO(data)) as img:
                width, height = img.size
                mode = img.mode
                grey = np.asarray(img.convert("L"), dtype=np.float64)
        except (OSError, SyntaxError, ValueError) as exc:
            raise DataError(
                f"{image.path}: not a readable image ({exc}); remove or replace it "
                "and add the folder again"
            ) from None
        rows["path"].append(image.relative)
        rows["label"].append(image.label)
        rows["width"].append(width)
        rows["height"].append(height)
        rows["mode"].append(mode)
        rows["brightness"].append(float(grey.mean()))
        rows["contrast"].append(float(grey.std()))
        rows["sha256"].append(hashlib.sha256(data).hexdigest())
    return pa.table(rows)


def profile_images(table: pa.Table) -> dict[str, Any]:
    """The profile of an image table: the per-column profile plus an ``images`` summary."""
    profile = profile_table(table.drop_columns(["sha256"]))
    labels = table.column("label").to_pylist()
    classes = {label: labels.count(label) for label in sorted(set(labels))}
    columns = profile["columns"]
    profile["images"] = {
        "count": table.num_rows,
        "classes": classes,
        "width": _summary(columns["width"]),
        "height": _summary(columns["height"]),
        "brightness": _summary(columns["brightness"]),
        "contrast": _summary(columns["contrast"]),
        "modes": {t["value"]: t["count"] for t in columns["mode"].get("top", [])},
    }
    return profile


def _summary(column: dict[str, Any]) -> dict[str, Any]:
    quantiles = column["quantiles"]
    return {
        "min": column["min"],
        "max": column["max"],
        "mean": column["mean"],
        "median": quantiles["0.5"],
        "std": column["std"],
    }
