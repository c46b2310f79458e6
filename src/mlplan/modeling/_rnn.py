"""The rnn family: a recurrent network (GRU or LSTM) on windows of a series, forecasting a value
or classifying, with its normalisation inside; trained on the plan's device, exported with
``torch.onnx`` from the CPU."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np

from mlplan.errors import UsageError
from mlplan.modeling._inputs import TrainingData
from mlplan.modeling._networks import (
    Device,
    fit_epochs,
    on_cpu,
    quiet_export,
    torch_module,
    training_device,
)
from mlplan.modeling._package import Fitted, add_label_output

__all__ = ["RNN_DEFAULTS", "fit_rnn"]

RNN_DEFAULTS: dict[str, Any] = {
    "cell": "gru",
    "hidden": 32,
    "layers": 1,
    "epochs": 60,
    "lr": 5e-3,
    "batch_size": 32,
}


def _sequence_model(
    channels: int, outputs: int, params: dict[str, Any], stats: dict[str, np.ndarray]
) -> Any:
    torch = torch_module()
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


def _input_stats(train: np.ndarray) -> dict[str, np.ndarray]:
    """Each channel's mean and standard deviation in training (missing values left out)."""
    mean = np.nan_to_num(np.nanmean(train, axis=(0, 1))) if train.size else 0.0
    std = np.nan_to_num(np.nanstd(train, axis=(0, 1)), nan=1.0) if train.size else 1.0
    return {
        "x_mean": np.asarray(mean, np.float32),
        "x_std": np.where(np.asarray(std) > 0, std, 1.0).astype(np.float32),
    }


def _targets(
    data: TrainingData, stats: dict[str, np.ndarray]
) -> tuple[dict[str, Any], int, Callable[[Any, Any], Any]]:
    """The targets as the network learns them (standardised values, or class indices), its
    number of outputs and its loss; a forecast's target statistics join ``stats``."""
    torch = torch_module()
    if data.kind == "regression":
        y_train = data.y["train"].astype(np.float64)
        stats |= {
            "y_mean": np.asarray(y_train.mean(), np.float32),
            "y_std": np.asarray(y_train.std() or 1.0, np.float32),
        }
        y = {
            k: (torch.tensor(v.astype(np.float64)) - float(stats["y_mean"])) / float(stats["y_std"])
            for k, v in data.y.items()
        }

        def mse(z: Any, t: Any) -> Any:
            return torch.nn.functional.mse_loss(z.squeeze(1), t.float())

        return y, 1, mse
    index = {c: i for i, c in enumerate(data.classes)}
    y = {k: torch.tensor([index[c] for c in v], dtype=torch.long) for k, v in data.y.items()}

    def cross_entropy(z: Any, t: Any) -> Any:
        return torch.nn.functional.cross_entropy(z, t)

    return y, len(data.classes), cross_entropy


def fit_rnn(
    data: TrainingData,
    seed: int,
    params: dict[str, Any],
    *,
    frozen: bool = False,
    export: bool,
    device: Device = "auto",
) -> Fitted:
    """A GRU or LSTM on windows, trained with Adam on ``device`` (``modeling.device``); the
    epoch with the lowest validation loss is kept, then predicts and is exported on the CPU.
    (``frozen`` is for families with a pretrained part; a recurrent network has none.)"""
    torch = torch_module()
    params = RNN_DEFAULTS | params
    if params["cell"] not in {"gru", "lstm"}:
        raise UsageError(f"rnn cell {params['cell']!r}: use gru or lstm")
    where = training_device(device)
    torch.manual_seed(seed)
    x = {k: torch.from_numpy(v) for k, v in data.x.items()}
    train = data.x["train"]
    stats = _input_stats(train)
    y, outputs, loss = _targets(data, stats)
    model = _sequence_model(train.shape[2], outputs, params, stats).to(where.name)
    valid = "valid" if len(x.get("valid", [])) else "train"
    x_valid, y_valid = where.put(x[valid]), where.put(y[valid])
    fit_epochs(
        model,
        list(model.parameters()),
        lr=float(params["lr"]),
        epochs=int(params["epochs"]),
        batch_size=int(params["batch_size"]),
        rows=len(x["train"]),
        seed=seed,
        batch_loss=lambda b: loss(model.raw(where.put(x["train"][b])), where.put(y["train"][b])),
        valid_loss=lambda: loss(model.raw(x_valid), y_valid),
    )
    model = on_cpu(model)
    regression = data.kind == "regression"
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
        graph = quiet_export(model, x["train"][:2], "window")
        if not regression:
            graph = add_label_output(graph, data.classes)
    native = io.BytesIO()
    torch.save(model.state_dict(), native)
    return Fitted(
        predictions,
        graph,
        {"native.pt": native.getvalue()},
        params,
        device=where.label,
        device_note=where.note,
    )
