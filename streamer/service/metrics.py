"""Prometheus metrics and Kubernetes-style health endpoints of ``streamer run``
(``metrics.enabled``; docs/operations.md lists every series). Every stream the service has is
reported, however it came (start-up or ``add_source``, failed or not); removed ones leave.

One HTTP port serves ``/metrics`` (Prometheus text format), ``/healthz`` (200 while the
process serves) and ``/readyz`` (200 once the engine is loaded and every source has started
or failed; 503 with the reason before). Counters are not kept twice: each scrape reads the
pipeline's own ``Pipeline.snapshot()`` and the publisher's counters, so ``/metrics`` and the
run's report agree. Only what the snapshot lacks is recorded here: per-stage latency and
engine batch-size histograms, fed by ``PipelineStats.observers``. Process memory and CPU
come from prometheus-client's process collector (``process_resident_memory_bytes``).

Example (plain text: binds a port)::

    server = MetricsServer(settings.metrics)      # /healthz 200, /readyz 503 "engine loading"
    pipe = Pipeline(settings, specs, publisher)   # loads the engine
    server.attach(pipe)                           # /readyz 200 once every source started or failed
    pipe.run(stop)
    server.close()
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from configs.streamer import MetricsSettings
from streamer.net.security import is_loopback
from streamer.pipeline.stats import StatsSnapshot, StreamStats
from streamer.service.http import HttpServer, metrics_app

if TYPE_CHECKING:
    from streamer.pipeline import Pipeline

log = logging.getLogger(__name__)

NAMESPACE = "expstream"
STAGE_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
STATES = ("starting", "running", "reconnecting", "ended", "failed")
REMOVED = "removed"
"""The reason a stream stopped by ``remove_source`` ends with."""


def stream_state(st: StreamStats | None) -> str:
    """One of ``STATES`` for a stream's counters (None: its source has not reported yet)."""
    if st is None:
        return "starting"
    if st.outcome is not None:
        return st.outcome
    if st.last_event == "reconnecting":
        return "reconnecting"
    return "running" if st.started else "starting"


def service_streams(pipe: Pipeline, snap: StatsSnapshot) -> list[str]:
    """Every stream the service has, however it came: the start-up ones (before their sources
    report) and every one seen since (added through the control endpoint, failed or not);
    a removed stream leaves once it has ended."""
    ids = {s.stream_id for s in pipe.specs} | set(snap.streams)
    return sorted(sid for sid in ids if not ((s := snap.streams.get(sid)) and s.stats.reason == REMOVED))


class _PipelineCollector:
    """Families built from one ``Pipeline.snapshot()`` per scrape."""

    def __init__(self, server: MetricsServer) -> None:
        self._server = server

    def collect(self) -> Iterator[Metric]:
        pipe = self._server.pipeline
        yield GaugeMetricFamily(f"{NAMESPACE}_engine_ready", "1 once the engine is loaded", value=pipe is not None)
        if pipe is None:
            return
        snap = pipe.snapshot()
        ids = service_streams(pipe, snap)

        def per_stream(name: str, doc: str, value: Callable[[Any], float], kind: type = CounterMetricFamily) -> Metric:
            family = kind(f"{NAMESPACE}_{name}", doc, labels=["stream"])
            for sid in ids:
                s = snap.streams.get(sid)
                family.add_metric([sid], value(s) if s is not None else 0)
            return family

        src = lambda f: lambda s: getattr(s.source, f) if s.source is not None else 0  # noqa: E731
        yield per_stream("frames", "Frames detected, tracked and published", lambda s: s.stats.frames)
        yield per_stream("faces", "Face observations published", lambda s: s.stats.faces)
        yield per_stream("crops_scored", "Face crops scored by the engine", lambda s: s.stats.scored)
        yield per_stream("frame_errors", "Frames or crops skipped because a stage failed", lambda s: s.stats.errors)
        yield per_stream("frames_decoded", "Frames the source decoded", src("frames_decoded"))
        yield per_stream("source_frames_dropped", "Frames the source's full queue dropped", src("frames_dropped"))
        yield per_stream("decode_errors", "Packets the decoder rejected", src("decode_errors"))
        yield per_stream("reconnects", "Reconnect attempts of live sources", src("reconnects"))
        yield per_stream("discontinuities", "Timestamp jumps in files", src("discontinuities"))
        yield per_stream(
            "source_queue_depth", "Frames waiting in the source's queue", lambda s: s.queue_depth, GaugeMetricFamily
        )
        state = GaugeMetricFamily(
            f"{NAMESPACE}_stream_state", "1 for the stream's current state", labels=["stream", "state"]
        )
        for sid in ids:
            current = stream_state(snap.streams[sid].stats if sid in snap.streams else None)
            for name in STATES:
                state.add_metric([sid, name], float(name == current))
        yield state
        dropped = CounterMetricFamily(f"{NAMESPACE}_dropped", "Items dropped, by stage", labels=["stage"])
        for stage, n in snap.drops.items():
            dropped.add_metric([stage], n)
        yield dropped
        pub = pipe.publisher.stats
        yield CounterMetricFamily(f"{NAMESPACE}_messages_published", "Messages sent on the socket", value=pub.sent)
        why = CounterMetricFamily(f"{NAMESPACE}_messages_dropped", "Messages the publisher dropped", labels=["reason"])
        why.add_metric(["queue_full"], pub.dropped_queue)
        why.add_metric(["socket_or_encoding"], pub.dropped_socket)
        yield why
        yield GaugeMetricFamily(
            f"{NAMESPACE}_publisher_queue_depth",
            "Messages waiting for the publisher thread",
            value=snap.queues["publish"],
        )
        yield CounterMetricFamily(f"{NAMESPACE}_ticks", "Detection ticks (one frame per stream each)", value=snap.ticks)


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on ``settings.host:settings.port`` (a thread)."""

    def __init__(self, settings: MetricsSettings) -> None:
        self.settings = settings
        self.pipeline: Pipeline | None = None
        self.registry = CollectorRegistry()
        ProcessCollector(namespace="", registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.stage_seconds = Histogram(
            f"{NAMESPACE}_stage_seconds",
            "Time per call of each pipeline stage",
            ["stage"],
            buckets=STAGE_BUCKETS_S,
            registry=self.registry,
        )
        self.batch_crops = Histogram(
            f"{NAMESPACE}_engine_batch_crops",
            "Crops per engine call",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_PipelineCollector(self))
        host, app = settings.host, metrics_app(self.registry, self.readiness)
        self._http = HttpServer(app, host, settings.port, name="metrics", what="metrics.host/metrics.port")
        self.port = self._http.port
        where = self._http.url
        log.info("metrics on %s/metrics, health on %s/healthz and %s/readyz", where, where, where)
        if not is_loopback(f"tcp://{host}:{self.port}"):
            log.warning("metrics.host %s is reachable from other machines; the endpoint has no authentication", host)
        self.url = where

    def attach(self, pipeline: Pipeline) -> None:
        """Report on ``pipeline`` (its engine is loaded: ``/readyz`` waits for its sources)."""
        pipeline.stats.observers.append(self._observe)
        self.pipeline = pipeline

    def _observe(self, stage: str, seconds: float, items: int) -> None:
        self.stage_seconds.labels(stage).observe(seconds)
        if stage == "engine":
            self.batch_crops.observe(items)

    def readiness(self) -> tuple[bool, str]:
        """(ready, why): the engine is loaded and every source has started or failed."""
        pipe = self.pipeline
        if pipe is None:
            return False, "engine loading"
        snap = pipe.snapshot()
        waiting = [
            sid
            for sid in service_streams(pipe, snap)
            if (s := snap.streams.get(sid)) is None or not (s.stats.started or s.stats.outcome)
        ]
        if waiting:
            return False, f"waiting for source(s): {', '.join(waiting)}"
        return True, "ready"

    def close(self) -> None:
        """Stop serving. Idempotent."""
        self._http.close()
