"""Where training jobs run: one after another in this process, or in parallel on Ray — the
cluster at ``RAY_ADDRESS``, or a local one started on first use. Jobs are pure (prepared data
in, fitted package out); only the driver writes to the store."""

from __future__ import annotations

from typing import Literal

from mlplan.data import ray_results, ray_session
from mlplan.modeling._families import family_named
from mlplan.modeling._fit import Job, JobResult, run_job
from mlplan.modeling._inputs import TrainingData

__all__ = ["Engine", "job_gpus", "ray_session", "run_jobs"]

Engine = Literal["local", "ray"]


def job_gpus(job: Job, cluster_gpus: float) -> int:
    """The GPUs a job asks Ray for: one for a PyTorch family that may train on CUDA
    (``modeling.device`` auto or cuda) when the cluster has one, else none — a task that asks
    for none sees no GPU (Ray hides them), and a cluster without one would never run it."""
    wants = family_named(job.family).network is not None and job.device != "cpu"
    return 1 if wants and cluster_gpus >= 1 else 0


def run_jobs(data: TrainingData, jobs: list[Job], engine: Engine = "local") -> list[JobResult]:
    """Run ``jobs`` on ``data``; results in the order of ``jobs``, whatever the engine.

    Raises
    ------
    MlplanError
        The first job's error, as it was raised on the worker.
    """
    if engine == "local" or len(jobs) == 0:
        return [run_job(data, job) for job in jobs]
    ray = ray_session()
    remote = ray.remote(num_cpus=1, max_retries=0)(run_job)
    shared = ray.put(data)
    gpus = float(ray.cluster_resources().get("GPU", 0))
    refs = [remote.options(num_gpus=job_gpus(job, gpus)).remote(shared, job) for job in jobs]
    return ray_results(ray, refs)
