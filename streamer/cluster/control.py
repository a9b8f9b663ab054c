"""The driver's control endpoint: the same requests as one process's (``streamer.service.control``),
for the whole cluster.

- ``{"op": "status"}``: ``streams``, ``engine``, ``classes`` as one process, plus
  ``engine_version``, ``workers`` (state, node, pid, streams, load, engine version),
  ``sources`` (state, worker, epoch), ``moves`` and the forwarder's counters.
- ``{"op": "add_source", "id": ..., "uri": ..., "weight": 1}``: placed on the least-filled
  worker with room, and answered as one process answers: once the worker's instance opened
  (``"state": "running"``) or failed (``ok: false``, ``add_source ID: the source failed:
  <reason>``: a missing file, a bad URI), waiting at most ``sources.open_timeout_s`` + 5 s
  (then ``"starting"`` or ``"reconnecting"``); ``"state": "pending"`` at once when no worker
  has room (it starts when one has). The wait runs on a thread of its own
  (``streamer.net.endpoints.Later``): the endpoint answers other requests meanwhile, and the
  driver's lock is not held (``streamer.cluster.adding``).
- ``{"op": "remove_source", "id": ...}``: its worker stops it (``ended``, reason ``removed``).
- ``{"op": "rebalance"}`` (the cluster's only own request): move streams, one at a time, until
  the workers' loads are even within ``cluster.rebalance_tolerance``; the reply lists the
  moves planned (``streamer cluster rebalance``).
- ``{"op": "set_prompts", ...}``, ``{"op": "set_head", ...}``: checked here (a head file's
  path made absolute: every node must find it there), then the next version of the
  cluster's engine (``streamer.cluster.engines``): tried on one worker (a refusal there
  changes nothing), committed (new workers and every assignment, moves included, start on
  it), applied on every other worker (one that cannot follow is retired: its streams move);
  the reply (``engine``, ``classes``, ``engine_version``, ``workers_failed``, ``seq``: per
  topic the forwarder's last message before the new engine's floor) comes once every
  worker runs it, and from then on no faces message of the old engine reaches a subscriber;
  per stream the engine never goes back. The change runs on a thread of its own (``Later``):
  other requests are answered meanwhile; a second change waits for the first.

Every request is checked by ``streamer.service.requests``, as one process's are: both
controllers accept and refuse the same requests with the same words.

Example (plain text: needs a running cluster)::

    from streamer.net.endpoints import request
    request("tcp://127.0.0.1:5558", {"op": "add_source", "id": "cam9", "uri": "rtsp://10.0.0.9/live"})
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from configs.core.errors import ConfigError
from configs.engine import EngineSettings
from streamer.net.endpoints import Later
from streamer.service.requests import AddSource, ControlHandler, EngineRequest, RemoveSource, new_engine

log = logging.getLogger(__name__)


class Cluster(Protocol):
    """What the controller needs of the driver (``streamer.cluster.driver.ClusterDriver``)."""

    @property
    def engine_settings(self) -> EngineSettings:
        """The workers' engine settings now (an engine change starts from them)."""
        ...

    def status(self) -> dict[str, Any]:
        """The status reply: streams, engine, classes, workers, sources, moves, forwarder."""
        ...

    def add_source(self, stream_id: str, uri: str, weight: int) -> dict[str, Any] | Later:
        """Place the source: the reply, or ``Later`` the wait until it opened or failed."""
        ...

    def remove_source(self, stream_id: str) -> dict[str, Any]: ...

    def rebalance(self) -> dict[str, Any]:
        """Even the workers' loads now; the moves planned."""
        ...

    def change_engine(self, body: dict[str, Any], engine: EngineSettings) -> dict[str, Any]:
        """Send ``body`` (a checked engine request) to every worker; ``engine`` for new ones."""
        ...


class ClusterController(ControlHandler):
    """Turns control requests (checked by ``streamer.service.requests``, as one process's are)
    into calls on the driver."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._changes = threading.Lock()

    def __call__(self, req: dict[str, Any]) -> dict[str, Any]:
        if isinstance(req, dict) and req.get("op") == "rebalance":  # the cluster's own request
            if set(req) != {"op"}:
                raise ConfigError(f"rebalance takes no argument (got {', '.join(sorted(set(req) - {'op'}))})")
            return self.cluster.rebalance()
        return super().__call__(req)

    def status(self) -> dict[str, Any]:
        return self.cluster.status()

    def change_engine(self, req: EngineRequest) -> Later:  # type: ignore[override]
        """Checked now; rolled out on a thread of its own (the endpoint answers meanwhile),
        one change after the other, each made from the settings the previous one left."""
        new_engine(self.cluster.engine_settings, req)  # refused now, with the same words

        def change() -> dict[str, Any]:
            with self._changes:
                return self.cluster.change_engine(req.body(), new_engine(self.cluster.engine_settings, req))

        return Later(change)

    def add_source(self, req: AddSource) -> dict[str, Any] | Later:  # type: ignore[override]
        return self.cluster.add_source(req.stream_id, req.uri, req.weight)

    def remove_source(self, req: RemoveSource) -> dict[str, Any]:
        return self.cluster.remove_source(req.stream_id)
