"""The cluster's ``status`` reply (``streamer cluster status``, the control endpoint's
``{"op": "status"}``): one process's ``streams``, ``engine`` and ``classes``, plus the
cluster's engine version, workers, sources, moves and forwarder counters. Built under the
driver's lock from what the driver holds; nothing here talks to Ray."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from streamer.cluster.assignment import Assignment
from streamer.cluster.forwarder import Forwarder
from streamer.cluster.supervisor import Supervisor


def status_reply(
    assignment: Assignment,
    supervisor: Supervisor,
    capacity: int,
    forwarder: Forwarder,
    ingest: str,
    moves: Iterable[Mapping[str, Any]],
) -> dict[str, Any]:
    """The reply (source URIs with their passwords redacted)."""
    from streamer.sources.uri import redact_uri  # streamer.sources imports numpy: the driver stays light

    a, sup = assignment, supervisor
    return {
        "streams": a.running(),
        "engine": sup.engine,
        "classes": sup.classes,
        "engine_version": sup.engines.current.version,
        "capacity": capacity,
        "endpoint": forwarder.publish_endpoint,
        "ingest": ingest,
        "workers": [w.describe(capacity, a.load(w.id), a.streams_of(w.id)) for w in sup.workers.values()],
        "sources": {
            s.stream_id: {
                "uri": redact_uri(s.uri),
                "weight": s.weight,
                "state": str(s.state),
                "worker": s.worker,
                "epoch": s.epoch,
                "reason": s.reason,
            }
            for s in a.sources.values()
        },
        "moves": [dict(m) for m in moves],
        "forwarder": asdict(forwarder.stats),
    }
