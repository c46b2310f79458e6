"""The cnn family: a pretrained backbone (``_backbones.py``) with a new head for images — a
logistic head on frozen features, then, when asked, the backbone's last block fine-tuned with
it, on the plan's device. Exported with ``torch.onnx`` from the CPU; an ONNX backbone is
composed with its head in the graph."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from mlplan.errors import UsageError
from mlplan.modeling._backbones import compose_onnx, last_block, onnx_features, torch_backbone
from mlplan.modeling._inputs import TrainingData
from mlplan.modeling._networks import (
    Device,
    TrainingDevice,
    fit_epochs,
    on_cpu,
    quiet_export,
    torch_module,
    training_device,
)
from mlplan.modeling._package import Fitted, add_label_output

__all__ = ["CNN_DEFAULTS", "fit_cnn"]

CNN_DEFAULTS: dict[str, Any] = {"C": 1.0, "epochs": 5, "lr": 1e-3, "batch_size": 64}
_CHUNK = 256  # images through the backbone at a time


def _image_model(backbone: Any, dim: int, n_classes: int, spec: dict[str, Any]) -> Any:
    torch = torch_module()
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


def _fit_head(
    features: Any, y: Any, n_classes: int, c: float, seed: int, where: TrainingDevice
) -> Any:
    """Multinomial logistic regression on frozen features (L-BFGS, L2 penalty 1 / (C n)),
    fitted where the features are and handed back on the CPU."""
    torch = torch_module()
    torch.manual_seed(seed)
    head = torch.nn.Linear(features.shape[1], n_classes).to(where.name)
    features, y = where.put(features), where.put(y)
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
    return on_cpu(head)


def _probabilities(model: Any, images: Any, n_classes: int) -> np.ndarray:
    """The model's class probabilities for ``images``, a chunk at a time."""
    if not len(images):
        return np.zeros((0, n_classes), np.float32)
    torch = torch_module()
    with torch.no_grad():
        chunks = [model(images[i : i + _CHUNK]) for i in range(0, len(images), _CHUNK)]
        return np.asarray(torch.cat(chunks).numpy())


def _labels(classes: list[str], proba: dict[str, np.ndarray]) -> dict[str, Any]:
    return {k: (np.asarray(classes, dtype=object)[p.argmax(1)], p) for k, p in proba.items()}


def _native(state: dict[str, Any]) -> dict[str, bytes]:
    native = io.BytesIO()
    torch_module().save(state, native)
    return {"native.pt": native.getvalue()}


def fit_cnn(
    data: TrainingData,
    seed: int,
    params: dict[str, Any],
    *,
    frozen: bool,
    export: bool,
    device: Device = "auto",
) -> Fitted:
    """A pretrained backbone with a new head: a logistic head on frozen features
    (``frozen``), else that head then the last block fine-tuned with Adam — on ``device``
    (``modeling.device``); it then predicts and is exported on the CPU."""
    torch = torch_module()
    spec = data.spec
    params = CNN_DEFAULTS | params
    index = {c: i for i, c in enumerate(data.classes)}
    y = {k: torch.tensor([index[v] for v in data.y[k]], dtype=torch.long) for k in data.y}
    fine_tune = not frozen and spec.get("fine_tune", "last") == "last"
    where = training_device(device)
    if spec["backbone"]["format"] == "onnx":
        if fine_tune:
            raise UsageError(
                "an ONNX backbone can only be used frozen: set modeling.fine_tune: head, or "
                "give a .pt2 backbone (torch.export.save) to fine-tune its last block"
            )
        fitted = _fit_onnx_backbone(data, y, seed, params, export=export, where=where)
    else:
        fitted = _fit_torch_backbone(
            data, y, seed, params, fine_tune=fine_tune, export=export, where=where
        )
    fitted.device, fitted.device_note = where.label, where.note
    return fitted


def _fit_onnx_backbone(
    data: TrainingData,
    y: dict[str, Any],
    seed: int,
    params: dict[str, Any],
    *,
    export: bool,
    where: TrainingDevice,
) -> Fitted:
    """A head on the features of a frozen ONNX backbone (ONNX Runtime, on the CPU), fitted
    on ``where``, composed with the backbone in one graph."""
    torch = torch_module()
    backbone_spec, classes = data.spec["backbone"], data.classes
    assert data.backbone is not None
    feats = {
        k: torch.from_numpy(onnx_features(data.backbone, backbone_spec, x))
        for k, x in data.x.items()
    }
    head = _fit_head(feats["train"], y["train"], len(classes), params["C"], seed, where)
    with torch.no_grad():
        proba = {k: torch.softmax(head(f), dim=1).numpy() for k, f in feats.items()}
    graph = None
    if export:
        graph = add_label_output(compose_onnx(data.backbone, backbone_spec, head), classes)
    return Fitted(_labels(classes, proba), graph, _native(head.state_dict()), params)


def _fit_torch_backbone(
    data: TrainingData,
    y: dict[str, Any],
    seed: int,
    params: dict[str, Any],
    *,
    fine_tune: bool,
    export: bool,
    where: TrainingDevice,
) -> Fitted:
    """A logistic head on the backbone's features, then (``fine_tune``) the head and the
    backbone's last block trained together, on ``where``; the epoch with the lowest
    validation loss is kept."""
    torch = torch_module()
    backbone_spec, classes = data.spec["backbone"], data.classes
    torch.manual_seed(seed)
    backbone = torch_backbone(backbone_spec, data.backbone)
    for p in backbone.parameters():
        p.requires_grad_(False)
    x = {k: torch.from_numpy(v) for k, v in data.x.items()}
    probe = _image_model(backbone, 1, len(classes), backbone_spec)
    with torch.no_grad():
        dim = probe.features(x["train"][:2]).shape[1]
    model = _image_model(backbone, dim, len(classes), backbone_spec).to(where.name)

    def embed(images: Any) -> Any:
        with torch.no_grad():
            return torch.cat(
                [
                    model.features(where.put(images[i : i + _CHUNK]))
                    for i in range(0, len(images), _CHUNK)
                ]
            )

    head = _fit_head(embed(x["train"]), y["train"], len(classes), params["C"], seed, where)
    model.head.load_state_dict(head.state_dict())
    if fine_tune:
        tuned = [*last_block(backbone), *model.head.parameters()]
        for p in tuned:
            p.requires_grad_(True)
        valid = "valid" if len(y.get("valid", [])) else "train"
        y_valid = where.put(y[valid])
        cross_entropy = torch.nn.functional.cross_entropy
        fit_epochs(
            model,
            tuned,
            lr=params["lr"],
            epochs=int(params["epochs"]),
            batch_size=int(params["batch_size"]),
            rows=len(x["train"]),
            seed=seed,
            batch_loss=lambda b: cross_entropy(
                model.head(model.features(where.put(x["train"][b]))), where.put(y["train"][b])
            ),
            valid_loss=lambda: cross_entropy(model.head(embed(x[valid])), y_valid),
        )
        for p in tuned:
            p.requires_grad_(False)
    model = on_cpu(model)
    params = params | {"fine_tuned": "last block" if fine_tune else "none"}
    proba = {k: _probabilities(model, v, len(classes)) for k, v in x.items()}
    graph = None
    if export:
        graph = add_label_output(quiet_export(model, x["train"][:2], "image"), classes)
    return Fitted(_labels(classes, proba), graph, _native(model.state_dict()), params)
