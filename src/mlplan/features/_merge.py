"""A model's graph with the derived features' nodes put in front of it: the package then takes
the raw columns only, and computes the features it reads from them with the constants fitted
on the training rows."""

from __future__ import annotations

from collections.abc import Sequence

from mlplan._optional import require
from mlplan.core import expression_names
from mlplan.errors import DataError
from mlplan.features._fitted import FittedFeatures
from mlplan.features._onnx import features_graph

__all__ = ["prepend_features"]


def prepend_features(
    graph: bytes, fitted: FittedFeatures, *, order: Sequence[str] | None = None
) -> bytes:
    """``graph`` (whose inputs include derived features by name) fed by the features' nodes:
    its derived inputs become the outputs of those nodes, and the raw columns they read
    become inputs (in ``order`` where given: the signature's; else the graph's, then the
    features'). A graph that reads no derived feature comes back unchanged.

    Raises
    ------
    DataError
        A column the model reads as one kind (number or string) and a feature as the other.
    """
    onnx = require("onnx", extra="models", purpose="packaging models as ONNX")
    helper = onnx.helper
    model = onnx.load_from_string(graph)
    by_name = {i.name: i for i in model.graph.input}
    used = [f for f in fitted.definitions.features if f.name in by_name]
    if not used:
        return graph
    names = {f.name for f in used}
    reads = {c for f in used for c in expression_names(f.node)}
    types = {c: t for c, t in fitted.types.items() if c in reads}
    front = onnx.load_from_string(features_graph(used, types, fitted.constants))
    inputs = {i.name: i for i in model.graph.input if i.name not in names}
    string = onnx.TensorProto.STRING
    for tensor in front.graph.input:
        mine = inputs.get(tensor.name)
        if mine is not None:
            if (mine.type.tensor_type.elem_type == string) != (types[tensor.name] == "string"):
                raise DataError(
                    f"the model reads {tensor.name!r} as "
                    f"{'categories' if mine.type.tensor_type.elem_type == string else 'numbers'}"
                    f" and a derived feature as {types[tensor.name]}s; read it one way"
                )
        else:
            inputs[tensor.name] = tensor
    taken = {n for node in model.graph.node for n in [*node.input, *node.output]}
    taken |= {t.name for t in model.graph.initializer}
    inner = {n for node in front.graph.node for n in node.output} - names
    inner |= {t.name for t in front.graph.initializer}
    clash = sorted(inner & taken)
    if clash:  # never with skl2onnx's or torch's names; said plainly should it ever happen
        raise DataError(f"the features' graph and the model's share names: {', '.join(clash)}")
    ordered = [n for n in (order or []) if n in inputs]
    ordered += [n for n in inputs if n not in ordered]
    merged = helper.make_graph(
        [*front.graph.node, *model.graph.node],
        model.graph.name,
        [inputs[n] for n in ordered],
        list(model.graph.output),
        [*front.graph.initializer, *model.graph.initializer],
        value_info=list(model.graph.value_info),
    )
    opsets: dict[str, int] = {}
    for opset in [*model.opset_import, *front.opset_import]:
        opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)
    out = helper.make_model(
        merged,
        opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
        producer_name=model.producer_name,
        producer_version=model.producer_version,
    )
    out.ir_version = max(model.ir_version, front.ir_version)
    for prop in model.metadata_props:
        out.metadata_props.add(key=prop.key, value=prop.value)
    onnx.checker.check_model(out)
    return bytes(out.SerializeToString())
