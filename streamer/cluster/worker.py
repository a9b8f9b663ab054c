"""A cluster worker: the service of one process (``streamer.service.assembly.Service``) in
the worker actor's own process, its publisher a CurveZMQ client of the driver's forwarder
behind a ``FencedPublisher``.

The pipeline runs in-process (a thread of the Ray actor), not as a ``streamer run``
subprocess: one worker is one process, so a crash, an OOM kill or a SIGKILL of that process
ends the actor, and Ray reports it to the driver at once; no orphan pipeline can outlive
its actor, and no second liveness protocol is needed between actor and pipeline
(docs/deployment.md).

The driver calls (as Ray actor methods, several at once: a threaded actor): ``run`` (blocks
for the worker's life), ``status`` (the heartbeat: streams, epochs, load), ``assign`` (start
a stream under an epoch: a pipeline instance of its own, named ``cam0@2``), ``remove`` (stop
it, its ``ended`` published), ``revoke`` (stop publishing it now: it moved), ``sync`` (keep
only these epochs and wait until the others stopped: a lost worker rejoining), ``opened``
(wait until an instance opened or failed: ``add_source``), ``set_engine`` (bring the engine
up to a version of the cluster's engine settings: ``streamer.cluster.engines``; ``assign``
does it first when it carries a newer one) and ``stop``.

Example (plain text: loads an engine, and waits for the forwarder's subscription)::

    from streamer.cluster.plan import worker_settings

    w = StreamWorker(worker_settings(settings, "tcp://10.0.0.2:5560", 60.0).model_dump(mode="json"), "w0")
    threading.Thread(target=w.run).start()
    w.assign("cam0", "rtsp://10.0.0.5/live", epoch=1)
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import ray

from configs import Settings
from configs.core.errors import ConfigError
from configs.core.logs import configure_logging
from streamer.cluster.epochs import instance_key, split_instance_key

log = logging.getLogger(__name__)


class StreamWorker:
    """One pipeline with no stream at first; streams come and go by the driver's calls."""

    def __init__(
        self, settings: dict[str, Any], worker_id: str, log_level: str = "INFO", engine_version: int = 1
    ) -> None:
        configure_logging(log_level, once=True)  # reaches the driver's stderr through Ray
        _normal_priority()
        from streamer.cluster.fencing import FencedPublisher
        from streamer.pipeline.stats import RateMeter
        from streamer.service.assembly import Service

        self.worker_id = worker_id
        self.settings = Settings.model_validate(settings)
        self.service = Service(self.settings, keep_alive=True, client=True, wrap=FencedPublisher)
        publisher = self.service.publisher
        assert isinstance(publisher, FencedPublisher)
        self.publisher = publisher
        self.pipeline = self.service.pipeline
        self.controller = self.service.controller
        self._stop = threading.Event()
        self._orders = threading.Lock()
        """Serialises assign/remove/revoke (Ray runs a threaded actor's calls concurrently)."""
        self.engine_version = engine_version
        """The version of the cluster's engine settings this pipeline runs (those it started with)."""
        self._engine = threading.Lock()
        """One engine change at a time (``set_engine``)."""
        self._cancelled: dict[str, int] = {}
        """Per stream, the newest epoch removed or revoked here: a late ``assign`` of it is void."""
        self._meter = RateMeter()
        self._cpu = (time.monotonic(), _cpu_s())
        log.info("worker %s ready (pid %d), engine %s", worker_id, os.getpid(), self.pipeline.engine.fingerprint)

    @ray.method(concurrency_group="life")
    def run(self) -> dict[str, Any]:
        """Run the pipeline until ``stop``; the final counters."""
        try:
            snap = self.service.run(self._stop)
        finally:
            self.service.close()
        return {"worker": self.worker_id, "frames": snap.frames, "published": self.publisher.stats.sent}

    def stop(self) -> None:
        """End every stream (each publishes ``ended``, reason ``stopped``) and return from ``run``."""
        self._stop.set()

    def assign(
        self, stream_id: str, uri: str, epoch: int, engine_version: int = 0, engine: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Serve ``stream_id`` under ``epoch``, as a pipeline instance of its own
        (``instance_key``), unless that epoch was already removed or revoked here, or it or
        a newer one is held (calls may arrive out of order). An older instance of the stream
        still here is revoked first; it may still be stopping while the new one starts: its
        messages can no longer pass as the new one's. The engine is first brought up to
        ``engine_version`` (``engine``: its settings), so that no instance starts on an
        engine older than the driver's; one that cannot be built refuses the assignment."""
        from streamer.pipeline import StreamSpec

        if engine is not None:
            self.set_engine(engine_version, engine)
        with self._orders:
            if self._cancelled.get(stream_id, 0) >= epoch or self.publisher.epochs().get(stream_id, 0) >= epoch:
                return {"stream": stream_id, "epoch": epoch, "started": False}
            self._stop_instances(lambda sid, e: sid == stream_id and e < epoch)
            key = self.publisher.hold(stream_id, epoch)
            try:
                self.pipeline.add_source(StreamSpec(key, uri))
            except BaseException:
                self.publisher.revoke(key)
                raise
        return {"stream": stream_id, "epoch": epoch, "started": True}

    def remove(self, stream_id: str, epoch: int) -> dict[str, Any]:
        """Stop ``stream_id`` of ``epoch``: it ends with reason ``removed`` (published).
        ``running`` False: it was not running here (ended already, or not started yet: then
        it never will)."""
        key = instance_key(stream_id, epoch)
        with self._orders:
            self._cancel(stream_id, epoch)
            if key not in self.publisher.held() or key not in self.pipeline.running_streams():
                return {"stream": stream_id, "running": False}
            self.pipeline.remove_source(key)
        return {"stream": stream_id, "running": True}

    def revoke(self, stream_id: str, epoch: int) -> dict[str, Any]:
        """Stop publishing ``stream_id`` of ``epoch`` (or older) at once and stop those
        instances: it moved elsewhere."""
        with self._orders:
            self._cancel(stream_id, epoch)
            stopped = self._stop_instances(lambda sid, e: sid == stream_id and e <= epoch)
        return {"stream": stream_id, "revoked": bool(stopped)}

    def sync(self, keep: dict[str, int], void: dict[str, int], wait_s: float = 30.0) -> dict[str, Any]:
        """Keep only the instances of ``keep`` (stream -> epoch: the driver's view), stop every
        other, and wait (at most ``wait_s``) until they are gone; an ``assign`` of an epoch up to
        ``void``'s (stream -> the driver's newest epoch) that is still on its way is void. A lost
        worker that answers again gets this before it takes new streams. ``stopping``: stale
        instances that did not stop in time."""
        with self._orders:  # no instance starts before the stale ones are gone
            for sid, epoch in void.items():
                self._cancel(sid, epoch)
            stale = self._stop_instances(lambda sid, e: keep.get(sid) != e)
            deadline = time.monotonic() + wait_s
            while (left := set(stale) & set(self.pipeline.running_streams())) and time.monotonic() < deadline:
                time.sleep(0.05)
        return {"revoked": sorted(stale), "stopping": sorted(left), "engine_version": self.engine_version}

    def _cancel(self, stream_id: str, epoch: int) -> None:
        self._cancelled[stream_id] = max(epoch, self._cancelled.get(stream_id, 0))

    def _stop_instances(self, stale: Callable[[str, int], bool]) -> list[str]:
        """Revoke and stop every instance (held or running) whose ``(stream, epoch)`` is
        ``stale``; their keys. Callers hold ``_orders``."""
        running = set(self.pipeline.running_streams())
        found = []
        for key in sorted(set(self.publisher.held()) | running):
            split = split_instance_key(key)
            if split is None or stale(*split):
                found.append(key)
                self.publisher.revoke(key)
                if key in running:
                    with contextlib.suppress(ConfigError):  # it ended on its own meanwhile
                        self.pipeline.remove_source(key)
        return found

    def opened(self, stream_id: str, epoch: int, wait_s: float) -> dict[str, Any]:
        """Wait (at most ``wait_s``) until the instance of ``epoch`` of ``stream_id`` opened or
        failed, as one process's ``add_source`` does: its ``state`` (``running``, ``failed``,
        ``reconnecting``, ``starting`` when the wait ran out) and the failure's ``reason``.
        The driver asks it for a source added through its control endpoint."""
        key = instance_key(stream_id, epoch)
        state, reason = self.controller.opened(key, time.monotonic() + wait_s)
        return {"stream": stream_id, "epoch": epoch, "state": state, "reason": reason}

    def set_engine(self, version: int, engine: dict[str, Any]) -> dict[str, Any]:
        """Run version ``version`` of the cluster's engine settings (``engine``: the engine
        section) unless this pipeline runs it or a newer one: the new engine is built and
        swapped in as one process's ``set_prompts``/``set_head`` does (every stream's later
        messages carry it). A failure to build raises and changes nothing."""
        from configs.engine import EngineSettings

        with self._engine:
            if version > self.engine_version:
                self.pipeline.change_engine(EngineSettings.model_validate(engine))
                self.engine_version = version
                log.info("worker %s: engine version %d (%s)", self.worker_id, version, self.pipeline.engine.fingerprint)
            eng = self.pipeline.engine
            return {"engine": eng.fingerprint, "classes": eng.classes, "engine_version": self.engine_version}

    @ray.method(concurrency_group="heartbeat")
    def status(self) -> dict[str, Any]:
        """The heartbeat: who and where, streams and epochs, and load. Its own thread
        (concurrency group): calls waiting for the others never delay it."""
        snap = self.pipeline.snapshot()
        now = time.monotonic()
        held = self.publisher.held()
        running = self.pipeline.running_streams()
        fps = {
            held[key][0]: round(self._meter.rate(key, s.stats.frames, now), 2)
            for key, s in snap.streams.items()
            if key in held
        }
        t0, c0 = self._cpu
        self._cpu = (now, _cpu_s())
        ctx = ray.get_runtime_context()
        return {
            "worker": self.worker_id,
            "pid": os.getpid(),
            "node_ip": ray.util.get_node_ip_address(),
            "node_id": ctx.get_node_id(),
            "gpus": [str(g) for g in ray.get_gpu_ids()],
            "engine": self.pipeline.engine.fingerprint,
            "classes": self.pipeline.engine.classes,
            "engine_version": self.engine_version,
            "streams": sorted(held[key][0] for key in running if key in held),
            "stale": sorted(key for key in running if key not in held),
            "epochs": self.publisher.epochs(),
            "fps": fps,
            "cpu_percent": round(100.0 * (self._cpu[1] - c0) / max(now - t0, 1e-6), 1),
            "drops": snap.drops,
            "queues": snap.queues,
            "published": self.publisher.stats.sent,
            "fenced": self.publisher.fenced,
        }


def _normal_priority() -> None:
    """Ray starts workers at nice 15 unless told otherwise (``RAY_worker_niceness=0``): back to
    0 where allowed, so decoding and detection do not starve behind ordinary processes."""
    nice = os.nice(0)
    if nice <= 0:
        return
    try:
        os.nice(-nice)
    except PermissionError:
        log.warning("worker runs at nice %d (start Ray with RAY_worker_niceness=0 for real-time streams)", nice)


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system
