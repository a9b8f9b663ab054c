"""The driver of ``streamer cluster``: it owns the Ray connection, what the driver serves
(``front.ClusterOutlets``: the forwarder, the one endpoint, and the snapshot and control
endpoints, on one ZeroMQ context), the worker actors and the assignment of sources to them
(docs/deployment.md).

One loop (``tick``) on the driver's main thread wakes on any worker event (a heartbeat
answered, a worker's process gone, a call returned) or every ``TICK_S``, and then: reads
what the forwarder saw (epochs that ended, first messages of moved streams), checks every
worker's heartbeat, moves the streams of a lost or dead worker, and places pending sources.
Control requests (another thread) take the same lock.

Workers are ``WorkerSlot``s (``workers.py``); streams change hands through ``Placement``
(``placement.py``); control requests are ``ClusterController``'s (``control.py``).

Example (plain text: starts Ray)::

    driver = ClusterDriver(settings, load_sources("sources.yaml"))
    driver.start()                     # Ray, forwarder, endpoints, workers (shutdown() undoes it)
    code = driver.run(stop_event)      # until stop is set (or every source is done)
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any

from configs import Settings
from configs.core.errors import ExitCode, ModelError
from streamer.cluster.assignment import Assignment
from streamer.cluster.forwarder import Forwarder
from streamer.cluster.front import ClusterOutlets
from streamer.cluster.placement import Placement
from streamer.cluster.plan import connect_ray, plan_workers, worker_capacity, worker_ingest, worker_settings
from streamer.cluster.sourcelist import ClusterSource
from streamer.cluster.workers import WorkerSlot, error_text

log = logging.getLogger("streamer.cluster")

TICK_S = 0.2
"""Longest sleep of the driver's loop when nothing happens."""


class ClusterDriver:
    """Workers, sources and the one endpoint of a cluster run."""

    def __init__(self, settings: Settings, sources: list[ClusterSource], *, log_level: str = "INFO") -> None:
        self.settings = settings
        self.cs = settings.cluster
        self.log_level = log_level
        self.capacity = worker_capacity(self.cs)
        self.assignment = Assignment()
        for src in sources:
            self.assignment.add_source(src.stream_id, src.uri, src.weight)
        self.workers: dict[str, WorkerSlot] = {}
        self.engine: str | None = None
        self.classes: list[str] | None = None
        self.forwarder: Forwarder | None = None
        self.placement: Placement | None = None
        self.ingest = ""
        self.lock = threading.RLock()
        self._ids = itertools.count()
        self.front: ClusterOutlets | None = None
        self._local_ray = False
        self._resources: dict[str, Any] = {}
        self._worker_settings: dict[str, Any] = {}
        self._gate_s: float | None = None
        self._initial: set[str] = set()
        self._stopping = False

    # ================================================================ lifecycle

    def start(self) -> None:
        """Connect to Ray, open the forwarder and the endpoints, start the workers."""
        import ray

        from streamer.cluster.control import ClusterController

        self._local_ray = connect_ray(self.cs)
        self.front = front = ClusterOutlets(self.settings)  # forwarder and snapshot, on one context
        self.forwarder = front.forwarder
        node_ip = ray.util.get_node_ip_address()
        self.ingest = worker_ingest(self.forwarder.ingest_endpoint, self.cs.advertise_host, node_ip)
        self.placement = Placement(self.assignment, self.forwarder, front.board, self.workers)
        front.serve_control(ClusterController(self))
        n, self._resources = plan_workers(self.cs, self.settings.engine.device, ray.cluster_resources())
        self._worker_settings = worker_settings(self.settings, self.ingest, self.cs.start_timeout_s).model_dump(
            mode="json"
        )
        if self.settings.publisher.wait_subscribers:
            self._gate_s = time.monotonic() + self.settings.publisher.settle_s
        with self.lock:
            self._initial = {self._start_worker().id for _ in range(n)}
        log.info(
            "cluster: %d worker(s) (%s each, %d streams each), %d source(s); subscribers connect to %s; "
            "workers publish to %s%s",
            n,
            ", ".join(f"{k} {v}" for k, v in self._resources.items()),
            self.capacity,
            len(self.assignment.sources),
            self.forwarder.publish_endpoint,
            self.ingest,
            front.describe(),
        )

    def run(self, stop: threading.Event) -> int:
        """Serve (after ``start``) until ``stop`` is set or, without a control endpoint, every
        source is done; then shut down. The exit code: 0, or 1 when some source failed."""
        try:
            while not stop.is_set():
                self.tick()
                if not self.settings.control.endpoint and not self.assignment.active():
                    log.info("cluster: every source is done")
                    break
        finally:
            self.shutdown()
        failed = [s for s in self.assignment.sources.values() if s.state == "failed"]
        for s in failed:
            log.error("stream %s failed: %s", s.stream_id, s.reason)
        return int(ExitCode.STREAM_FAILED if failed else ExitCode.OK)

    def shutdown(self) -> None:
        """Workers end their streams (``ended``, reason ``stopped``), within ``stop_timeout_s``;
        the driver ends what they could not; then everything closes."""
        if not (self.workers or self.front or self._local_ray):
            return  # nothing was started (Ray missing or refused)
        import ray

        with self.lock:
            self._stopping = True
            alive = [w for w in self.workers.values() if w.alive]
            serving = [w for w in alive if w.state != "starting"]  # a starting one has no stream: killed below
            for w in serving:
                w.actor.stop.remote()
        deadline = time.monotonic() + self.cs.stop_timeout_s
        if serving:
            ray.wait([w.run_ref for w in serving], num_returns=len(serving), timeout=self.cs.stop_timeout_s)
        if self.placement is not None:
            while time.monotonic() < deadline and self._running_sources():
                with self.lock:
                    self.placement.drain_notices()
                time.sleep(0.05)
            with self.lock:
                for src in self.assignment.active():
                    self.placement.close(src.stream_id, src.epoch, "stopped", terminal="stopped", closed_ok=True)
        for w in alive:
            w.kill()
        if self.front is not None:
            self.front.close()  # endpoints, forwarder, then the one context
        if self._local_ray and ray.is_initialized():
            ray.shutdown()

    @property
    def _placement(self) -> Placement:
        assert self.placement is not None, "start() first"
        return self.placement

    def _running_sources(self) -> bool:
        with self.lock:
            return any(s.state in ("assigned", "removing") for s in self.assignment.active())

    # ================================================================ the loop

    def tick(self) -> None:
        """Wait for a worker event (at most ``TICK_S``), then act on everything that changed."""
        import ray

        with self.lock:
            refs = [r for w in self.workers.values() for r in w.refs()] + list(self._placement.calls)
        if refs:
            ray.wait(refs, num_returns=1, timeout=TICK_S)
        else:
            time.sleep(TICK_S)
        with self.lock:
            ready = set(ray.wait(refs, num_returns=len(refs), timeout=0)[0]) if refs else set()
            self._placement.drain_notices()
            self._check_workers(ready)
            self._placement.check_calls(ready)
            if self._gate_open():
                self._placement.place_pending()
            if not any(w.alive for w in self.workers.values()):
                causes = "; ".join(f"{w.id}: {w.cause}" for w in self.workers.values())
                raise ModelError(f"no worker is left ({causes})")

    def _gate_open(self) -> bool:
        """Sources start once every first worker is ready or given up (so they spread over
        all of them) and ``publisher.wait_subscribers`` subscribers are in (at most
        ``publisher.settle_s``, as ``streamer run`` holds its first message)."""
        if self._initial:
            if any(self.workers[w].state == "starting" for w in self._initial):
                return False
            self._initial = set()
        if self._gate_s is None:
            return True
        assert self.forwarder is not None
        if self.forwarder.stats.subscriptions >= self.settings.publisher.wait_subscribers:
            self._gate_s = None
        elif time.monotonic() >= self._gate_s:
            log.warning(
                "cluster: %d of %d subscriber(s) after %.1f s; going on",
                self.forwarder.stats.subscriptions,
                self.settings.publisher.wait_subscribers,
                self.settings.publisher.settle_s,
            )
            self._gate_s = None
        return self._gate_s is None

    # ================================================================ workers

    def _start_worker(self) -> WorkerSlot:
        wid = f"w{next(self._ids)}"
        slot = WorkerSlot.start(wid, self._worker_settings, self._resources, self.log_level)
        self.workers[wid] = slot
        log.info("worker %s starting", wid)
        return slot

    def _check_workers(self, ready: set[Any]) -> None:
        import ray

        cs = self.cs
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
            if not w.alive:
                continue
            now = time.monotonic()
            if w.state == "starting" and now - w.created_s > cs.start_timeout_s:
                self._died(w, f"did not start within {cs.start_timeout_s:g} s")
            elif w.state in ("ready", "rejoining") and now - (w.last_seen_s or now) > cs.heartbeat_timeout_s:
                self._lost(w, f"no heartbeat for {now - (w.last_seen_s or now):.1f} s")
            elif w.state == "lost" and now - (w.lost_s or now) >= cs.lost_kill_s:
                self._died(w, f"lost for {cs.lost_kill_s:g} s: killed")
            if w.alive and w.state != "starting" and now - w.ping_sent_s >= cs.heartbeat_interval_s:
                w.ping()

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
            self.engine, self.classes = status.get("engine"), status.get("classes")
            self._placement.engine = self.engine
        if w.state == "starting":
            w.state, w.was_ready = "ready", True
            self.assignment.add_worker(w.id, self.capacity)
            st = w.status
            log.info("worker %s ready: pid %s on %s, engine %s", w.id, st.get("pid"), st.get("node_ip"), self.engine)
        elif w.state == "lost":
            w.state = "rejoining"
            w.sync_ref = w.actor.sync.remote({})
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
        w.state, w.cause = "ready", None
        self.assignment.add_worker(w.id, self.capacity)
        log.info("worker %s rejoined with no stream (revoked %s)", w.id, ", ".join(res.get("revoked", [])) or "none")

    def _lost(self, w: WorkerSlot, cause: str) -> None:
        w.state, w.lost_s, w.cause = "lost", time.monotonic(), cause
        log.warning("worker %s lost: %s", w.id, cause)
        self._placement.move_away(w.id, f"worker {w.id} lost: {cause}", replace=not self._stopping)

    def _died(self, w: WorkerSlot, cause: str) -> None:
        if not w.alive:
            return
        w.state, w.cause = "dead", cause
        log.warning("worker %s gone: %s", w.id, cause)
        w.kill()
        self._placement.move_away(w.id, f"worker {w.id} gone: {cause}", replace=not self._stopping)
        if w.was_ready and self.cs.replace_workers and not self._stopping:
            self._start_worker()

    # ================================================================ control (any thread)

    def add_source(self, sid: str, uri: str, weight: int = 1) -> dict[str, Any]:
        with self.lock:
            src = self.assignment.add_source(sid, uri, weight)
            if self._gate_open():
                self._placement.place(sid)
            return {"streams": self.running(), "worker": src.worker, "epoch": src.epoch if src.worker else None}

    def remove_source(self, sid: str) -> dict[str, Any]:
        with self.lock:
            self._placement.remove(sid)
            return {"removing": sid}

    def running(self) -> list[str]:
        return sorted(s.stream_id for s in self.assignment.active() if s.state in ("assigned", "removing"))

    def ready_workers(self) -> list[WorkerSlot]:
        with self.lock:
            return [w for w in self.workers.values() if w.state == "ready"]

    def engine_changed(self, settings: Settings, failed: dict[str, str]) -> None:
        """New engine settings for new workers; workers that could not change are retired."""

        with self.lock:
            self.settings = settings
            self._worker_settings = worker_settings(settings, self.ingest, self.cs.start_timeout_s).model_dump(
                mode="json"
            )
            for wid, err in failed.items():
                self._died(self.workers[wid], f"engine change failed: {err}")
