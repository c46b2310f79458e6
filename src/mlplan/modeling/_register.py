"""Registering a trained model: its package (the ONNX graph, its signature, its metadata and
the native model), its compute profile, and one record with the run that made it — all in one
transaction. A package never changes afterwards: new metadata (a decision threshold) makes a
new package version of the model (``logistic-1@2``), derived from the one it changes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mlplan.data import version_record
from mlplan.errors import StoreError
from mlplan.features import FEATURES_FILE
from mlplan.modeling._compute import PROFILE_ROWS, profile_package
from mlplan.modeling._families import BASELINE_FAMILY, family_named
from mlplan.modeling._features import FeatureSet
from mlplan.modeling._fit import TRAINING_THRESHOLD, JobResult
from mlplan.modeling._inputs import target_column
from mlplan.modeling._models import ModelInfo
from mlplan.modeling._prepare import PreparedSplit
from mlplan.modeling._reference import REFERENCE_FILE, InputReference, training_reference_of
from mlplan.modeling._signature import PackageSignature, SignatureInput
from mlplan.modeling._tabular import tabular_signature, window_signature
from mlplan.store import ArtifactStore, ModelRecord, RunRecorder, SplitRecord, package_sha256
from mlplan.workspace import Workspace

__all__ = [
    "PackageDraft",
    "draft_version",
    "package_signature",
    "register_model",
    "register_version",
]


def register_model(
    ws: Workspace,
    prepared: PreparedSplit,
    result: JobResult,
    *,
    baseline: bool,
    tuning: dict[str, Any] | None,
    signature: PackageSignature | None = None,
    inputs: InputReference | None = None,
) -> ModelInfo:
    """Profile a trained job's package and register it as the family's next model
    (``gbt-3``), with the run that made it and its training reference (``reference.json``).
    ``baseline``: trained as the task's baseline; ``signature``: the split's
    :func:`package_signature`, and ``inputs``: its :func:`input_reference`, where they were
    made already."""
    task = ws.plan.task
    family = result.job.family
    data, split_info = prepared.data, prepared.split
    assert result.graph is not None
    split = "test" if len(data.y["test"]) else "train"
    # A fixed number of rows, whatever the split's size: the profile measures the package.
    batch = data.feeds(split, np.arange(min(PROFILE_ROWS, len(data.y[split]))))
    compute = replace(
        profile_package(result.graph, {k: v[:1] for k, v in batch.items()}, batch),
        training_device=result.device,
    )
    signature = package_signature(prepared) if signature is None else signature
    reference = training_reference_of(prepared, result.graph, inputs=inputs, seed=result.job.seed)
    metadata = _metadata(ws, prepared, result)
    params = dict(result.params)
    is_baseline = baseline or _quick_and_dirty(task, result, tuning)
    # Where it trained, and why not where the plan asked (no GPU), if so.
    device = {"device": result.device} | (
        {"device_note": result.device_note} if result.device_note else {}
    )
    parameters = {
        "family": family,
        "baseline": is_baseline,
        "seed": result.job.seed,
        "params": params,
        "split": split_info.ref,
        "tuning": tuning,
    } | device
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
            REFERENCE_FILE: reference.to_json().encode(),
            **result.native,
        }
        if data.spec.get("derived"):  # the derived features, as the graph computes them
            files[FEATURES_FILE] = json.dumps(data.spec["derived"], indent=1).encode()
        package = _store_files(ws, session, files)
        run.output("model", f"{name}@1", sha256=package_sha256(package))
        record = ModelRecord(
            project_id=project_id,
            name=name,
            version=1,
            family=family,
            task=task,
            baseline=is_baseline,
            split_id=_split_id(session, version.id, split_info.number),
            parameters={"seed": result.job.seed, **params}
            | ({"tuning": tuning} if tuning else {})
            | device,
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


@dataclass(frozen=True)
class PackageDraft:
    """A package version about to be registered: ``parent`` with a new ``metadata.json``
    (``metadata``, as bytes), as version ``version`` of the model, unless a version holding
    the same package exists already (``existing``: then nothing new is registered)."""

    parent: ModelInfo
    version: int
    package: dict[str, str]
    metadata: bytes
    existing: bool

    @property
    def ref(self) -> str:
        """The version's reference, ``name@version``."""
        return f"{self.parent.name}@{self.version}"

    @property
    def sha256(self) -> str:
        """The package's hash (of all its files)."""
        return package_sha256(self.package)


def draft_version(ws: Workspace, model: ModelInfo, *, metadata: dict[str, Any]) -> PackageDraft:
    """``model``'s package with ``metadata`` as its ``metadata.json``: the version that holds
    exactly that package if one does (same files, same hash), else the model's next version.
    Nothing is written (:func:`register_version` does, within a run)."""
    blob = json.dumps(metadata, indent=1, default=str).encode()
    package = dict(model.package) | {"metadata.json": hashlib.sha256(blob).hexdigest()}
    with ws.store.transaction() as session:
        return _draft(ws, session, model, package, blob)


def _draft(
    ws: Workspace, session: Session, model: ModelInfo, package: dict[str, str], blob: bytes
) -> PackageDraft:
    versions = session.scalars(ws.select(ModelRecord).where(ModelRecord.name == model.name)).all()
    digest = package_sha256(package)
    same = [v.version for v in versions if package_sha256(v.package) == digest]
    if same:
        return PackageDraft(model, min(same), package, blob, existing=True)
    return PackageDraft(model, max(v.version for v in versions) + 1, package, blob, existing=False)


def register_version(ws: Workspace, run: RunRecorder, draft: PackageDraft) -> ModelInfo:
    """Register ``draft`` within ``run`` (which read its parent): its ``metadata.json`` stored
    and a new version recorded with the run that made it, lineage to its parent; a draft of
    an existing version registers nothing. The version is ``run``'s output either way.

    Raises
    ------
    StoreError
        Another command gave the model a new version since the draft was made.
    """
    session = run.session
    parent = draft.parent
    now = _draft(ws, session, parent, draft.package, draft.metadata)
    if (now.version, now.existing) != (draft.version, draft.existing):
        raise StoreError(
            f"{parent.name} got a new package version while this command ran; run it again"
        )
    run.output("model", draft.ref, sha256=draft.sha256)
    if draft.existing:
        return _version(session, ws, parent, draft.version)
    ref = ws.store.artifacts.put_bytes(draft.metadata)
    ArtifactStore.register(session, ref, kind="model:metadata.json", media_type="application/json")
    source = session.scalars(
        ws.select(ModelRecord).where(
            ModelRecord.name == parent.name, ModelRecord.version == parent.version
        )
    ).one()
    record = ModelRecord(
        project_id=source.project_id,
        name=source.name,
        version=draft.version,
        parent_id=source.id,
        family=source.family,
        task=source.task,
        baseline=source.baseline,
        split_id=source.split_id,
        parameters=source.parameters,
        features=source.features,
        metrics=source.metrics,
        package=draft.package,
        parity=source.parity,
        compute=source.compute,
        seconds=source.seconds,
        run_id=run.id,
    )
    session.add(record)
    session.flush()
    return ModelInfo.from_record(record, parent.split, parent.ref)


def _version(session: Session, ws: Workspace, model: ModelInfo, version: int) -> ModelInfo:
    """Version ``version`` of ``model`` as ``session`` sees it."""
    record = session.scalars(
        ws.select(ModelRecord).where(ModelRecord.name == model.name, ModelRecord.version == version)
    ).one()
    parent = None if record.parent_id is None else session.get(ModelRecord, record.parent_id)
    return ModelInfo.from_record(
        record, model.split, None if parent is None else f"{parent.name}@{parent.version}"
    )


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
    """How many models of ``family`` the project has registered (versions aside)."""
    return (
        session.scalar(
            select(func.count(func.distinct(ModelRecord.name))).where(
                ModelRecord.project_id == project_id, ModelRecord.family == family
            )
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


def package_signature(prepared: PreparedSplit) -> PackageSignature:
    """How a caller feeds a package trained on a prepared split, with what training saw of
    each input (the same for every family trained on it)."""
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
    features = FeatureSet.from_spec(spec).inputs  # derived features: computed in the graph
    return tabular_signature(
        prepared.table, features, data.rows["train"], prepared.info.profile["columns"]
    )
