"""Registering a trained model: its package (the ONNX graph, its signature, its metadata and
the native model), its compute profile, and one record with the run that made it — all in one
transaction."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mlplan.data import version_record
from mlplan.modeling._compute import profile_package
from mlplan.modeling._families import BASELINE_FAMILY, family_named
from mlplan.modeling._features import FeatureSet
from mlplan.modeling._fit import TRAINING_THRESHOLD, JobResult
from mlplan.modeling._inputs import target_column
from mlplan.modeling._models import ModelInfo
from mlplan.modeling._prepare import PreparedSplit
from mlplan.modeling._signature import PackageSignature, SignatureInput
from mlplan.modeling._tabular import tabular_signature, window_signature
from mlplan.store import ArtifactStore, ModelRecord, RunRecorder, SplitRecord
from mlplan.workspace import Workspace

__all__ = ["register_model"]


def register_model(
    ws: Workspace,
    prepared: PreparedSplit,
    result: JobResult,
    *,
    baseline: bool,
    tuning: dict[str, Any] | None,
) -> ModelInfo:
    """Profile a trained job's package and register it as the family's next model
    (``gbt-3``), with the run that made it. ``baseline``: trained as the task's baseline."""
    task = ws.plan.task
    family = result.job.family
    data, split_info = prepared.data, prepared.split
    assert result.graph is not None
    batch = data.feeds("test" if len(data.y["test"]) else "train")
    compute = profile_package(result.graph, {k: v[:1] for k, v in batch.items()}, batch)
    signature = _signature(prepared)
    metadata = _metadata(ws, prepared, result)
    params = dict(result.params)
    is_baseline = baseline or _quick_and_dirty(task, result, tuning)
    parameters = {
        "family": family,
        "baseline": is_baseline,
        "seed": result.job.seed,
        "params": params,
        "split": split_info.ref,
        "tuning": tuning,
    }
    with ws.store.artifacts.staged(), ws.record("train", parameters) as run:
        session = run.session
        project_id, version = version_record(session, ws, prepared.info)
        name = f"{family}-{_count(session, project_id, family) + 1}"
        _record_inputs(run, prepared)
        files = {
            "model.onnx": result.graph,
            "signature.json": signature.to_json().encode(),
            "metadata.json": json.dumps(
                metadata | {"name": name, "run_id": run.id}, indent=1, default=str
            ).encode(),
            **result.native,
        }
        package = _store_files(ws, session, files)
        run.output("model", name, sha256=package["model.onnx"])
        record = ModelRecord(
            project_id=project_id,
            name=name,
            family=family,
            task=task,
            baseline=is_baseline,
            split_id=_split_id(session, version.id, split_info.number),
            parameters={"seed": result.job.seed, **params} | ({"tuning": tuning} if tuning else {}),
            features=data.spec,
            metrics=result.scores,
            package=package,
            parity=result.parity,
            compute=compute.to_dict(),
            seconds=result.seconds,
            run_id=run.id,
        )
        session.add(record)
        session.flush()
        return ModelInfo.from_record(record, split_info.ref)


def _metadata(ws: Workspace, prepared: PreparedSplit, result: JobResult) -> dict[str, Any]:
    """What the package says of itself in ``metadata.json`` (its name and run join later)."""
    data = prepared.data
    return {
        "task": ws.plan.task,
        "kind": data.kind,
        "family": result.job.family,
        "target": target_column(ws, prepared.info),
        "classes": data.classes,
        "threshold": TRAINING_THRESHOLD if len(data.classes) == 2 else None,
        "metrics": result.scores,
        "dataset": prepared.info.ref,
        "split": prepared.split.ref,
        "input": data.spec["kind"],
    }


def _record_inputs(run: RunRecorder, prepared: PreparedSplit) -> None:
    """The training run read the split, its dataset version and any backbone file."""
    split_info, info = prepared.split, prepared.info
    run.input("split", split_info.ref, sha256=split_info.artifact_sha256)
    run.input("dataset_version", info.ref, sha256=info.content_hash)
    backbone = prepared.data.spec.get("backbone")
    if backbone and backbone.get("sha256"):
        run.input("file", backbone["name"], sha256=backbone["sha256"])


def _quick_and_dirty(task: str, result: JobResult, tuning: dict[str, Any] | None) -> bool:
    """The task's baseline family as it comes: untuned, and a pretrained backbone frozen."""
    family = family_named(result.job.family)
    return (
        family.name == BASELINE_FAMILY[task]
        and not tuning
        and (not family.pretrained or result.job.frozen)
    )


def _count(session: Session, project_id: int, family: str) -> int:
    """How many models of ``family`` the project has registered."""
    return (
        session.scalar(
            select(func.count())
            .select_from(ModelRecord)
            .where(ModelRecord.project_id == project_id, ModelRecord.family == family)
        )
        or 0
    )


def _split_id(session: Session, version_id: int, number: int) -> int | None:
    """The store id of split ``number`` of a dataset version."""
    return session.scalar(
        select(SplitRecord.id).where(
            SplitRecord.dataset_version_id == version_id, SplitRecord.number == number
        )
    )


def _store_files(ws: Workspace, session: Session, files: dict[str, bytes]) -> dict[str, str]:
    """Put each file of the package in the artifact store: file name -> sha256."""
    package = {}
    for filename, blob in files.items():
        ref = ws.store.artifacts.put_bytes(blob)
        ArtifactStore.register(
            session, ref, kind=f"model:{filename}", media_type="application/octet-stream"
        )
        package[filename] = ref.sha256
    return package


def _signature(prepared: PreparedSplit) -> PackageSignature:
    """How a caller feeds the package, with what training saw of each input."""
    data, spec = prepared.data, prepared.data.spec
    if spec["kind"] == "image":
        image = SignatureInput(
            "image",
            "image",
            shape=(None, spec["channels"], spec["height"], spec["width"]),
            dtype="float32",
            range=(0, 255),
            mode="L" if spec["channels"] == 1 else "RGB",
        )
        return PackageSignature(
            (image,),
            preprocessing=(
                f"convert to {'grey' if spec['channels'] == 1 else 'RGB'}, resize to "
                f"{spec['width']}x{spec['height']} (bilinear), pixels 0-255 as float32, "
                "channels first; scaling and normalisation are in the graph"
            ),
        )
    if spec["kind"] == "window":
        return window_signature(spec, data.x["train"])
    features = FeatureSet(spec["numeric"], spec["categorical"], {})
    return tabular_signature(
        prepared.table, features, data.rows["train"], prepared.info.profile["columns"]
    )
