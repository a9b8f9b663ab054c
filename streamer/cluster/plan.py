"""What the driver decides before any worker starts: how many workers and what each one
reserves, how many streams each takes, where workers reach the forwarder, and the Ray
connection itself; and the settings each worker runs with.

Example:
    >>> from configs.cluster import ClusterSettings
    >>> plan_workers(ClusterSettings(worker_cpus=2), "cpu", [{"CPU": 8.0, "GPU": 2.0}])
    (4, {'num_cpus': 2.0, 'num_gpus': 0})
    >>> plan_workers(ClusterSettings(), "auto", [{"CPU": 32.0, "GPU": 2.0}])
    (2, {'num_cpus': 2.0, 'num_gpus': 1.0})
    >>> plan_workers(ClusterSettings(worker_gpus=0.5), "auto", [{"CPU": 32.0, "GPU": 1.0}, {"CPU": 2.0, "GPU": 4.0}])
    (3, {'num_cpus': 2.0, 'num_gpus': 0.5})
    >>> worker_ingest("tcp://0.0.0.0:5560", None, "10.0.0.2"), worker_ingest("tcp://127.0.0.1:41000", None, "10.0.0.2")
    ('tcp://10.0.0.2:5560', 'tcp://127.0.0.1:41000')
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from configs import Settings
from configs.cluster import ClusterSettings
from configs.core.errors import ConfigError, MissingDependency

log = logging.getLogger(__name__)

LOCAL_OBJECT_STORE_BYTES = 128 << 20
"""A local Ray's object store: only small control values travel through Ray (frames and
results go over ZeroMQ), so it stays small."""


def plan_workers(cs: ClusterSettings, engine_device: str, nodes: list[dict[str, float]]) -> tuple[int, dict[str, Any]]:
    """``(worker count, Ray resources each reserves)`` for the cluster's ``nodes`` (each
    node's Ray resources): as many workers as fit node by node, counting CPUs and, when the
    engine may use CUDA, GPUs (``worker_gpus``, fractions allowed: 0.5 = two workers per
    card); a worker never spans nodes, so 1.5 GPUs on each of two nodes hold two 1-GPU
    workers, not three."""
    gpus = sum(float(n.get("GPU", 0.0)) for n in nodes)
    use_gpu = engine_device != "cpu" and gpus > 0 and cs.worker_gpus > 0
    if engine_device.startswith("cuda") and not use_gpu:
        raise ConfigError(f"engine.device is {engine_device} but the Ray cluster offers no GPU to workers")
    options: dict[str, Any] = {"num_cpus": cs.worker_cpus, "num_gpus": cs.worker_gpus if use_gpu else 0}
    fits = [_fit(n, "CPU", cs.worker_cpus) if not use_gpu else _fit_both(n, cs) for n in nodes]
    if cs.workers is not None:
        if cs.workers > sum(fits):
            log.warning(
                "cluster.workers: %d workers, but the nodes now hold %d; the rest wait for room", cs.workers, sum(fits)
            )
        return cs.workers, options
    if sum(fits) < 1:
        cpus = sum(float(n.get("CPU", 0.0)) for n in nodes)
        what = f"{cs.worker_cpus:g} CPUs" + (f" and {cs.worker_gpus:g} GPUs" if use_gpu else "")
        raise ConfigError(
            f"cluster.worker_cpus: no node of the Ray cluster ({cpus:g} CPUs, {gpus:g} GPUs in all) has room for one "
            f"worker ({what}); lower it or set cluster.workers"
        )
    return sum(fits), options


def _fit(node: dict[str, float], resource: str, each: float) -> int:
    """Workers reserving ``each`` of ``resource`` that fit on ``node`` (Ray counts resources
    to 1e-4; a little slack keeps 1.0 / 0.1 from becoming 9)."""
    return int(float(node.get(resource, 0.0)) / each + 1e-6)


def _fit_both(node: dict[str, float], cs: ClusterSettings) -> int:
    return min(_fit(node, "CPU", cs.worker_cpus), _fit(node, "GPU", cs.worker_gpus))


def worker_capacity(cs: ClusterSettings) -> int:
    """Streams per worker: ``streams_per_worker``, or the bench report's real-time maximum.

    Raises:
        ConfigError: the report is missing, has no sweep, lacks the face count, or kept no
            stream in real time.
    """
    if cs.capacity_report is None:
        return cs.streams_per_worker
    path = Path(cs.capacity_report)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"cluster.capacity_report: cannot read {str(path)!r} ({e})") from e
    sweep = report.get("sweep") if isinstance(report, dict) else None
    if not isinstance(sweep, dict) or not sweep:
        raise ConfigError(f"cluster.capacity_report: {path} has no sweep (streamer bench --sweep ... --json makes one)")
    row = sweep.get(str(cs.capacity_faces))
    if not isinstance(row, dict):
        faces = ", ".join(sweep)
        raise ConfigError(f"cluster.capacity_faces: {cs.capacity_faces} is not in the report's sweep ({faces})")
    n = int(row.get("max_realtime_streams", 0))
    if n < 1:
        raise ConfigError(f"cluster.capacity_report: at {cs.capacity_faces} faces no stream ran in real time ({path})")
    return n


def worker_ingest(bound: str, advertise_host: str | None, node_ip: str) -> str:
    """The endpoint workers connect to, from the forwarder's bound ingest endpoint."""
    host, _, port = bound.removeprefix("tcp://").rpartition(":")
    if advertise_host:
        host = advertise_host
    elif host in ("*", "0.0.0.0", "::", "[::]"):
        host = node_ip
    return f"tcp://{host}:{port}"


def connect_ray(cs: ClusterSettings) -> bool:
    """Join ``cluster.address``, or start a local Ray (True: started here, shut down with the
    driver). Ray's own logs stay at WARNING; workers' logs reach this process's stderr."""
    try:
        import ray
    except ImportError as e:
        raise MissingDependency("streamer cluster needs Ray: pip install 'expstream[cluster]'") from e
    common: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True}
    try:
        if cs.address:
            ray.init(address=cs.address, **common)
            return False
        ray.init(
            address="local",
            num_cpus=cs.local_cpus,
            num_gpus=cs.local_gpus,
            include_dashboard=False,
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            _system_config={"worker_niceness": 0},  # a real-time pipeline, not a background task
            **common,
        )
    except ConnectionError as e:
        raise ConfigError(f"cluster.address {cs.address!r}: cannot connect to Ray ({e})") from e
    return True


def worker_settings(settings: Settings, ingest: str, start_timeout_s: float) -> Settings:
    """A worker's settings: its publisher connects to the forwarder (a CurveZMQ client with
    ``security.client_secret_key``) and holds its first message until the forwarder's
    subscription arrived; it serves nothing (no endpoints, no metrics, no server keys: the
    driver's stay on the driver) and writes no preview of its own.

    Example:
        >>> from configs import load_settings
        >>> w = worker_settings(load_settings(None, ["control.endpoint=tcp://127.0.0.1:5558"]), "tcp://h:5560", 60)
        >>> w.publisher.endpoint, w.publisher.bind, w.control.endpoint, w.metrics.enabled
        ('tcp://h:5560', False, None, False)
    """
    pub = settings.publisher.replace(
        kind="zmq", endpoint=ingest, bind=False, wait_subscribers=1, settle_s=start_timeout_s
    )
    return settings.replace(
        publisher=pub,
        snapshot=settings.snapshot.replace(endpoint=None),
        control=settings.control.replace(endpoint=None),
        metrics=settings.metrics.replace(enabled=False),
        security=settings.security.replace(server_secret_key=None, authorized_clients=None, allow_any_client=False),
    )
