"""Where the PyTorch families train (``modeling.device``): the CPU when asked, the GPU when
there is one, the CPU with a note when a GPU is asked for and there is none; the device is
recorded in the run and the compute profile, and the package is exported from the CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import numpy as np
import onnxruntime as ort
import pytest
from tests.conftest import edit_plan, ok
from tests.modeling.conftest import WINDOW, sequence_workspace

from mlplan.lineage import lineage
from mlplan.modeling import ModelInfo, get_model, train_model
from mlplan.modeling._networks import Device
from mlplan.plan import Modeling
from mlplan.workspace import Workspace

torch = pytest.importorskip("torch", reason="the torch extra is part of make test")
GPU = torch.cuda.is_available()


def _training_run(ws: Workspace, model: ModelInfo) -> dict[str, Any]:
    (run,) = [r for r in lineage(ws, model.name).upstream if r.job == "train"]
    return run.parameters


def _with_device(tmp_path: Path, device: str) -> Workspace:
    """The forecasting project (on its default store) with ``modeling.device: device`` and
    a small GRU trained for one epoch."""
    (tmp_path / ".mlplan").mkdir(parents=True, exist_ok=True)
    ws = sequence_workspace(
        tmp_path, f"sqlite:///{tmp_path / '.mlplan' / 'store.db'}", target="load"
    )
    edit_plan(ws, "  seed: 0\n", f"  seed: 0\n  device: {device}\n")
    edit_plan(ws, "rnn: {epochs: 15, hidden: 16}", "rnn: {epochs: 1, hidden: 8}")
    return ws


def test_the_plan_and_the_families_know_the_same_devices() -> None:
    assert get_args(Modeling.model_fields["device"].annotation) == get_args(Device)
    assert Modeling().device == "auto"


def test_device_cpu_trains_on_the_cpu_and_records_it(tmp_path: Path) -> None:
    ws = _with_device(tmp_path, "cpu")
    try:
        model = train_model(ws, family="rnn")
        assert model.parameters["device"] == "cpu" and "device_note" not in model.parameters
        assert model.compute["training_device"] == "cpu"
        assert _training_run(ws, model)["device"] == "cpu"
        assert model.parity["passed"]
        # The tabular families ignore it, and say where they trained: the CPU.
        assert train_model(ws, family="linear").compute["training_device"] == "cpu"
    finally:
        ws.close()


@pytest.mark.skipif(GPU, reason="falls back only where there is no GPU")
def test_cuda_without_a_gpu_trains_on_the_cpu_with_a_note(tmp_path: Path, cli: Any) -> None:
    root = tmp_path / "grid"
    _with_device(root, "cuda").close()
    note = "modeling.device is cuda, but this torch is built without CUDA: trained on the CPU"
    if torch.version.cuda is not None:
        note = "modeling.device is cuda, but no GPU is visible: trained on the CPU"
    out = ok(cli("train", "--family", "rnn", "--project", str(root))).output
    assert f"note: {note} instead" in " ".join(out.split())
    shown = ok(cli("models", "show", "rnn-1", "--project", str(root))).output
    assert "(trained on cpu)" in shown
    ws = Workspace(root)
    try:
        model = get_model(ws, "rnn-1")
        assert model.parameters["device"] == "cpu"
        assert model.parameters["device_note"].startswith(note)
        assert model.compute["training_device"] == "cpu" and model.parity["passed"]
        run = _training_run(ws, model)
        assert (run["device"], run["device_note"]) == ("cpu", model.parameters["device_note"])
    finally:
        ws.close()


def _ops(ws: Workspace, model: ModelInfo) -> tuple[list[str], list[str], list[str]]:
    """What a package's graph is made of: its ops, inputs and outputs."""
    import onnx

    graph = onnx.load_from_string(ws.store.artifacts.path(model.package["model.onnx"]).read_bytes())
    return (
        [n.op_type for n in graph.graph.node],
        [i.name for i in graph.graph.input],
        [o.name for o in graph.graph.output],
    )


@pytest.mark.skipif(not GPU, reason="needs a CUDA GPU")
def test_a_gpu_trains_and_the_package_is_the_same_as_from_the_cpu(tmp_path: Path) -> None:
    ws = _with_device(tmp_path, "cuda")
    try:
        on_gpu = train_model(ws, family="rnn")
        name = torch.cuda.get_device_name(torch.cuda.current_device())
        assert on_gpu.parameters["device"].endswith(f"({name})")
        assert on_gpu.parameters["device"].startswith("cuda:")
        assert on_gpu.compute["training_device"] == on_gpu.parameters["device"]
        assert _training_run(ws, on_gpu)["device"] == on_gpu.parameters["device"]
        # Parity: the package against the trained model, moved to the CPU.
        assert on_gpu.parity["passed"] and on_gpu.parity["rows"] > 0
        edit_plan(ws, "device: cuda", "device: cpu")
        on_cpu = train_model(ws, family="rnn")
        assert on_cpu.parameters["device"] == "cpu"
        assert _ops(ws, on_gpu) == _ops(ws, on_cpu)
        # The package runs on the CPU and the native model loads there.
        artifacts = ws.store.artifacts
        session = ort.InferenceSession(
            artifacts.path(on_gpu.package["model.onnx"]).read_bytes(),
            providers=["CPUExecutionProvider"],
        )
        (out,) = session.run(None, {"window": np.full((2, WINDOW, 2), 50.0, np.float32)})
        assert out.shape == (2, 1) and np.isfinite(out).all()
        state = torch.load(artifacts.path(on_gpu.package["native.pt"]), weights_only=True)
        assert {t.device.type for t in state.values()} == {"cpu"}
    finally:
        ws.close()


@pytest.mark.parametrize(
    ("family", "device", "cluster", "asked"),
    [
        ("rnn", "auto", 2.0, 1),
        ("cnn", "cuda", 1.0, 1),
        ("rnn", "cpu", 2.0, 0),  # the plan keeps it on the CPU
        ("rnn", "auto", 0.0, 0),  # no GPU in the cluster: a GPU request would never run
        ("gbt", "auto", 2.0, 0),  # not a PyTorch family
    ],
)
def test_a_ray_job_asks_for_a_gpu_when_it_can_use_one(
    family: str, device: Any, cluster: float, asked: int
) -> None:
    """On Ray a task sees only the GPUs it asked for: a PyTorch family that may train on CUDA
    asks for one where the cluster has one, else trains on the CPU (with its note)."""
    from mlplan.modeling._engine import job_gpus
    from mlplan.modeling._fit import Job

    assert job_gpus(Job(family, 7, device=device), cluster) == asked
