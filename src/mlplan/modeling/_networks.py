"""What the PyTorch families share: torch through the one door for extras, the device they
train on (``modeling.device``), the training loop that keeps the epoch with the lowest
validation loss, and a quiet ``torch.onnx`` export from the CPU."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from mlplan._optional import require
from mlplan.errors import UsageError

__all__ = [
    "Device",
    "TrainingDevice",
    "fit_epochs",
    "on_cpu",
    "quiet_export",
    "torch_module",
    "training_device",
]

Device = Literal["auto", "cpu", "cuda"]
"""Where the plan asks the PyTorch families to train (``modeling.device``)."""


def torch_module() -> Any:
    """torch, or a message naming the extra that brings it."""
    return require("torch", extra="torch", purpose="the cnn and rnn families")


@dataclass(frozen=True)
class TrainingDevice:
    """Where a network trains: ``name`` as torch takes it (``cpu``, ``cuda:0``), ``label`` as
    the run records it (``cpu``, ``cuda:0 (NVIDIA H100 80GB HBM3)``), and ``note``, the line
    a user is shown when the plan asked for a GPU that is not there."""

    name: str
    label: str
    note: str | None = None

    @property
    def cuda(self) -> bool:
        """Whether this is a GPU."""
        return self.name != "cpu"

    def put(self, tensor: Any) -> Any:
        """``tensor`` (a batch) on this device; from the CPU to a GPU it is pinned first, so
        the copy runs without the host waiting on it (nothing is pinned for the CPU)."""
        if not self.cuda:
            return tensor
        if tensor.device.type == "cpu":
            tensor = tensor.pin_memory()
        return tensor.to(self.name, non_blocking=True)


CPU = TrainingDevice("cpu", "cpu")


def training_device(asked: Device) -> TrainingDevice:
    """The device for ``modeling.device``: ``cpu`` never touches CUDA; ``auto`` and ``cuda``
    take the current GPU when torch sees one, else the CPU — with a note for ``cuda``, which
    asked for one.

    Raises
    ------
    UsageError
        A device other than auto, cpu or cuda.
    """
    if asked not in get_args(Device):
        raise UsageError(f"modeling.device {asked!r}: use auto, cpu or cuda")
    if asked == "cpu":
        return CPU
    torch = torch_module()
    if torch.cuda.is_available():
        index = torch.cuda.current_device()
        name = f"cuda:{index}"
        return TrainingDevice(name, f"{name} ({torch.cuda.get_device_name(index)})")
    if asked == "auto":
        return CPU
    why = "this torch is built without CUDA" if torch.version.cuda is None else "no GPU is visible"
    return TrainingDevice(
        "cpu", "cpu", f"modeling.device is cuda, but {why}: trained on the CPU instead"
    )


def on_cpu(model: Any) -> Any:
    """``model`` on the CPU in eval mode: what predicts for the parity check, and what is
    exported and saved, whatever trained it — so the package is the same either way."""
    return model.to("cpu").eval()


def fit_epochs(
    model: Any,
    parameters: list[Any],
    *,
    lr: float,
    epochs: int,
    batch_size: int,
    rows: int,
    seed: int,
    batch_loss: Callable[[Any], Any],
    valid_loss: Callable[[], Any],
) -> None:
    """Train ``parameters`` with Adam over ``epochs`` seeded shuffles of ``rows`` training
    rows (``batch_loss`` of a batch's row indices), then load the state of the epoch with the
    lowest ``valid_loss``."""
    torch = torch_module()
    optimizer = torch.optim.Adam(parameters, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    best: tuple[float, Any] = (float("inf"), None)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(rows, generator=generator)
        for start in range(0, len(order), batch_size):
            optimizer.zero_grad()
            batch_loss(order[start : start + batch_size]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            loss = float(valid_loss())
        if loss < best[0]:
            best = (loss, {k: v.clone() for k, v in model.state_dict().items()})
    if best[1] is not None:
        model.load_state_dict(best[1])


def quiet_export(module: Any, example: Any, input_name: str) -> bytes:
    """``torch.onnx.export`` with a dynamic batch dimension, its chatter kept off our output."""
    torch = torch_module()
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
