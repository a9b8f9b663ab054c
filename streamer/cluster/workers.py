"""The driver's handles on its worker actors: one ``WorkerSlot`` per actor, with its state,
its lifetime call (``run``, which resolves when the actor dies), its outstanding heartbeat
and its last status.

States (``WorkerState``): ``starting`` (loading its engine; the first heartbeat answers once it is ready),
``ready`` (takes streams), ``rejoining`` (a lost worker answered again; it is told to drop
its old streams before it takes new ones), ``lost`` (no heartbeat within the timeout: its
streams were moved, it takes none), ``dead`` (its process is gone, or it was killed).

Example (plain text: needs Ray)::

    slot = WorkerSlot.start("w0", settings_dict, {"num_cpus": 2, "num_gpus": 0}, "INFO")
    ray.get(slot.ping())        # the worker's status once its engine is loaded
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

log = logging.getLogger(__name__)


class WorkerState(StrEnum):
    """Where a worker stands (its value is what ``streamer cluster status`` shows)."""

    STARTING = "starting"
    READY = "ready"
    REJOINING = "rejoining"
    LOST = "lost"
    DEAD = "dead"


MAX_CONCURRENCY = 8
"""Driver calls one worker actor serves at once (``assign``, ``remove``, ``control``, ...);
``run`` and ``status`` have a thread each of their own (concurrency groups)."""
CONCURRENCY_GROUPS = {"life": 1, "heartbeat": 1}


@dataclass
class WorkerSlot:
    """One worker actor as the driver sees it."""

    id: str
    actor: Any
    run_ref: Any
    state: WorkerState = WorkerState.STARTING
    created_s: float = field(default_factory=time.monotonic)
    last_seen_s: float | None = None
    lost_s: float | None = None
    ping_ref: Any = None
    ping_sent_s: float = 0.0
    sync_ref: Any = None
    engine_ref: Any = None
    """An outstanding ``set_engine``: the worker is brought up to the driver's engine version."""
    status: dict[str, Any] = field(default_factory=dict)
    cause: str | None = None
    was_ready: bool = False
    node: str | None = None
    """The node the driver chose for it (``nodes.py``); None: wherever Ray finds room."""

    @classmethod
    def start(
        cls,
        worker_id: str,
        settings: dict[str, Any],
        resources: dict[str, Any],
        log_level: str,
        engine_version: int = 1,
    ) -> WorkerSlot:
        """Create the actor (Ray places it where ``resources`` are free) and start its pipeline
        (its engine: version ``engine_version`` of the cluster's, as in ``settings``)."""
        actor = (
            _actor_class()
            .options(max_concurrency=MAX_CONCURRENCY, max_restarts=0, **resources)
            .remote(settings, worker_id, log_level, engine_version)
        )
        slot = cls(worker_id, actor, actor.run.remote())
        slot.ping()
        return slot

    @property
    def alive(self) -> bool:
        return self.state != WorkerState.DEAD

    @property
    def node_id(self) -> str | None:
        """Its node: where it reported running from, else the node chosen for it."""
        return self.status.get("node_id") or self.node

    def ping(self) -> Any:
        """Ask for the worker's status (its heartbeat) unless a request is outstanding."""
        if self.ping_ref is None:
            self.ping_ref = self.actor.status.remote()
            self.ping_sent_s = time.monotonic()
        return self.ping_ref

    def refs(self) -> list[Any]:
        """What the driver waits on for this worker."""
        refs = (self.run_ref, self.ping_ref, self.sync_ref, self.engine_ref)
        return [r for r in refs if r is not None] if self.alive else []

    def kill(self) -> None:
        import ray

        ray.kill(self.actor, no_restart=True)

    def describe(self, capacity: int, load: int, streams: list[str]) -> dict[str, Any]:
        """The worker's line of ``streamer cluster status``."""
        st = self.status if self.alive else {k: v for k, v in self.status.items() if k in LASTING}
        now = time.monotonic()
        return {
            "id": self.id,
            "state": str(self.state),
            "node_ip": st.get("node_ip"),
            "node_id": st.get("node_id") or self.node,
            "pid": st.get("pid"),
            "gpus": st.get("gpus", []),
            "engine": st.get("engine"),
            "engine_version": st.get("engine_version"),
            "streams": streams,
            "running": st.get("streams", []),
            "stale": st.get("stale", []),
            "capacity": capacity,
            "load": load,
            "fps": st.get("fps", {}),
            "cpu_percent": st.get("cpu_percent"),
            "drops": st.get("drops", {}),
            "fenced": st.get("fenced", 0),
            "seen_s_ago": None if self.last_seen_s is None else round(now - self.last_seen_s, 2),
            "cause": self.cause,
        }


LASTING = ("pid", "node_ip", "node_id", "gpus", "engine", "engine_version", "fenced")
"""What a dead worker's line keeps of its last status (who and where it was); its load,
streams and rates are gone with it."""


@functools.cache
def _actor_class() -> Any:
    import ray

    from streamer.cluster.worker import StreamWorker

    return ray.remote(concurrency_groups=CONCURRENCY_GROUPS)(StreamWorker)


def error_text(e: BaseException) -> str:
    """A Ray error in one line (the original exception for a task's error)."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"
    first = str(e).strip().splitlines()
    return f"{type(e).__name__}: {first[0] if first else ''}"
