"""The driver's control endpoint: the same requests as one process's (``streamer.service.control``),
for the whole cluster.

- ``{"op": "status"}``: ``streams``, ``engine``, ``classes`` as one process, plus ``workers``
  (state, node, pid, streams, load), ``sources`` (state, worker, epoch), ``moves`` and the
  forwarder's counters.
- ``{"op": "add_source", "id": ..., "uri": ..., "weight": 1}``: placed on the least-filled
  worker with room (or pending until one has room).
- ``{"op": "remove_source", "id": ...}``: its worker stops it (``ended``, reason ``removed``).
- ``{"op": "set_prompts", ...}``, ``{"op": "set_head", ...}``: checked here, tried on one
  worker (a failure there changes nothing), then applied on every other worker; a worker
  that cannot follow is retired (its streams move), and new workers start with the change.

Example (plain text: needs a running cluster)::

    from streamer.net.endpoints import request
    request("tcp://127.0.0.1:5558", {"op": "add_source", "id": "cam9", "uri": "rtsp://10.0.0.9/live"})
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from configs.core.errors import ConfigError, ExpStreamError
from configs.engine import EngineSettings, PromptSettings
from configs.loader import validate
from streamer.cluster.workers import error_text
from streamer.net.endpoints import OpHandler
from streamer.net.wire import check_stream_id

if TYPE_CHECKING:
    from streamer.cluster.driver import ClusterDriver

log = logging.getLogger(__name__)

CHANGE_TIMEOUT_S = 300.0
"""How long one worker may take to build and swap in a new engine."""


class ClusterController(OpHandler):
    """Turns control requests into calls on the driver (and, for engine changes, on every worker)."""

    OPS = ("status", "set_prompts", "set_head", "add_source", "remove_source")

    def __init__(self, driver: ClusterDriver) -> None:
        self.driver = driver

    def status(self, req: dict[str, Any]) -> dict[str, Any]:
        """The one process's ``streams``, ``engine``, ``classes``, and the cluster's workers,
        sources, moves and forwarder counters."""
        from streamer.sources.uri import redact_uri

        d = self.driver
        with d.lock:
            a, fwd, placement = d.assignment, d.forwarder, d.placement
            assert fwd is not None and placement is not None
            return {
                "streams": d.running(),
                "engine": d.engine,
                "classes": d.classes,
                "capacity": d.capacity,
                "endpoint": fwd.publish_endpoint,
                "ingest": d.ingest,
                "workers": [w.describe(d.capacity, a.load(w.id), a.streams_of(w.id)) for w in d.workers.values()],
                "sources": {
                    s.stream_id: {
                        "uri": redact_uri(s.uri),
                        "weight": s.weight,
                        "state": s.state,
                        "worker": s.worker,
                        "epoch": s.epoch,
                        "reason": s.reason,
                    }
                    for s in a.sources.values()
                },
                "moves": [dict(m) for m in placement.moves],
                "forwarder": asdict(fwd.stats),
            }

    def add_source(self, req: dict[str, Any]) -> dict[str, Any]:
        sid, uri, weight = req.get("id"), req.get("uri"), req.get("weight", 1)
        if not isinstance(sid, str) or not sid or not isinstance(uri, str) or not uri:
            raise ConfigError("add_source needs a non-empty 'id' and 'uri'")
        if not isinstance(weight, int) or isinstance(weight, bool) or weight < 1:
            raise ConfigError(f"weight: got {weight!r}; a whole number >= 1")
        return self.driver.add_source(check_stream_id(sid), uri, weight)

    def remove_source(self, req: dict[str, Any]) -> dict[str, Any]:
        sid = req.get("id")
        if not isinstance(sid, str):
            raise ConfigError("remove_source needs the stream 'id'")
        return self.driver.remove_source(sid)

    def set_prompts(self, req: dict[str, Any]) -> dict[str, Any]:
        prompts = validate(PromptSettings, req.get("prompts"), "prompts")
        return self._change({"op": "set_prompts", "prompts": req.get("prompts")}, prompts=prompts.model_dump())

    def set_head(self, req: dict[str, Any]) -> dict[str, Any]:
        head = req.get("head")
        if not isinstance(head, str) or not head:
            raise ConfigError("head: expected a released head name, a file path or 'none'")
        if Path(head).suffix in (".pth", ".pt", ".safetensors"):
            head = str(Path(head).expanduser().resolve())  # every node must have it at this path
        return self._change({"op": "set_head", "head": head}, head=head)

    def _change(self, req: dict[str, Any], **changes: Any) -> dict[str, Any]:
        import ray

        settings = self.driver.settings
        try:
            engine: EngineSettings = settings.engine.replace(**changes)
        except ValueError as e:
            raise ConfigError(f"invalid engine settings: {e}") from e
        workers = self.driver.ready_workers()
        if not workers:
            raise ConfigError("no worker is ready to change its engine")
        try:
            first = ray.get(workers[0].actor.control.remote(req), timeout=CHANGE_TIMEOUT_S)
        except ExpStreamError as e:  # the worker refused: nothing changed anywhere
            raise ConfigError(error_text(e)) from e
        except ray.exceptions.RayError as e:
            raise ConfigError(f"worker {workers[0].id}: {error_text(e)}") from e
        refs = {w.id: w.actor.control.remote(req) for w in workers[1:]}
        failed: dict[str, str] = {}
        for wid, ref in refs.items():
            try:
                got = ray.get(ref, timeout=CHANGE_TIMEOUT_S)
                if got.get("engine") != first.get("engine"):
                    failed[wid] = f"engine {got.get('engine')} instead of {first.get('engine')}"
            except (ExpStreamError, ray.exceptions.RayError) as e:
                failed[wid] = error_text(e)
        self.driver.engine_changed(settings.replace(engine=engine), failed)
        log.info("cluster: engine now %s on %d worker(s)", first.get("engine"), len(workers) - len(failed))
        return {"engine": first.get("engine"), "classes": first.get("classes"), "workers_failed": failed}
