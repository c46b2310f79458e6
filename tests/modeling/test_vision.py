"""Images through a pretrained CNN backbone read from a local file: the frozen baseline with a
logistic head, fine-tuning of the last block, an ONNX backbone composed in the graph."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from mlplan.data import register_dataset, split_dataset
from mlplan.errors import DataError, UsageError
from mlplan.modeling import compare_models, train_model, training_reference
from mlplan.workspace import Workspace

torch = pytest.importorskip("torch", reason="the torch extra is part of make test")


def _digits(root: Path, classes: tuple[int, ...] = (0, 1, 2), per_class: int = 40) -> Path:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for label in classes:
        folder = root / str(label)
        folder.mkdir(parents=True)
        images = digits.images[digits.target == label][:per_class]
        for i, image in enumerate(images):
            pixels = np.clip(image * 16, 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(folder / f"{i:03d}.png")
    return root


class _Backbone(torch.nn.Module):  # type: ignore[misc]
    """A small CNN standing in for a pretrained one: 1x8x8 images in, 32 features out."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.pool = torch.nn.MaxPool2d(2)
        self.embed = torch.nn.Linear(8 * 4 * 4, 32)

    def forward(self, x: Any) -> Any:
        return torch.relu(self.embed(self.pool(torch.relu(self.conv(x))).flatten(1)))


def save_backbone(path: Path) -> Path:
    """Save the backbone as a torch.export program (.pt2) or an ONNX graph (.onnx)."""
    torch.manual_seed(0)
    net = _Backbone().eval()
    example = torch.rand(2, 1, 8, 8)
    batch = torch.export.Dim("n", min=1)
    if path.suffix == ".pt2":
        program = torch.export.export(net, (example,), dynamic_shapes=({0: batch},))
        torch.export.save(program, path)
    else:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_program = torch.onnx.export(
                net, (example,), input_names=["pixels"], dynamic_shapes=({0: batch},), dynamo=True
            )
        path.write_bytes(onnx_program.model_proto.SerializeToString())
    return path


def _workspace(tmp_path: Path, store_url: str, backbone: str | None, extra: str = "") -> Workspace:
    _digits(tmp_path / "data" / "digits")
    (tmp_path / "models").mkdir()
    if backbone:
        save_backbone(tmp_path / "models" / backbone)
    (tmp_path / "mlplan.yaml").write_text(
        f"""project: {{name: digits, key: digits-{str(backbone).replace(".", "-")}}}
task: image_classification
datasets:
  digits:
    path: data/digits
modeling:
  backbone: {"models/" + backbone if backbone else "null"}
  seed: 0
  hyperparameters:
    cnn: {{epochs: 3}}
{extra}"""
    )
    ws = Workspace(tmp_path, store_url=store_url)
    register_dataset(ws, "digits")
    split_dataset(ws, "digits", stratify="label", seed=0)
    return ws


@pytest.fixture
def pt2_ws(tmp_path: Path, store_url: str) -> Any:
    ws = _workspace(tmp_path, store_url, "backbone.pt2")
    yield ws
    ws.close()


def test_frozen_backbone_with_a_logistic_head_then_fine_tuning(pt2_ws: Workspace) -> None:
    baseline = train_model(pt2_ws, baseline=True)
    assert (baseline.family, baseline.baseline) == ("cnn", True)
    assert baseline.parameters["fine_tuned"] == "none"
    assert baseline.parity["passed"] and baseline.parity["label_mismatches"] == 0
    assert baseline.metrics["test"]["accuracy"] >= 0.8
    spec = baseline.features
    assert (spec["kind"], spec["channels"], spec["height"], spec["width"]) == ("image", 1, 8, 8)
    assert spec["backbone"]["format"] == "pt2" and len(spec["backbone"]["sha256"]) == 64
    tuned = train_model(pt2_ws, family="cnn")
    assert not tuned.baseline and tuned.parameters["fine_tuned"] == "last block"
    assert tuned.parity["passed"]
    # modeling.device: auto, the default: the GPU where torch sees one, else the CPU.
    gpu = torch.cuda.is_available()
    for model in (baseline, tuned):
        assert model.parameters["device"].startswith("cuda:0 (" if gpu else "cpu")
        assert model.compute["training_device"] == model.parameters["device"]
    # The package takes raw pixels; the scaling, the backbone and the head are in the graph.
    artifacts = pt2_ws.store.artifacts
    signature = json.loads(artifacts.path(tuned.package["signature.json"]).read_text())
    assert signature["inputs"][0]["shape"] == [None, 1, 8, 8]
    session = ort.InferenceSession(artifacts.path(tuned.package["model.onnx"]).read_bytes())
    labels, proba = session.run(None, {"image": np.zeros((3, 1, 8, 8), np.float32)})
    assert labels.shape == (3,) and set(labels) <= {"0", "1", "2"}
    assert np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    # The backbone file is an input of the training run: lineage reaches its bytes.
    from mlplan.lineage import lineage

    (run,) = [r for r in lineage(pt2_ws, tuned.name).upstream if r.job == "train"]
    assert spec["backbone"]["sha256"] in {n.sha256 for n in run.inputs}
    # The fine-tuned model is not the quick-and-dirty one, however newer.
    from mlplan.checklist import status

    quick = status(pt2_ws).get("model.quick_and_dirty")
    assert quick.state == "done" and quick.evidence.startswith("cnn-1 (cnn)")
    comparison = compare_models(pt2_ws, n_boot=20)
    assert {"trivial", "cnn-1", "cnn-2"} <= {r["name"] for r in comparison.rows}


def test_an_onnx_backbone_is_composed_with_its_head(tmp_path: Path, store_url: str) -> None:
    ws = _workspace(tmp_path, store_url, "backbone.onnx", extra="  fine_tune: head\n")
    try:
        model = train_model(ws, family="cnn")
        assert model.parity["passed"] and model.features["backbone"]["format"] == "onnx"
        assert model.metrics["test"]["accuracy"] >= 0.8
        # Its training reference: the images' sizes and brightness, and its output.
        reference = training_reference(ws, model)
        assert set(reference.images) == {"width", "height", "brightness", "contrast"}
        assert reference.images["brightness"].rows == reference.rows > 0
        assert reference.output is not None and reference.output.classes == ("0", "1", "2")
        text = ws.plan_path.read_text().replace("  fine_tune: head\n", "")
        ws.plan_path.write_text(text)
        ws.__dict__.pop("plan", None)
        with pytest.raises(UsageError, match="an ONNX backbone can only be used frozen"):
            train_model(ws, family="cnn")
    finally:
        ws.close()


def test_a_cnn_without_backbone_weights_says_what_to_provide(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, f"sqlite:///{tmp_path}/s.db", None)
    try:
        with pytest.raises(UsageError, match="needs pretrained backbone weights: set modeling"):
            train_model(ws, baseline=True)
        for name, message in (
            ("models/missing.pt2", "no such file"),
            ("models/weights.bin", "use a .pt2"),
            ("models/broken.pt2", "not a torch.export program"),
        ):
            (tmp_path / "models" / "weights.bin").write_bytes(b"x")
            (tmp_path / "models" / "broken.pt2").write_bytes(b"not a zip")
            ws.plan_path.write_text(
                ws.plan_path.read_text().replace("backbone: null", f"backbone: {name}", 1)
            )
            ws.__dict__.pop("plan", None)
            with pytest.raises((UsageError, DataError), match=message):
                train_model(ws, baseline=True)
            ws.plan_path.write_text(
                ws.plan_path.read_text().replace(f"backbone: {name}", "backbone: null", 1)
            )
        from mlplan.modeling import list_models

        assert list_models(ws) == []
    finally:
        ws.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cnn_fine_tuned_on_a_gpu_is_packaged_as_on_the_cpu(pt2_ws: Workspace) -> None:
    import onnx
    from tests.conftest import edit_plan

    def ops(model: Any) -> list[str]:
        path = pt2_ws.store.artifacts.path(model.package["model.onnx"])
        return [n.op_type for n in onnx.load_from_string(path.read_bytes()).graph.node]

    edit_plan(pt2_ws, "  seed: 0\n", "  seed: 0\n  device: cuda\n")
    on_gpu = train_model(pt2_ws, family="cnn", params={"epochs": 1})
    assert on_gpu.parameters["device"].startswith("cuda:")
    assert on_gpu.compute["training_device"] == on_gpu.parameters["device"]
    # Parity: the package against the fine-tuned model, moved to the CPU.
    assert on_gpu.parity["passed"] and on_gpu.parity["rows"] > 0
    edit_plan(pt2_ws, "device: cuda", "device: cpu")
    on_cpu = train_model(pt2_ws, family="cnn", params={"epochs": 1})
    assert on_cpu.parameters["device"] == "cpu" and ops(on_gpu) == ops(on_cpu)
