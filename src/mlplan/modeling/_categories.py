"""Rare categories: those seen in fewer than ``modeling.min_frequency`` training rows share one
``(infrequent)`` input, in the trained pipeline and inside its ONNX graph alike.

scikit-learn's own bucketing (``OneHotEncoder(min_frequency=...)``) does not survive the
export: skl2onnx's converter drops it, so a package would score a rare category as unseen
(all zeros) while the model it was checked against scored it as the bucket. Here the bucket is
a step of its own, ``RareCategories``, before the one-hot encoding, with a converter that
writes the same mapping into the graph. A category never seen in training passes through
unchanged, so it is still unseen to the encoder and to the serving checks.

``RareCategories`` subclasses scikit-learn's ``BaseEstimator``; scikit-learn is an extra, so
the class is made at first use (this module's ``__getattr__``) and pickles by its name here.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from mlplan._optional import require
from mlplan.modeling._features import MISSING_CATEGORY

__all__ = ["INFREQUENT_CATEGORY", "infrequent_categories", "rare_categories", "register_converter"]

INFREQUENT_CATEGORY = "(infrequent)"


def infrequent_categories(
    counts: Mapping[str, Mapping[str, int]], min_frequency: int
) -> dict[str, list[str]]:
    """The categories of each column seen in fewer than ``min_frequency`` training rows, from
    each column's counts of the categories those rows hold (``feature_frames``: a missing
    value counted as ``MISSING_CATEGORY``, which is not a category), for the columns that
    have any.

    Examples
    --------
    >>> infrequent_categories({"city": {"Oslo": 3, "Bergen": 1, "Molde": 1, "(missing)": 1}}, 2)
    {'city': ['Bergen', 'Molde']}
    """
    found = {}
    for name, counted in counts.items():
        rare = sorted(
            str(category)
            for category, n in counted.items()
            if n < min_frequency and category != MISSING_CATEGORY
        )
        if rare:
            found[name] = rare
    return found


@functools.cache
def _transformer_class() -> type:
    base = require("sklearn.base", extra="models", purpose="training models")

    class RareCategories(base.TransformerMixin, base.BaseEstimator):  # type: ignore[misc, name-defined]
        """Maps the ``infrequent`` categories of each column (one list per column, in
        order) to ``INFREQUENT_CATEGORY``; every other value passes through."""

        def __init__(self, infrequent: list[list[str]] | None = None) -> None:
            self.infrequent = infrequent

        def fit(self, x: Any, y: Any = None) -> Any:
            """Nothing to learn: the categories were counted on the training rows."""
            self.n_features_in_ = np.shape(x)[1]
            return self

        def transform(self, x: Any) -> Any:
            """The values with each rare category replaced by the bucket: each column's
            distinct values looked up once (a hash of the rows), not every row against
            every rare category."""
            pd = require("pandas", extra="models", purpose="training models")
            out = np.array(x, dtype=object)
            for i, rare in enumerate(self.infrequent or []):
                if rare:
                    codes, distinct = pd.factorize(out[:, i], use_na_sentinel=False)
                    listed = set(rare)
                    bucketed = np.fromiter((v in listed for v in distinct), bool, len(distinct))
                    # Only the rare values are rewritten: every other one stays as it came.
                    out[bucketed[codes], i] = INFREQUENT_CATEGORY
            return out

    RareCategories.__module__ = __name__
    RareCategories.__qualname__ = "RareCategories"
    return RareCategories


def __getattr__(name: str) -> Any:
    # How pickle finds the class of a pipeline saved for retraining.
    if name == "RareCategories":
        return _transformer_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def rare_categories(infrequent: list[list[str]]) -> Any:
    """The pipeline step that buckets each column's ``infrequent`` categories (one list per
    column, in the order of the step's input)."""
    return _transformer_class()(infrequent=infrequent)


def register_converter() -> None:
    """Teach skl2onnx the bucket step: per column, a ``LabelEncoder`` marks the rare
    categories and ``Where`` puts the bucket in their place."""
    skl2onnx = require("skl2onnx", extra="models", purpose="packaging models as ONNX")
    skl2onnx.update_registered_converter(
        _transformer_class(), "MlplanRareCategories", _shape, _convert
    )


def _shape(operator: Any) -> None:
    types = require("skl2onnx.common.data_types", extra="models", purpose="ONNX packages")
    source = operator.inputs[0].type
    operator.outputs[0].type = types.StringTensorType([source.shape[0], source.shape[1]])


def _convert(scope: Any, operator: Any, container: Any) -> None:
    onnx = require("onnx", extra="models", purpose="packaging models as ONNX")
    proto = onnx.TensorProto
    source = operator.inputs[0].full_name
    bucket = scope.get_unique_variable_name("infrequent")
    container.add_initializer(bucket, proto.STRING, [1], [INFREQUENT_CATEGORY.encode()])
    columns = []
    for i, rare in enumerate(operator.raw_operator.infrequent or []):
        index = scope.get_unique_variable_name("column_index")
        container.add_initializer(index, proto.INT64, [1], [i])
        column = scope.get_unique_variable_name("column")
        container.add_node(
            "ArrayFeatureExtractor",
            [source, index],
            [column],
            op_domain="ai.onnx.ml",
            name=scope.get_unique_operator_name("ArrayFeatureExtractor"),
        )
        if not rare:
            columns.append(column)
            continue
        flag = scope.get_unique_variable_name("is_rare")
        container.add_node(
            "LabelEncoder",
            [column],
            [flag],
            op_domain="ai.onnx.ml",
            op_version=2,
            keys_strings=list(rare),
            values_int64s=[1] * len(rare),
            default_int64=0,
            name=scope.get_unique_operator_name("LabelEncoder"),
        )
        rare_mask = scope.get_unique_variable_name("rare_mask")
        container.add_node(
            "Cast", [flag], [rare_mask], to=proto.BOOL, name=scope.get_unique_operator_name("Cast")
        )
        bucketed = scope.get_unique_variable_name("bucketed")
        container.add_node(
            "Where",
            [rare_mask, bucket, column],
            [bucketed],
            name=scope.get_unique_operator_name("Where"),
        )
        columns.append(bucketed)
    container.add_node(
        "Concat",
        columns,
        [operator.outputs[0].full_name],
        axis=1,
        name=scope.get_unique_operator_name("Concat"),
    )
