"""The ``cluster`` section: ``streamer cluster`` runs one pipeline per worker actor on a Ray
cluster, behind one forwarder that subscribers connect to (docs/deployment.md).

Example:
    >>> c = ClusterSettings(workers=2, streams_per_worker=3)
    >>> c.workers, c.streams_per_worker, c.heartbeat_timeout_s
    (2, 3, 5.0)
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from configs.base import ConfigPath, StrictSettings
from configs.streamer import check_endpoint


class ClusterSettings(StrictSettings):
    """Workers on Ray, how many streams each takes, and how fast a dead one is replaced."""

    address: str | None = None
    """The Ray cluster to join: ``auto`` (the one ``ray start`` runs on this machine, or
    RAY_ADDRESS), ``HOST:6379`` (a head node), or ``ray://HOST:10001`` (Ray Client); null =
    start a local Ray on this machine for the run (stopped with it)."""
    local_cpus: int | None = Field(None, ge=1, le=4096)
    """CPUs a local Ray offers (null = the machine's cores). Logical: workers reserve them
    (``worker_cpus``), nothing is pinned."""
    local_gpus: int | None = Field(None, ge=0, le=1024)
    """GPUs a local Ray offers (null = what Ray detects)."""
    workers: int | None = Field(None, ge=1, le=4096)
    """Worker actors to keep running (each one process with one pipeline); null = as many as
    fit node by node: per ``worker_gpus`` GPUs (and ``worker_cpus`` CPUs) when the engine may
    run on CUDA and the cluster has GPUs, else per ``worker_cpus`` CPUs."""
    worker_cpus: float = Field(2.0, gt=0, le=1024)
    """CPUs each worker reserves on its node (decode threads, detection, publishing)."""
    worker_gpus: float = Field(1.0, ge=0, le=64)
    """GPUs each worker reserves (the actor's ``num_gpus``) when the engine may run on CUDA
    (1 = one worker per GPU; fractions share a card: 0.5 = two workers per GPU)."""
    streams_per_worker: int = Field(4, ge=1, le=1024)
    """Streams one worker takes (its capacity), unless ``capacity_report`` is set."""
    capacity_report: Annotated[str | None, ConfigPath()] = None
    """A ``streamer bench --sweep ... --json`` report measured on the workers' hardware; a
    worker's capacity is then that report's most real-time streams at ``capacity_faces``."""
    capacity_faces: int = Field(4, ge=1, le=1_000_000)
    """The faces-per-frame row of ``capacity_report`` that sets the capacity (one of its
    sweep's face counts)."""
    ingest_endpoint: str = "tcp://*:5560"
    """Where the forwarder's XSUB binds; every worker's publisher connects to it (port ``*``:
    any free port)."""
    advertise_host: str | None = None
    """The host workers connect to for the ingest endpoint; null = the endpoint's host when it
    names one, else the driver node's address as Ray reports it."""
    heartbeat_interval_s: float = Field(1.0, gt=0, le=60)
    """How often the driver asks each worker for its status (its heartbeat and load)."""
    heartbeat_timeout_s: float = Field(5.0, gt=0, le=600)
    """A ready worker that has not answered for this long is lost: its streams are fenced and
    moved. A worker whose process dies is noticed through Ray at once."""
    start_timeout_s: float = Field(300.0, gt=0, le=3600)
    """How long a new worker may take to load its engine and connect before it is given up."""
    lost_kill_s: float = Field(60.0, ge=0, le=3600)
    """A lost worker that has not answered again after this long is killed (frees its GPU for
    a replacement); one that answers earlier rejoins with no stream. 0 = kill at once."""
    replace_workers: bool = True
    """Start a new worker for each one that died or was killed (Ray places it where resources
    are free; it takes pending and new sources)."""
    stop_timeout_s: float = Field(30.0, gt=0, le=600)
    """On SIGINT/SIGTERM, how long workers get to end their streams before they are killed."""
    rebalance: bool = True
    """When a worker joins (a new or replacement worker ready, a lost one rejoined), move
    streams to it until loads are even within ``rebalance_tolerance``, one move at a time,
    each with the handover of a lost worker's move. ``streamer cluster rebalance`` does it on
    demand either way."""
    rebalance_tolerance: int = Field(1, ge=1, le=1024)
    """Loads (in source weight units) may differ by this much between workers before a stream
    is moved to even them."""
    rebalance_hold_s: float = Field(10.0, ge=0, le=3600)
    """Damping: streams move to a worker that joined only once the set of ready workers has
    not changed for this long (a worker that flaps moves nothing), and the next move waits
    until the previous one resumed (or this long)."""
    state_key: str | None = Field("expstream", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    """When the driver joins a Ray (``address`` set), the name its state is kept under in that
    Ray's key-value store (each stream's highest epoch, the placement, the ``seq`` lease), so
    that a restarted driver goes on with epochs and ``seq`` above any before; one name per
    driver sharing a Ray. null = kept nowhere (epochs and ``seq`` start again after a restart,
    as with a local Ray, which nothing outlives)."""

    @field_validator("ingest_endpoint")
    @classmethod
    def _check_ingest(cls, v: str) -> str:
        if not v.startswith("tcp://"):
            raise ValueError("workers on other machines connect to it: use tcp://HOST:PORT")
        return check_endpoint(v)

    @model_validator(mode="after")
    def _check_heartbeat(self) -> ClusterSettings:
        if self.heartbeat_timeout_s <= self.heartbeat_interval_s:
            raise ValueError(
                f"heartbeat_timeout_s ({self.heartbeat_timeout_s}) must exceed heartbeat_interval_s "
                f"({self.heartbeat_interval_s})"
            )
        return self
