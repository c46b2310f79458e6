"""What the PyTorch families share: torch through the one door for extras, the training loop
that keeps the epoch with the lowest validation loss, and a quiet ``torch.onnx`` export."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from typing import Any

from mlplan._optional import require

__all__ = ["fit_epochs", "quiet_export", "torch_module"]


def torch_module() -> Any:
    """torch, or a message naming the extra that brings it."""
    return require("torch", extra="torch", purpose="the cnn and rnn families")


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
