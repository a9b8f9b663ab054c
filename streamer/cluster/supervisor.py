"""The driver's watch over its worker actors: it starts them, reads their heartbeats, and
acts when one stops answering (``lost``: its streams move; if it answers again it stops its
stale pipeline instances, then rejoins with none) or its process is gone (``dead``: its
streams move and, for a worker that was ever ready, a replacement starts). The cluster's
engine is one versioned setting (``engines.EngineChanger``): new workers start with the
current version, and a worker that answers with an older one (started before a change, or
rejoining after one) is brought up to date before it becomes ready and takes any stream.

The driver's loop calls ``check`` with its lock held; ``change_engine`` (a control request,
another thread) takes the lock only around its bookkeeping, never while workers build their
engines. States: ``streamer.cluster.workers.WorkerState``. Heartbeats are judged by the
driver's own clock while it runs: time the driver itself was paused counts for no worker.

Example (plain text: needs Ray)::

    supervisor = Supervisor(settings, assignment, capacity=4, lock=threading.RLock())
    supervisor.placement = placement           # where lost and dead workers' streams go
    first = supervisor.start(2, {"num_cpus": 2, "num_gpus": 1}, "tcp://10.0.0.2:5560")
    supervisor.check(ready_refs)               # each tick
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any

from configs import Settings
from configs.engine import EngineSettings
from streamer.cluster.assignment import Assignment
from streamer.cluster.engines import EngineChanger, EngineVersion, behind
from streamer.cluster.nodes import Suspects, affinity, next_node
from streamer.cluster.placement import Placement
from streamer.cluster.plan import worker_settings
from streamer.cluster.workers import WorkerSlot, WorkerState, error_text

log = logging.getLogger("streamer.cluster")

PAUSE_S = 1.0
"""A gap between two checks longer than this is the driver not looking (the loop runs every
0.2 s): it does not count against the workers' heartbeats."""


class Supervisor:
    """The worker actors, their states and heartbeats, and the settings new ones start with."""

    def __init__(
        self, settings: Settings, assignment: Assignment, capacity: int, lock: threading.RLock, log_level: str = "INFO"
    ) -> None:
        self.settings = settings
        """The cluster's settings now (engine changes replace the engine section)."""
        self.cs = settings.cluster
        self.assignment = assignment
        self.capacity = capacity
        self.lock = lock
        self.log_level = log_level
        self.workers: dict[str, WorkerSlot] = {}
        self.engines = EngineChanger(settings.engine)
        self.placement: Placement | None = None
        self.stopping = False
        """Shutting down: lost and dead workers' streams are closed, not moved or replaced."""
        self._ids = itertools.count()
        self._resources: dict[str, Any] = {}
        self._ingest = ""
        self._worker_settings: dict[str, Any] = {}
        self._checked_s: float | None = None
        self.suspects = Suspects()
        """Nodes where a worker was lost or died lately: new workers go elsewhere meanwhile."""

    @property
    def engine(self) -> str | None:
        """The cluster's engine fingerprint now (None until a worker built it)."""
        return self.engines.current.fingerprint

    @property
    def classes(self) -> list[str] | None:
        return self.engines.current.classes

    @property
    def _placement(self) -> Placement:
        assert self.placement is not None, "set placement before starting workers"
        return self.placement

    def start(self, n: int, resources: dict[str, Any], ingest: str) -> set[str]:
        """Start ``n`` workers reserving ``resources`` each, publishing to ``ingest``; their ids."""
        self._resources, self._ingest = resources, ingest
        self._worker_settings = self._settings_for_workers(self.settings)
        return {self._start_worker().id for _ in range(n)}

    def _settings_for_workers(self, settings: Settings) -> dict[str, Any]:
        return worker_settings(settings, self._ingest, self.cs.start_timeout_s).model_dump(mode="json")

    def _start_worker(self) -> WorkerSlot:
        """One more worker, on the node with the most free worker slots (``nodes.py``)."""
        wid = f"w{next(self._ids)}"
        avoid = self.suspects.now(time.monotonic())
        node, rooms = next_node((w.node_id for w in self.alive()), self._resources, avoid)
        resources = {**self._resources, **affinity(node)}
        slot = WorkerSlot.start(wid, self._worker_settings, resources, self.log_level, self.engines.current.version)
        slot.node = node
        self.workers[wid] = slot
        where = next((f"node {r.node_id[:8]} ({r.address})" for r in rooms if r.node_id == node), None)
        log.info("worker %s starting on %s", wid, where or "the first node with room (no other node has a free slot)")
        return slot

    def refs(self) -> list[Any]:
        """What the loop waits on: every live worker's lifetime, heartbeat and rejoin calls."""
        return [r for w in self.workers.values() for r in w.refs()]

    def alive(self) -> list[WorkerSlot]:
        return [w for w in self.workers.values() if w.alive]

    def ready_workers(self) -> list[WorkerSlot]:
        with self.lock:
            return [w for w in self.workers.values() if w.state == WorkerState.READY]

    # ---- each tick (the driver's lock held)

    def check(self, ready: set[Any]) -> None:
        """Act on the calls in ``ready`` that returned, then on heartbeats overdue."""
        import ray

        cs = self.cs
        self._credit_pause()
        for w in list(self.workers.values()):
            if not w.alive:
                continue
            if w.run_ref in ready:
                try:
                    ray.get(w.run_ref)
                    cause = "its pipeline stopped"
                except ray.exceptions.RayError as e:
                    cause = error_text(e)
                self._died(w, cause)
                continue
            if w.ping_ref is not None and w.ping_ref in ready:
                self._answered(w)
            if w.sync_ref is not None and w.sync_ref in ready:
                self._synced(w)
            if w.engine_ref is not None and w.engine_ref in ready:
                self._caught_up(w)
            if not w.alive:
                continue
            now = time.monotonic()
            silent_s = now - (w.last_seen_s or now)
            if w.state == WorkerState.STARTING and now - w.created_s > cs.start_timeout_s:
                self._died(w, f"did not start within {cs.start_timeout_s:g} s")
            elif w.state in (WorkerState.READY, WorkerState.REJOINING) and silent_s > cs.heartbeat_timeout_s:
                self._lost(w, f"no heartbeat for {silent_s:.1f} s")
            elif w.state == WorkerState.LOST and now - (w.lost_s or now) >= cs.lost_kill_s:
                self._died(w, f"lost for {cs.lost_kill_s:g} s: killed")
            if w.alive and w.state != WorkerState.STARTING and now - w.ping_sent_s >= cs.heartbeat_interval_s:
                w.ping()

    def _credit_pause(self) -> None:
        """A pause of the driver (SIGSTOP, a swapped-out or starved process) is not a failure
        of its workers: the time it did not look is added to every worker's clocks, so each
        is judged by the heartbeats the driver receives after it resumes."""
        now = time.monotonic()
        paused = now - (self._checked_s or now) - PAUSE_S
        self._checked_s = now
        if paused <= 0:
            return
        log.warning("driver: did not look at its workers for %.1f s (paused or starved); judging them afresh", paused)
        for w in self.workers.values():
            w.created_s += paused
            w.last_seen_s = None if w.last_seen_s is None else w.last_seen_s + paused
            w.lost_s = None if w.lost_s is None else w.lost_s + paused
            w.ping_sent_s = 0.0  # ask again at once (a call already on its way is kept)

    def _answered(self, w: WorkerSlot) -> None:
        import ray

        ref, w.ping_ref = w.ping_ref, None
        try:
            status = ray.get(ref)
        except ray.exceptions.RayActorError as e:
            self._died(w, error_text(e))
            return
        except ray.exceptions.RayError as e:  # a bug in status(): the worker is alive, say so
            log.error("worker %s: status failed: %s", w.id, error_text(e))
            status = None
        w.last_seen_s = time.monotonic()
        if status:
            w.status = status
            self.engines.heard(status)
        if w.state == WorkerState.STARTING and w.engine_ref is None:
            st = w.status
            log.info("worker %s up: pid %s on %s, engine %s", w.id, st.get("pid"), st.get("node_ip"), st.get("engine"))
            self._ready(w, st)
        elif w.state == WorkerState.LOST:
            w.state = WorkerState.REJOINING
            void = {sid: src.epoch for sid, src in self.assignment.sources.items() if src.epoch}
            w.sync_ref = w.actor.sync.remote({}, void)
            lost_for = w.last_seen_s - (w.lost_s or 0)
            log.warning("worker %s answered again after %.1f s lost: dropping its old streams", w.id, lost_for)

    def _synced(self, w: WorkerSlot) -> None:
        import ray

        ref, w.sync_ref = w.sync_ref, None
        try:
            res = ray.get(ref)
        except ray.exceptions.RayError as e:
            self._died(w, f"could not rejoin: {error_text(e)}")
            return
        if res.get("stopping"):
            self._died(w, f"could not rejoin: its stale instances {', '.join(res['stopping'])} would not stop")
            return
        log.info("worker %s rejoins with no stream (stopped %s)", w.id, ", ".join(res.get("revoked", [])) or "none")
        self._ready(w, res)

    def _ready(self, w: WorkerSlot, answer: dict[str, Any]) -> None:
        """A starting or rejoining worker takes streams from now on, once its engine is the
        driver's version (``answer``: what it said last); else it is brought up to it first."""
        cur = self.engines.current
        if behind(answer, cur):
            log.info("worker %s: engine version %s, bringing it to %d", w.id, answer.get("engine_version"), cur.version)
            w.engine_ref = w.actor.set_engine.remote(*cur.order())
            return
        w.state, w.cause, w.was_ready = WorkerState.READY, None, True
        self.assignment.add_worker(w.id, self.capacity)
        log.info("worker %s ready, engine version %d", w.id, cur.version)

    def _caught_up(self, w: WorkerSlot) -> None:
        import ray

        ref, w.engine_ref = w.engine_ref, None
        try:
            res = ray.get(ref)
        except ray.exceptions.RayError as e:
            self._died(w, f"could not take the engine of version {self.engines.current.version}: {error_text(e)}")
            return
        if w.state in (WorkerState.STARTING, WorkerState.REJOINING):
            self._ready(w, res)

    def _lost(self, w: WorkerSlot, cause: str) -> None:
        w.state, w.lost_s, w.cause = WorkerState.LOST, time.monotonic(), cause
        self.suspects.mark(w.node_id, w.lost_s)
        log.warning("worker %s lost: %s", w.id, cause)
        cause = f"worker {w.id} lost: {cause}"
        self._placement.move_away(w.id, cause, replace=not self.stopping, avoid=self._on_suspect_nodes())

    def _died(self, w: WorkerSlot, cause: str) -> None:
        if not w.alive:
            return
        w.state, w.cause = WorkerState.DEAD, cause
        self.suspects.mark(w.node_id, time.monotonic())
        log.warning("worker %s gone: %s", w.id, cause)
        w.kill()
        cause = f"worker {w.id} gone: {cause}"
        self._placement.move_away(w.id, cause, replace=not self.stopping, avoid=self._on_suspect_nodes())
        if w.was_ready and self.cs.replace_workers and not self.stopping:
            self._start_worker()

    def _on_suspect_nodes(self) -> tuple[str, ...]:
        """Live workers on a node where a worker was just lost or died: a lost worker's
        streams go elsewhere while another worker has room (Ray reports a dead node's
        workers one by one: its other workers may be next)."""
        suspect = self.suspects.now(time.monotonic())
        return tuple(w.id for w in self.alive() if w.node_id in suspect)

    # ---- engine changes (a control request's thread; ``engines.EngineChanger`` calls back)

    def change_engine(self, body: dict[str, Any], engine: EngineSettings) -> dict[str, Any]:
        """Make ``engine`` the cluster's next engine version and roll it out (``engines``)."""
        return self.engines.change(engine, self)

    def committed(self, version: EngineVersion) -> None:
        """New workers start with ``version``; the driver's own messages carry it."""
        self.settings = self.settings.replace(engine=version.settings)
        self._worker_settings = self._settings_for_workers(self.settings)

    def retire(self, worker_id: str, cause: str) -> None:
        self._died(self.workers[worker_id], cause)
