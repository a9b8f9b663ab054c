"""The driver of ``streamer cluster``: it owns the Ray connection, what the driver serves
(``front.ClusterOutlets``: the forwarder, the one endpoint, and the snapshot and control
endpoints, on one ZeroMQ context), the worker actors (``supervisor.Supervisor``) and the
assignment of sources to them (docs/deployment.md).

One loop (``tick``) on the driver's main thread wakes on any worker event (a heartbeat
answered, a worker's process gone, a call returned) or every ``TICK_S``, and then: reads
what the forwarder saw (epochs that ended, first messages of moved streams), checks every
worker's heartbeat, moves the streams of a lost or dead worker, places pending sources, and
moves streams to even the load after a worker joined (``rebalance.Rebalancer``).
Control requests (another thread) take the same lock.

Streams change hands through ``Placement`` (``placement.py``); control requests are
``ClusterController``'s (``control.py``), which calls the driver's ``status``,
``add_source``, ``remove_source`` and ``change_engine``.

Example (plain text: starts Ray)::

    driver = ClusterDriver(settings, load_sources("sources.yaml"))
    driver.start()                     # Ray, forwarder, endpoints, workers (shutdown() undoes it)
    code = driver.run(stop_event)      # until stop is set (or every source is done)
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from configs import Settings
from configs.core.errors import ExitCode, ModelError
from configs.engine import EngineSettings
from streamer.cluster.adding import OPEN_MARGIN_S, await_open
from streamer.cluster.assignment import Assignment, SourceState
from streamer.cluster.control import ClusterController
from streamer.cluster.front import ClusterOutlets
from streamer.cluster.memory import DriverMemory
from streamer.cluster.placement import Placement
from streamer.cluster.plan import connect_ray, plan_workers, worker_capacity, worker_ingest
from streamer.cluster.rebalance import Rebalancer
from streamer.cluster.sourcelist import ClusterSource
from streamer.cluster.status import status_reply
from streamer.cluster.supervisor import Supervisor
from streamer.cluster.workers import WorkerSlot, WorkerState
from streamer.net.endpoints import Later

log = logging.getLogger("streamer.cluster")

TICK_S = 0.2
"""Longest sleep of the driver's loop when nothing happens."""


class ClusterDriver:
    """Workers, sources and the one endpoint of a cluster run."""

    def __init__(self, settings: Settings, sources: list[ClusterSource], *, log_level: str = "INFO") -> None:
        self.settings = settings
        self.cs = settings.cluster
        self.capacity = worker_capacity(self.cs)
        self.assignment = Assignment()
        self.startup = {src.stream_id for src in sources}
        """Sources of the sources file: only they decide the exit code (as one process's)."""
        for src in sources:
            self.assignment.add_source(src.stream_id, src.uri, src.weight)
        self.lock = threading.RLock()
        self.supervisor = Supervisor(settings, self.assignment, self.capacity, self.lock, log_level)
        self.front: ClusterOutlets | None = None
        self.placement: Placement | None = None
        self.rebalancer: Rebalancer | None = None
        self.ingest = ""
        self._local_ray = False
        self._gate_s: float | None = None
        self._initial: set[str] = set()

    @property
    def workers(self) -> dict[str, WorkerSlot]:
        return self.supervisor.workers

    # ================================================================ lifecycle

    def start(self) -> None:
        """Connect to Ray, open the forwarder and the endpoints, start the workers."""
        import ray

        self._local_ray = connect_ray(self.cs)
        self.memory = DriverMemory.open(self.cs.state_key, self._local_ray)  # what a killed driver left
        self.memory.restore(self.assignment)
        self.front = front = ClusterOutlets(self.settings, self.memory.seqs())
        self.memory.run = front.forwarder.run
        node_ip = ray.util.get_node_ip_address()
        self.ingest = worker_ingest(front.forwarder.ingest_endpoint, self.cs.advertise_host, node_ip)
        self.placement = self.supervisor.placement = Placement(
            self.assignment, front.forwarder, front.board, self.supervisor.workers
        )
        self.placement.on_epoch = self.memory.epoch_taken
        self.placement.engines = engines = self.supervisor.engines
        engines.fence = lambda fn: front.forwarder.call(lambda: fn(front.forwarder.engines))
        self.rebalancer = Rebalancer(self.assignment, self.placement, self.cs)
        front.serve_control(ClusterController(self))
        nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
        n, resources = plan_workers(self.cs, self.settings.engine.device, nodes)
        if self.settings.publisher.wait_subscribers:
            self._gate_s = time.monotonic() + self.settings.publisher.settle_s
        with self.lock:
            self._initial = self.supervisor.start(n, resources, self.ingest)
        log.info(
            "cluster: %d worker(s) (%s each, %d streams each), %d source(s); subscribers connect to %s (%s); "
            "workers publish to %s%s",
            n,
            ", ".join(f"{k} {v}" for k, v in resources.items()),
            self.capacity,
            len(self.assignment.sources),
            front.forwarder.publish_endpoint,
            front.sockets.describe(),
            self.ingest,
            front.describe(),
        )

    def run(self, stop: threading.Event) -> int:
        """Serve (after ``start``) until ``stop`` is set or, without a control endpoint, every
        source is done; then shut down. The exit code: 0, or 1 when a source of the sources
        file failed (one added through the control endpoint was answered: it does not count)."""
        try:
            while not stop.is_set():
                self.tick()
                if not self.settings.control.endpoint and not self.assignment.active():
                    log.info("cluster: every source is done")
                    break
        finally:
            self.shutdown()
        failed = [s for s in self.assignment.sources.values() if s.state == SourceState.FAILED]
        for s in failed:
            log.error("stream %s failed: %s", s.stream_id, s.reason)
        failed = [s for s in failed if s.stream_id in self.startup]  # one added later was answered
        return int(ExitCode.STREAM_FAILED if failed else ExitCode.OK)

    def shutdown(self) -> None:
        """Workers end their streams (``ended``, reason ``stopped``), within ``stop_timeout_s``;
        the driver ends what they could not; then everything closes."""
        if not (self.workers or self.front or self._local_ray):
            return  # nothing was started (Ray missing or refused)
        import ray

        with self.lock:
            self.supervisor.stopping = True
            alive = self.supervisor.alive()
            serving = [w for w in alive if w.state != WorkerState.STARTING]  # a starting one has no stream
            for w in serving:
                w.actor.stop.remote()
        deadline = time.monotonic() + self.cs.stop_timeout_s
        if serving:
            ray.wait([w.run_ref for w in serving], num_returns=len(serving), timeout=self.cs.stop_timeout_s)
        if self.placement is not None:
            while time.monotonic() < deadline and self.running():
                with self.lock:
                    self.placement.drain_notices()
                time.sleep(0.05)
            with self.lock:
                for src in self.assignment.active():
                    self.placement.close(src.stream_id, src.epoch, "stopped", terminal="stopped", closed_ok=True)
        for w in alive:
            w.kill()
        if self.front is not None:
            self.front.forwarder.seqs.close()
            self.front.close()
        if self._local_ray and ray.is_initialized():
            ray.shutdown()

    @property
    def _placement(self) -> Placement:
        assert self.placement is not None, "start() first"
        return self.placement

    # ================================================================ the loop

    def tick(self) -> None:
        """Wait for a worker event (at most ``TICK_S``), then act on everything that changed."""
        import ray

        with self.lock:
            refs = self.supervisor.refs() + list(self._placement.calls)
        if refs:
            ray.wait(refs, num_returns=1, timeout=TICK_S)
        else:
            time.sleep(TICK_S)
        with self.lock:
            ready = set(ray.wait(refs, num_returns=len(refs), timeout=0)[0]) if refs else set()
            self._placement.drain_notices()
            self.supervisor.check(ready)
            self._placement.check_calls(ready)
            if self._gate_open():
                self._placement.place_pending()
                if self.rebalancer is not None and not self.supervisor.engines.changing:
                    self.rebalancer.step()
            if not self.supervisor.alive():
                causes = "; ".join(f"{w.id}: {w.cause}" for w in self.workers.values())
                raise ModelError(f"no worker is left ({causes})")

    def _gate_open(self) -> bool:
        """Sources start once every first worker is ready or given up (so they spread over
        all of them) and ``publisher.wait_subscribers`` subscribers are in (at most
        ``publisher.settle_s``, as ``streamer run`` holds its first message)."""
        if self._initial:
            if any(self.workers[w].state == WorkerState.STARTING for w in self._initial):
                return False
            self._initial = set()
        if self._gate_s is None:
            return True
        assert self.front is not None
        subscriptions, wanted = self.front.forwarder.stats.subscriptions, self.settings.publisher.wait_subscribers
        if subscriptions >= wanted:
            self._gate_s = None
        elif time.monotonic() >= self._gate_s:
            log.warning(
                "cluster: %d of %d subscriber(s) after %.1f s; going on",
                subscriptions,
                wanted,
                self.settings.publisher.settle_s,
            )
            self._gate_s = None
        return self._gate_s is None

    # ================================================================ control (any thread)

    @property
    def engine_settings(self) -> EngineSettings:
        return self.supervisor.settings.engine

    def status(self) -> dict[str, Any]:
        """One process's ``streams``, ``engine``, ``classes``, and the cluster's workers,
        sources, moves and forwarder counters (``streamer cluster status``)."""
        assert self.front is not None, "start() first"
        fwd, moves = self.front.forwarder, self._placement.moves
        with self.lock:
            return status_reply(self.assignment, self.supervisor, self.capacity, fwd, self.ingest, moves)

    def add_source(self, stream_id: str, uri: str, weight: int = 1) -> dict[str, Any] | Later:
        """Place the source; answer at once when it waits for room (``pending``), else
        ``Later``: once it opened or failed on its worker (``adding``; no lock held)."""
        with self.lock:
            src = self.assignment.add_source(stream_id, uri, weight)
            self.startup.discard(stream_id)
            if self._gate_open():
                self._placement.place(stream_id)
            if src.worker is None:
                return {
                    "stream": stream_id,
                    "state": "pending",
                    "worker": None,
                    "epoch": None,
                    "streams": self.running(),
                }
            slot, epoch = self.workers[src.worker], src.epoch
        wait_s = self.settings.sources.open_timeout_s + OPEN_MARGIN_S
        return Later(lambda: {**await_open(slot, stream_id, epoch, wait_s), "streams": self.running()})

    def remove_source(self, stream_id: str) -> dict[str, Any]:
        with self.lock:
            self._placement.remove(stream_id)
            return {"removing": stream_id}

    def rebalance(self) -> dict[str, Any]:
        """Even the workers' loads now, one move at a time: the moves planned."""
        with self.lock:
            assert self.rebalancer is not None, "start() first"
            return self.rebalancer.request()

    def running(self) -> list[str]:
        """The streams on a worker now (assigned, or being removed there)."""
        with self.lock:
            return self.assignment.running()

    def change_engine(self, body: dict[str, Any], engine: EngineSettings) -> dict[str, Any]:
        return self.supervisor.change_engine(body, engine)
