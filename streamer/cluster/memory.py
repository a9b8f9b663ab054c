"""What a cluster driver keeps in the Ray cluster so that a restarted driver goes on where the
killed one stopped: each stream's highest epoch handed out, the placement (each stream's
worker at its last assignment), the ``seq`` lease (``streamer.cluster.numbering``) and the
previous run. It lives in Ray's own GCS key-value store (``ray.experimental.internal_kv``,
namespace ``expstream``, keys ``<cluster.state_key>/driver`` and ``<cluster.state_key>/seq``),
the store Ray's own libraries keep their controllers' checkpoints in; it outlives the driver
as long as the Ray head does (with GCS fault tolerance, a head restart too).

Only when the driver joins a Ray (``cluster.address``): a local Ray dies with its driver, and
nothing is kept. Writes: one per epoch handed out (before any worker or subscriber hears of
it: a restarted driver never hands it out again) and one per ``seq`` lease extension.

A restarted driver starts new workers (the old ones, actors of the dead driver, are ended by
Ray with it) and a new ``run``; every stream's next epoch is above any before, every topic's
``seq`` above any sent (docs/deployment.md, "the driver dies"). Two drivers must not share a
key (both would hand out the same epochs): a driver whose key names a Ray job that still runs
(after ``TAKEOVER_S``) refuses to start.

Example:
    >>> kv = DictKV()
    >>> first = DriverMemory(kv, "site"); first.run = "run-one"
    >>> first.epoch_taken("cam0", 1, "w0"); first.epoch_taken("cam0", 2, "w1")
    >>> seqs = first.seqs(block=10); seqs.take("faces.cam0")
    0
    >>> again = DriverMemory(kv, "site")                  # the driver restarted
    >>> again.epochs, again.placement, again.seqs(block=10).take("faces.cam0")
    ({'cam0': 2}, {'cam0': ['w1', 2]}, 10)
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from configs.core.errors import ConfigError
from streamer.cluster.assignment import Assignment, SourceRecord, SourceState
from streamer.cluster.numbering import SEQ_BLOCK, LeasedSeqs, TopicSeqs

log = logging.getLogger("streamer.cluster")

NAMESPACE = "expstream"
"""The GCS key-value namespace of every ExpStream driver's state."""
TAKEOVER_S = 30.0
"""How long a starting driver waits for Ray to count the previous driver of its key gone (a
killed driver's job ends as soon as Ray sees its connection drop; a running one's never)."""


class KV(Protocol):
    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...


class DictKV:
    """A store in this process (tests)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def put(self, key: str, value: bytes) -> None:
        self.data[key] = value


class RayKV:
    """Ray's GCS key-value store (after ``ray.init``), one call at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        from ray.experimental.internal_kv import _internal_kv_get

        with self._lock:
            return _internal_kv_get(key, namespace=NAMESPACE)

    def put(self, key: str, value: bytes) -> None:
        from ray.experimental.internal_kv import _internal_kv_put

        with self._lock:
            _internal_kv_put(key, value, overwrite=True, namespace=NAMESPACE)


class DriverMemory:
    """The driver's state as the previous driver left it (``epochs``, ``placement``, ``run``,
    ``seq_bound``), kept up to date from now on. ``kv`` None: nothing is kept (a local Ray)."""

    def __init__(
        self, kv: KV | None, key: str = "", *, job: str | None = None, running: Callable[[str], bool] | None = None
    ) -> None:
        self.kv, self.key = kv, key
        self.job, self._running = job, running
        """This driver's Ray job, and whether a Ray job still runs (the previous driver's)."""
        self.previous: dict[str, Any] = {}
        """What the previous driver wrote last (empty: none, or nothing kept)."""
        self.epochs: dict[str, int] = {}
        self.placement: dict[str, list[Any]] = {}
        self.seq_bound = 0
        """Every ``seq`` the previous drivers sent is below it."""
        self._load()
        self.run: str | None = None
        """This driver's run (the forwarder's), saved with each epoch."""
        self._lock = threading.Lock()

    @classmethod
    def open(cls, state_key: str | None, local_ray: bool) -> DriverMemory:
        """In Ray's GCS under ``state_key`` when the driver joined a Ray that outlives it."""
        if local_ray or not state_key:
            return cls(None)
        import ray

        return cls(RayKV(), state_key, job=ray.get_runtime_context().get_job_id(), running=_job_running)

    @property
    def kept(self) -> bool:
        return self.kv is not None

    def restore(self, assignment: Assignment) -> None:
        """Before anything is bound or sent: every stream's next epoch above the previous
        drivers' (a stream not in the sources now keeps its floor in a finished record, for an
        ``add_source`` later); save who runs now (``run``, once known, with the next epoch)."""
        if not self.kept:
            return
        if self._take_over():
            self._load()  # what it wrote until it was gone
        for sid, epoch in self.epochs.items():
            src = assignment.sources.get(sid)
            if src is None:
                src = SourceRecord(sid, "", state=SourceState.REMOVED, reason="before the driver restarted")
                assignment.sources[sid] = src
            src.epoch = max(src.epoch, epoch)
        if self.previous:
            on = ", ".join(f"{sid} on {w} (epoch {e})" for sid, (w, e) in sorted(self.placement.items()))
            log.warning(
                "cluster: the previous driver (run %s, pid %s on %s) left epochs and seq in the Ray cluster "
                "(%s/%s): streams go on above them (seq from %d); it had %s; its workers ended with it",
                self.previous.get("run"),
                self.previous.get("pid"),
                self.previous.get("host"),
                NAMESPACE,
                self.key,
                self.seq_bound,
                on or "no stream placed",
            )
        self._save()

    def epoch_taken(self, sid: str, epoch: int, worker: str) -> None:
        """``epoch`` of ``sid`` is handed out to ``worker``: saved before anyone hears of it."""
        with self._lock:
            self.epochs[sid] = max(epoch, self.epochs.get(sid, 0))
            self.placement[sid] = [worker, epoch]
            self._save()

    def seqs(self, block: int = SEQ_BLOCK) -> TopicSeqs:
        """The forwarder's numbering: from the saved lease's bound, leased on (or in memory)."""
        if not self.kept:
            return TopicSeqs()
        assert self.kv is not None
        kv, key = self.kv, f"{self.key}/seq"
        return LeasedSeqs(self.seq_bound, lambda bound: kv.put(key, str(bound).encode()), block)

    def _load(self) -> None:
        if self.kv is None:
            return
        self.previous = json.loads(self.kv.get(f"{self.key}/driver") or b"{}")
        self.epochs = {k: int(v) for k, v in self.previous.get("epochs", {}).items()}
        self.placement = dict(self.previous.get("placement", {}))
        self.seq_bound = int(self.kv.get(f"{self.key}/seq") or 0)

    def _take_over(self) -> bool:
        """Refuse to share the key with a driver that still runs (two drivers on one key would
        hand out the same epochs): wait, at most ``TAKEOVER_S``, for its Ray job to end. True:
        it had to wait."""
        job, prev = self.previous.get("job"), self.previous
        if not job or job == self.job or self._running is None:
            return False
        t0 = time.monotonic()
        while self._running(job):
            if time.monotonic() >= t0 + TAKEOVER_S:
                raise ConfigError(
                    f"cluster.state_key {self.key!r}: the driver of Ray job {job} (pid {prev.get('pid')} on "
                    f"{prev.get('host')}) still runs under that key; stop it, or give this driver another key"
                )
            time.sleep(0.5)
        waited = time.monotonic() - t0
        if waited > 0.1:
            log.info("cluster: waited %.1f s for Ray to count the previous driver gone", waited)
        return waited > 0.1

    def _save(self) -> None:
        if self.kv is None:
            return
        state = {
            "epochs": self.epochs,
            "placement": self.placement,
            "run": self.run,
            "job": self.job,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "saved_at": time.time(),
        }
        self.kv.put(f"{self.key}/driver", json.dumps(state, sort_keys=True).encode())


def _job_running(job: str) -> bool:
    """Whether the Ray job ``job`` (hex) still runs, from the GCS job table (False when Ray's
    table cannot be read: then nothing is guarded, and it is logged)."""
    try:
        from ray._private.state import jobs

        return any(j["JobID"] == job and not j["IsDead"] for j in jobs())
    except Exception as e:  # an internal table of Ray's: its shape may change
        log.warning("cluster: cannot tell whether the previous driver's Ray job %s still runs (%s)", job, e)
        return False
