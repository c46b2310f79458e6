"""The pretrained backbones of the cnn family, read from files, never downloaded:

- ``*.pt2`` — a ``torch.export`` program (``torch.export.save``): fine-tunable;
- ``*.onnx`` — an ONNX graph: a frozen feature extractor, composed with its head in the graph;
- ``torchvision:NAME`` — torchvision's weights for NAME, where the environment already has
  them in the torch hub cache.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np

from mlplan._optional import require
from mlplan.errors import DataError, UsageError
from mlplan.modeling._networks import torch_module

__all__ = ["backbone_input", "compose_onnx", "last_block", "onnx_features", "torch_backbone"]

_IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def backbone_input(
    name: str | None,
    root: Path,
    *,
    size: list[int] | None = None,
    mean: list[float] | None = None,
    std: list[float] | None = None,
) -> tuple[dict[str, Any], bytes | None]:
    """The backbone's description (format, file hash, channels, height, width, normalisation)
    and its bytes (None for torchvision).

    Raises
    ------
    UsageError
        No backbone named, a missing file, an unknown format, or torchvision weights that
        are not on this machine (each says what to provide).
    """
    if not name:
        raise UsageError(
            "the cnn family needs pretrained backbone weights: set modeling.backbone to a "
            "local .pt2 file (torch.export.save of a feature extractor), an .onnx file, or "
            "torchvision:NAME when torchvision and its weights are installed"
        )
    if name.startswith("torchvision:"):
        return _torchvision_input(name.split(":", 1)[1], size, mean, std), None
    path = (root / name).resolve()
    if not path.is_file():
        raise UsageError(
            f"modeling.backbone {name!r}: no such file ({path}); give a .pt2 or .onnx file"
        )
    data = path.read_bytes()
    fmt, shape = _file_input(name, path, data)
    if len(shape) != 4 or shape[1] not in (1, 3):
        raise DataError(
            f"{path}: the backbone must take images [n, channels (1 or 3), height, width]; "
            f"its input is {shape}"
        )
    height, width = (size[0], size[1]) if size else (shape[2], shape[3])
    if not height or not width:
        raise UsageError(
            f"{path} does not fix its image size: set modeling.image_size: [height, width]"
        )
    channels = int(shape[1])
    return {
        "format": fmt,
        "name": name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "channels": channels,
        "height": int(height),
        "width": int(width),
        "mean": list(mean or [0.0] * channels),
        "std": list(std or [1.0] * channels),
    }, data


def _file_input(name: str, path: Path, data: bytes) -> tuple[str, list[int | None]]:
    """A backbone file's format and the shape of its input (None where it is not fixed)."""
    if path.suffix == ".pt2":
        torch = torch_module()
        try:
            program = torch.export.load(io.BytesIO(data))
        except Exception as exc:
            raise DataError(f"{path}: not a torch.export program ({exc})") from None
        return "pt2", list(program.example_inputs[0][0].shape) if program.example_inputs else []
    if path.suffix == ".onnx":
        onnx = require("onnx", extra="models", purpose="reading ONNX backbones")
        try:
            model = onnx.load_from_string(data)
        except Exception as exc:
            raise DataError(f"{path}: not an ONNX model ({exc})") from None
        dims = model.graph.input[0].type.tensor_type.shape.dim
        return "onnx", [d.dim_value or None for d in dims]
    raise UsageError(f"modeling.backbone {name!r}: use a .pt2 (torch.export.save) or .onnx file")


def _torchvision_weights(arch: str) -> Any:
    torchvision = require(
        "torchvision.models", extra="torch", purpose="torchvision backbones (install torchvision)"
    )
    torch = torch_module()
    try:
        weights = torchvision.get_model_weights(arch).DEFAULT
    except ValueError as exc:
        raise UsageError(f"modeling.backbone torchvision:{arch}: {exc}") from None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not cached.is_file():
        raise UsageError(
            f"torchvision's weights for {arch} are not on this machine ({cached}); nothing is "
            "downloaded: fetch them once where there is a network, or give a local .pt2 or "
            ".onnx backbone in modeling.backbone"
        )
    return weights


def _torchvision_input(
    arch: str, size: list[int] | None, mean: list[float] | None, std: list[float] | None
) -> dict[str, Any]:
    _torchvision_weights(arch)
    height, width = (size or [224, 224])[:2]
    return {
        "format": "torchvision",
        "name": f"torchvision:{arch}",
        "sha256": None,
        "channels": 3,
        "height": height,
        "width": width,
        "mean": list(mean or _IMAGENET[0]),
        "std": list(std or _IMAGENET[1]),
    }


def torch_backbone(spec: dict[str, Any], data: bytes | None) -> Any:
    """A ``pt2`` or torchvision backbone as a torch module (torchvision's without its head)."""
    torch = torch_module()
    if spec["format"] == "pt2":
        assert data is not None
        return torch.export.load(io.BytesIO(data)).module()
    torchvision = require("torchvision.models", extra="torch", purpose="torchvision backbones")
    arch = spec["name"].split(":", 1)[1]
    model = torchvision.get_model(arch, weights=_torchvision_weights(arch))
    for head in ("fc", "classifier", "head", "heads"):
        if hasattr(model, head):
            setattr(model, head, torch.nn.Identity())
    return model.eval()


def last_block(backbone: Any) -> list[Any]:
    """The parameters of the backbone's last top-level block."""
    named = list(backbone.named_parameters())
    if not named:
        return []
    block = named[-1][0].split(".")[0]
    return [p for n, p in named if n.split(".")[0] == block]


# -- ONNX backbones ----------------------------------------------------------------------------


def onnx_features(data: bytes, spec: dict[str, Any], images: np.ndarray) -> np.ndarray:
    """The features an ONNX backbone gives ``images`` (pixels 0–255), 256 at a time."""
    ort = require("onnxruntime", extra="models", purpose="ONNX backbones")
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    mean = np.asarray(spec["mean"], np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(spec["std"], np.float32).reshape(1, -1, 1, 1)
    out = [
        session.run(None, {name: ((images[i : i + 256] / 255.0 - mean) / std).astype(np.float32)})[
            0
        ]
        for i in range(0, len(images), 256)
    ]
    return np.concatenate(out).reshape(len(images), -1)


def compose_onnx(data: bytes, spec: dict[str, Any], head: Any) -> bytes:
    """An ONNX backbone with scaling and normalisation before it and the head after it."""
    onnx = require("onnx", extra="models", purpose="composing ONNX backbones")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    model = onnx.load_from_string(data)
    graph = model.graph
    inner = graph.input[0].name
    (features,) = [o.name for o in graph.output][:1]
    shape = (1, spec["channels"], 1, 1)
    weight = head.weight.detach().numpy().astype(np.float32)
    bias = head.bias.detach().numpy().astype(np.float32)
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(255.0, np.float32), "mlplan_255"),
            numpy_helper.from_array(
                np.asarray(spec["mean"], np.float32).reshape(shape), "mlplan_m"
            ),
            numpy_helper.from_array(np.asarray(spec["std"], np.float32).reshape(shape), "mlplan_s"),
            numpy_helper.from_array(weight, "mlplan_w"),
            numpy_helper.from_array(bias, "mlplan_b"),
        ]
    )
    before = [
        helper.make_node("Div", ["image", "mlplan_255"], ["mlplan_unit"]),
        helper.make_node("Sub", ["mlplan_unit", "mlplan_m"], ["mlplan_centred"]),
        helper.make_node("Div", ["mlplan_centred", "mlplan_s"], [inner]),
    ]
    after = [
        helper.make_node("Flatten", [features], ["mlplan_flat"], axis=1),
        helper.make_node("Gemm", ["mlplan_flat", "mlplan_w", "mlplan_b"], ["mlplan_z"], transB=1),
        helper.make_node("Softmax", ["mlplan_z"], ["mlplan_proba"], axis=1),
    ]
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend(before + old + after)
    dims = [None, spec["channels"], spec["height"], spec["width"]]
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, dims))
    del graph.output[:]
    graph.output.append(
        helper.make_tensor_value_info("mlplan_proba", onnx.TensorProto.FLOAT, [None, len(bias)])
    )
    return bytes(model.SerializeToString())
