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
``seq`` above any sent (docs/deployment.md, "the driver dies").

Example:
    >>> kv = DictKV()
    >>> first = DriverMemory(kv, "site")
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
from typing import Any, Protocol

from streamer.cluster.assignment import Assignment, SourceRecord, SourceState
from streamer.cluster.numbering import SEQ_BLOCK, LeasedSeqs, TopicSeqs

log = logging.getLogger("streamer.cluster")

NAMESPACE = "expstream"
"""The GCS key-value namespace of every ExpStream driver's state."""


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

    def __init__(self, kv: KV | None, key: str = "") -> None:
        self.kv, self.key = kv, key
        before = json.loads(kv.get(f"{key}/driver") or b"{}") if kv is not None else {}
        self.previous: dict[str, Any] = before
        """What the previous driver wrote last (empty: none, or nothing kept)."""
        self.epochs: dict[str, int] = {k: int(v) for k, v in before.get("epochs", {}).items()}
        self.placement: dict[str, list[Any]] = dict(before.get("placement", {}))
        self.seq_bound = int(kv.get(f"{key}/seq") or 0) if kv is not None else 0
        """Every ``seq`` the previous drivers sent is below it."""
        self.run: str | None = None
        self._lock = threading.Lock()

    @classmethod
    def open(cls, state_key: str | None, local_ray: bool) -> DriverMemory:
        """In Ray's GCS under ``state_key`` when the driver joined a Ray that outlives it."""
        if local_ray or not state_key:
            return cls(None)
        return cls(RayKV(), state_key)

    @property
    def kept(self) -> bool:
        return self.kv is not None

    def restore(self, assignment: Assignment, run: str) -> None:
        """Every stream's next epoch above the previous drivers' (a stream not in the sources
        now keeps its floor in a finished record, for an ``add_source`` later); save who runs now."""
        self.run = run
        if not self.kept:
            return
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

    def _save(self) -> None:
        if self.kv is None:
            return
        state = {
            "epochs": self.epochs,
            "placement": self.placement,
            "run": self.run,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "saved_at": time.time(),
        }
        self.kv.put(f"{self.key}/driver", json.dumps(state, sort_keys=True).encode())
