"""The PyTorch families: a pretrained CNN backbone with a new head for images, and a recurrent
network (GRU or LSTM) for windows of a series. Both are exported with ``torch.onnx`` (an ONNX
backbone is composed with its head in the graph instead).

Backbones are read from files, never downloaded:

- ``*.pt2`` — a ``torch.export`` program (``torch.export.save``): fine-tunable;
- ``*.onnx`` — an ONNX graph: a frozen feature extractor;
- ``torchvision:NAME`` — torchvision's weights for NAME, where the environment already has
  them in the torch hub cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mlplan._optional import require
from mlplan.errors import DataError, UsageError
from mlplan.modeling._inputs import TrainingData
from mlplan.modeling._package import Fitted, add_label_output

__all__ = ["backbone_input", "fit_cnn", "fit_rnn"]

_IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def _torch() -> Any:
    return require("torch", extra="torch", purpose="the cnn and rnn families")


# -- backbones ---------------------------------------------------------------------------------


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
    if path.suffix == ".pt2":
        torch = _torch()
        try:
            program = torch.export.load(io.BytesIO(data))
        except Exception as exc:
            raise DataError(f"{path}: not a torch.export program ({exc})") from None
        shape = list(program.example_inputs[0][0].shape) if program.example_inputs else []
        fmt = "pt2"
    elif path.suffix == ".onnx":
        onnx = require("onnx", extra="models", purpose="reading ONNX backbones")
        try:
            model = onnx.load_from_string(data)
        except Exception as exc:
            raise DataError(f"{path}: not an ONNX model ({exc})") from None
        dims = model.graph.input[0].type.tensor_type.shape.dim
        shape = [d.dim_value or None for d in dims]
        fmt = "onnx"
    else:
        raise UsageError(
            f"modeling.backbone {name!r}: use a .pt2 (torch.export.save) or .onnx file"
        )
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


def _torchvision_weights(arch: str) -> Any:
    torchvision = require(
        "torchvision.models", extra="torch", purpose="torchvision backbones (install torchvision)"
    )
    torch = _torch()
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


def _torch_backbone(spec: dict[str, Any], data: bytes | None) -> Any:
    torch = _torch()
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


def _last_block(backbone: Any) -> list[Any]:
    """The parameters of the backbone's last top-level block."""
    named = list(backbone.named_parameters())
    if not named:
        return []
    block = named[-1][0].split(".")[0]
    return [p for n, p in named if n.split(".")[0] == block]


# -- the image model ---------------------------------------------------------------------------


def _image_model(backbone: Any, dim: int, n_classes: int, spec: dict[str, Any]) -> Any:
    torch = _torch()
    nn = torch.nn

    class ImageModel(nn.Module):  # type: ignore[misc, name-defined]
        """Pixels 0–255 in, class probabilities out: scale, normalise, backbone, head."""

        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone
            self.head = nn.Linear(dim, n_classes)
            shape = (1, spec["channels"], 1, 1)
            self.register_buffer("mean", torch.tensor(spec["mean"]).reshape(shape))
            self.register_buffer("std", torch.tensor(spec["std"]).reshape(shape))

        def features(self, image: Any) -> Any:
            return self.backbone((image / 255.0 - self.mean) / self.std).flatten(1)

        def forward(self, image: Any) -> Any:
            return torch.softmax(self.head(self.features(image)), dim=1)

        def train(self, mode: bool = True) -> Any:
            # An exported backbone has no training mode; only the head switches.
            self.training = mode
            self.head.train(mode)
            return self

    return ImageModel()


def _onnx_features(data: bytes, spec: dict[str, Any], images: np.ndarray) -> np.ndarray:
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


def _fit_head(features: Any, y: Any, n_classes: int, c: float, seed: int) -> Any:
    """Multinomial logistic regression on frozen features (L-BFGS, L2 penalty 1 / (C n))."""
    torch = _torch()
    torch.manual_seed(seed)
    head = torch.nn.Linear(features.shape[1], n_classes)
    optimizer = torch.optim.LBFGS(
        head.parameters(), lr=1.0, max_iter=300, line_search_fn="strong_wolfe"
    )
    penalty = 0.5 / (c * len(features))

    def closure() -> Any:
        optimizer.zero_grad()
        loss = (
            torch.nn.functional.cross_entropy(head(features), y) + penalty * (head.weight**2).sum()
        )
        loss.backward()
        return loss

    optimizer.step(closure)
    return head


def _quiet_export(module: Any, example: Any, input_name: str) -> bytes:
    """``torch.onnx.export`` with a dynamic batch dimension, its chatter kept off our output."""
    torch = _torch()
    require("onnxscript", extra="torch", purpose="exporting PyTorch models to ONNX")
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (example,),
            input_names=[input_name],
            dynamic_shapes=({0: torch.export.Dim("n", min=1)},),
            dynamo=True,
            verbose=False,
        )
    exporter_log.setLevel(level)
    return bytes(program.model_proto.SerializeToString())


def _compose_onnx(data: bytes, spec: dict[str, Any], head: Any) -> bytes:
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


def fit_cnn(
    data: TrainingData, seed: int, params: dict[str, Any], *, frozen: bool, export: bool
) -> Fitted:
    """A pretrained backbone with a new head: a logistic head on frozen features
    (``frozen``), else that head then the last block fine-tuned with Adam."""
    torch = _torch()
    spec = data.spec
    backbone_spec = spec["backbone"]
    params = {"C": 1.0, "epochs": 5, "lr": 1e-3, "batch_size": 64} | params
    classes = data.classes
    index = {c: i for i, c in enumerate(classes)}
    y = {k: torch.tensor([index[v] for v in data.y[k]], dtype=torch.long) for k in data.y}
    fine_tune = not frozen and spec.get("fine_tune", "last") == "last"
    if backbone_spec["format"] == "onnx":
        if fine_tune:
            raise UsageError(
                "an ONNX backbone can only be used frozen: set modeling.fine_tune: head, or "
                "give a .pt2 backbone (torch.export.save) to fine-tune its last block"
            )
        assert data.backbone is not None
        feats = {
            k: torch.from_numpy(_onnx_features(data.backbone, backbone_spec, x))
            for k, x in data.x.items()
        }
        head = _fit_head(feats["train"], y["train"], len(classes), params["C"], seed)
        with torch.no_grad():
            proba = {k: torch.softmax(head(f), dim=1).numpy() for k, f in feats.items()}
        predictions = {
            k: (np.asarray(classes, dtype=object)[p.argmax(1)], p) for k, p in proba.items()
        }
        graph = None
        if export:
            graph = add_label_output(_compose_onnx(data.backbone, backbone_spec, head), classes)
        native = io.BytesIO()
        torch.save(head.state_dict(), native)
        return Fitted(predictions, graph, {"native.pt": native.getvalue()}, params)

    torch.manual_seed(seed)
    backbone = _torch_backbone(backbone_spec, data.backbone)
    for p in backbone.parameters():
        p.requires_grad_(False)
    x = {k: torch.from_numpy(v) for k, v in data.x.items()}
    probe = _image_model(backbone, 1, len(classes), backbone_spec)
    with torch.no_grad():
        dim = probe.features(x["train"][:2]).shape[1]
    model = _image_model(backbone, dim, len(classes), backbone_spec)

    def embed(images: Any) -> Any:
        with torch.no_grad():
            return torch.cat(
                [model.features(images[i : i + 256]) for i in range(0, len(images), 256)]
            )

    head = _fit_head(embed(x["train"]), y["train"], len(classes), params["C"], seed)
    model.head.load_state_dict(head.state_dict())
    if fine_tune:
        tuned = [*_last_block(backbone), *model.head.parameters()]
        for p in tuned:
            p.requires_grad_(True)
        optimizer = torch.optim.Adam(tuned, lr=params["lr"])
        generator = torch.Generator().manual_seed(seed)
        best: tuple[float, Any] = (float("inf"), None)
        valid = "valid" if len(y.get("valid", [])) else "train"
        for _ in range(int(params["epochs"])):
            order = torch.randperm(len(x["train"]), generator=generator)
            for start in range(0, len(order), int(params["batch_size"])):
                batch = order[start : start + int(params["batch_size"])]
                optimizer.zero_grad()
                logits = model.head(model.features(x["train"][batch]))
                torch.nn.functional.cross_entropy(logits, y["train"][batch]).backward()
                optimizer.step()
            with torch.no_grad():
                loss = float(
                    torch.nn.functional.cross_entropy(model.head(embed(x[valid])), y[valid])
                )
            if loss < best[0]:
                best = (loss, {k: v.clone() for k, v in model.state_dict().items()})
        if best[1] is not None:
            model.load_state_dict(best[1])
        for p in tuned:
            p.requires_grad_(False)
    params = params | {"fine_tuned": "last block" if fine_tune else "none"}
    with torch.no_grad():
        proba = {
            k: torch.cat([model(v[i : i + 256]) for i in range(0, len(v), 256)]).numpy()
            if len(v)
            else np.zeros((0, len(classes)), np.float32)
            for k, v in x.items()
        }
    predictions = {k: (np.asarray(classes, dtype=object)[p.argmax(1)], p) for k, p in proba.items()}
    graph = None
    if export:
        graph = add_label_output(_quiet_export(model, x["train"][:2], "image"), classes)
    native = io.BytesIO()
    torch.save(model.state_dict(), native)
    return Fitted(predictions, graph, {"native.pt": native.getvalue()}, params)


# -- the sequence model ------------------------------------------------------------------------


def _sequence_model(
    channels: int, outputs: int, params: dict[str, Any], stats: dict[str, np.ndarray]
) -> Any:
    torch = _torch()
    nn = torch.nn
    cell = {"gru": nn.GRU, "lstm": nn.LSTM}[params["cell"]]
    classify = "y_mean" not in stats

    class SequenceModel(nn.Module):  # type: ignore[misc, name-defined]
        """A window [n, length, channels] in; the forecast, or class probabilities, out."""

        def __init__(self) -> None:
            super().__init__()
            self.rnn = cell(
                channels, int(params["hidden"]), num_layers=int(params["layers"]), batch_first=True
            )
            self.head = nn.Linear(int(params["hidden"]), outputs)
            for name, value in stats.items():
                self.register_buffer(name, torch.tensor(value, dtype=torch.float32))

        def raw(self, window: Any) -> Any:
            x = (window - self.x_mean) / self.x_std
            x = torch.where(torch.isnan(x), torch.zeros_like(x), x)  # missing: the mean
            out, _ = self.rnn(x)
            return self.head(out[:, -1])

        def forward(self, window: Any) -> Any:
            z = self.raw(window)
            if classify:
                return torch.softmax(z, dim=1)
            return z * self.y_std + self.y_mean

    return SequenceModel()


def fit_rnn(data: TrainingData, seed: int, params: dict[str, Any], *, export: bool) -> Fitted:
    """A GRU or LSTM on windows, trained with Adam; the epoch with the lowest validation loss
    is kept."""
    torch = _torch()
    defaults: dict[str, Any] = {
        "cell": "gru",
        "hidden": 32,
        "layers": 1,
        "epochs": 60,
        "lr": 5e-3,
        "batch_size": 32,
    }
    params = defaults | params
    if params["cell"] not in {"gru", "lstm"}:
        raise UsageError(f"rnn cell {params['cell']!r}: use gru or lstm")
    torch.manual_seed(seed)
    x = {k: torch.from_numpy(v) for k, v in data.x.items()}
    train = data.x["train"]
    mean = np.nan_to_num(np.nanmean(train, axis=(0, 1))) if train.size else 0.0
    std = np.nan_to_num(np.nanstd(train, axis=(0, 1)), nan=1.0) if train.size else 1.0
    stats: dict[str, np.ndarray] = {
        "x_mean": np.asarray(mean, np.float32),
        "x_std": np.where(np.asarray(std) > 0, std, 1.0).astype(np.float32),
    }
    regression = data.kind == "regression"
    if regression:
        y_train = data.y["train"].astype(np.float64)
        stats |= {
            "y_mean": np.asarray(y_train.mean(), np.float32),
            "y_std": np.asarray(y_train.std() or 1.0, np.float32),
        }
        y = {
            k: (torch.tensor(v.astype(np.float64)) - float(stats["y_mean"])) / float(stats["y_std"])
            for k, v in data.y.items()
        }
        outputs = 1

        def loss_fn(z: Any, t: Any) -> Any:
            return torch.nn.functional.mse_loss(z.squeeze(1), t.float())
    else:
        index = {c: i for i, c in enumerate(data.classes)}
        y = {k: torch.tensor([index[c] for c in v], dtype=torch.long) for k, v in data.y.items()}
        outputs = len(data.classes)

        def loss_fn(z: Any, t: Any) -> Any:
            return torch.nn.functional.cross_entropy(z, t)

    model = _sequence_model(train.shape[2], outputs, params, stats)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(params["lr"]))
    generator = torch.Generator().manual_seed(seed)
    valid = "valid" if len(x.get("valid", [])) else "train"
    best: tuple[float, Any] = (float("inf"), None)
    batch_size = int(params["batch_size"])
    epochs = int(params["epochs"])
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x["train"]), generator=generator)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad()
            loss_fn(model.raw(x["train"][batch]), y["train"][batch]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            loss = float(loss_fn(model.raw(x[valid]), y[valid]))
        if loss < best[0]:
            best = (loss, {k: v.clone() for k, v in model.state_dict().items()})
    if best[1] is not None:
        model.load_state_dict(best[1])
    model.eval()
    predictions: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    with torch.no_grad():
        for k, v in x.items():
            out = model(v).numpy() if len(v) else np.zeros((0, outputs), np.float32)
            if regression:
                predictions[k] = (out[:, 0].astype(np.float64), None)
            else:
                predictions[k] = (np.asarray(data.classes, dtype=object)[out.argmax(1)], out)
    graph = None
    if export:
        graph = _quiet_export(model, x["train"][:2], "window")
        if not regression:
            graph = add_label_output(graph, data.classes)
    native = io.BytesIO()
    torch.save(model.state_dict(), native)
    return Fitted(predictions, graph, {"native.pt": native.getvalue()}, params)
