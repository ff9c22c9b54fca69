"""Ray dispatch: the cluster connection, one named task per trial, and the epoch broker.

Workers never touch the database. Each epoch report goes to the broker actor, which holds
it until the driver (the one writer) has stored it and asked the pruner, then returns the
driver's answer to the worker: True means stop training (pruned).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from pathlib import Path
from typing import Any

import ray

from nas.errors import BadInput
from workers.trial import TrialSpec, run_trial

ANSWER_TIMEOUT_S = 300.0  # a worker whose driver vanished keeps training instead of hanging


def _probe(address: str) -> None:
    """Fail fast, with one line, on an address where nothing listens (ray.init would hang)."""
    if address in ("auto", "local"):
        return
    hostport = address.removeprefix("ray://").split("/")[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise BadInput(f"--ray-address {address!r} is not HOST:PORT (e.g. 127.0.0.1:6379)")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except OSError as exc:
        raise BadInput(
            f"no Ray cluster answers at --ray-address {address} ({exc.strerror or exc}); "
            "start one with `ray start --head` or drop --ray-address for a local cluster"
        ) from None


def probe_ray_address(address: str | None) -> None:
    if address is not None:
        _probe(address)


def start_ray(address: str | None, num_cpus: int | None = None) -> str | None:
    """Join `address`, or start a local cluster with its dashboard on 127.0.0.1.

    Returns the dashboard URL (None if the cluster runs without one). A process that is
    already connected (tests, notebooks) keeps its cluster.
    """
    if not ray.is_initialized():
        probe_ray_address(address)
        kwargs: dict[str, Any] = {
            "logging_level": logging.WARNING,
            "log_to_driver": bool(os.environ.get("NAS_RAY_LOGS")),
            "configure_logging": True,
        }
        if address is None:
            kwargs.update(include_dashboard=True, dashboard_host="127.0.0.1", num_cpus=num_cpus)
        else:
            kwargs["address"] = address
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError) as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BadInput(f"cannot connect to Ray at {address or 'a local cluster'}: {text}") \
                from None
    return dashboard_url()


def dashboard_url() -> str | None:
    from ray._private.worker import get_dashboard_url

    try:
        url = get_dashboard_url()
    except Exception:  # a client connection (ray://) has no local node to ask
        return None
    if not url:
        return None
    return url if url.startswith("http") else f"http://{url}"


def session_dir() -> Path | None:
    """This node's Ray session directory (where the head writes its Prometheus config);
    None for a client connection, which has no local node."""
    node = getattr(ray._private.worker, "_global_node", None)
    return Path(node.get_session_dir_path()) if node is not None else None


def gcs_address() -> str:
    """This driver's cluster, for the state API (which cannot guess when several run)."""
    return ray.get_runtime_context().gcs_address


def cluster_gpus() -> float:
    return float(ray.cluster_resources().get("GPU", 0.0))


def cluster_cpus() -> float:
    return float(ray.cluster_resources().get("CPU", 1.0))


def unmet_trial_resources(cpus: float, gpus: float) -> str | None:
    """Why no alive node can run a trial asking `cpus` CPUs and `gpus` GPUs (a Ray task
    runs on one node), or None when one can. Ray would keep such a task pending forever."""
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    if any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
        return None
    most_cpus = max((n.get("CPU", 0) for n in nodes), default=0)
    most_gpus = max((n.get("GPU", 0) for n in nodes), default=0)
    if gpus > most_gpus:
        return (f"--gpus-per-trial {gpus:g} needs a node with {gpus:g} GPU(s); the largest "
                f"has {most_gpus:g}" + ("; use --gpus-per-trial 0 to train on CPUs"
                                         if most_gpus == 0 else ""))
    return (f"--cpus-per-trial {cpus:g} (with --gpus-per-trial {gpus:g}) needs a node with "
            f"{cpus:g} CPUs; the largest has {most_cpus:g}")


@ray.remote(num_cpus=0)
class EpochBroker:
    """Holds workers' epoch reports until the driver answers; records the search metrics."""

    def __init__(self, study: str) -> None:
        from nas.search.monitor import SearchMetrics

        self.metrics = SearchMetrics(study)
        self.pending: dict[int, tuple[int, dict[str, Any]]] = {}
        self.futures: dict[int, asyncio.Future[bool]] = {}
        self.next_id = 0

    async def report(self, number: int, row: dict[str, Any]) -> bool:
        """Called by a worker after each epoch; returns the driver's prune decision."""
        self.metrics.epoch(number, row)
        report_id = self.next_id
        self.next_id += 1
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.pending[report_id] = (number, row)
        self.futures[report_id] = future
        try:
            return await asyncio.wait_for(future, ANSWER_TIMEOUT_S)
        except TimeoutError:
            return False
        finally:
            self.futures.pop(report_id, None)
            self.pending.pop(report_id, None)

    async def drain(self) -> list[tuple[int, int, dict[str, Any]]]:
        """Reports the driver has not seen yet: (report id, trial number, epoch row)."""
        out = [(rid, number, row) for rid, (number, row) in self.pending.items()]
        self.pending.clear()
        return out

    async def answer(self, answers: list[tuple[int, bool]]) -> None:
        for report_id, prune in answers:
            future = self.futures.get(report_id)
            if future is not None and not future.done():
                future.set_result(prune)

    async def trial_started(self) -> None:
        self.metrics.trial_started()

    async def trial_finished(self, state: str, best: float | None) -> None:
        self.metrics.trial_finished(state, best)


def _trial_task(spec: TrialSpec, data: dict[str, Any], broker: Any) -> dict[str, Any]:
    """The Ray task body: train, asking the broker after each epoch whether to go on."""

    def on_epoch(row: dict[str, Any]) -> bool:
        return bool(ray.get(broker.report.remote(spec.number, row)))

    return run_trial(spec, data, on_epoch)


_remote_trial = ray.remote(_trial_task)


def task_name(study: str, number: int) -> str:
    return f"trial-{study}-{number}"


def submit_trial(spec: TrialSpec, data_ref: ray.ObjectRef, broker: Any, cpus: float,
                 gpus: float, max_retries: int) -> ray.ObjectRef:
    """One named task per trial; a dead worker process is retried `max_retries` times,
    an exception is not (the worker turns it into a FAIL result)."""
    broker.trial_started.remote()  # the nas_trials_running gauge; trial_finished lowers it
    return _remote_trial.options(
        name=task_name(spec.study, spec.number), num_cpus=cpus, num_gpus=gpus,
        max_retries=max_retries, retry_exceptions=False,
    ).remote(spec, data_ref, broker)


def task_error(exc: BaseException) -> str:
    """The reason a task produced no result, as stored with the FAIL trial."""
    from ray import exceptions as rx

    if isinstance(exc, rx.OutOfMemoryError):
        return "out of memory: Ray's memory monitor killed the worker"
    if isinstance(exc, rx.TaskCancelledError):
        return "cancelled"
    if isinstance(exc, rx.WorkerCrashedError | rx.NodeDiedError | rx.LocalRayletDiedError):
        return f"worker process died ({type(exc).__name__}) and retries were used up"
    if isinstance(exc, rx.RayTaskError):
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        text = str(cause).strip().splitlines()
        return f"{type(cause).__name__}: {text[-1] if text else ''}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
