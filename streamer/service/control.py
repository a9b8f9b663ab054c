"""The control endpoint (``control.endpoint``, off by default): JSON requests that change a
running service without a restart. A request that fails validation, or whose new engine
cannot be built, gets ``{"ok": false, "error": ...}`` and changes nothing. Requests are
checked by ``streamer.service.requests`` (the cluster's controller checks them there too).

| request | effect |
|---|---|
| ``{"op": "status"}`` | running streams, engine fingerprint and classes |
| ``{"op": "set_prompts", "prompts": {...}}`` | new classes / prompts (an ``engine.prompts`` section) |
| ``{"op": "set_head", "head": "..."}`` | a new head (released name, file, ``none``) |
| ``{"op": "add_source", "id": "cam3", "uri": "rtsp://..."}`` | start a stream |
| ``{"op": "remove_source", "id": "cam3"}`` | stop a stream (it ends with reason ``removed``) |

A new engine is built off the hot path (sharing the frozen CLIP), swapped in between two
engine batches, and every stream gets an ``engine changed`` event; the reply comes once every
later message carries the new fingerprint and classes.

Example (plain text: needs a running service)::

    from streamer.net.endpoints import request
    request("tcp://127.0.0.1:5558", {"op": "set_prompts", "prompts": {"custom": {"calm": ["a calm face."]}}})
"""

from __future__ import annotations

import logging
from typing import Any

from streamer.pipeline import Pipeline, StreamSpec
from streamer.service.requests import AddSource, ControlHandler, EngineRequest, RemoveSource, new_engine

log = logging.getLogger(__name__)


class Controller(ControlHandler):
    """Turns control requests (checked by ``streamer.service.requests``) into calls on a
    running ``Pipeline``."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def status(self) -> dict[str, Any]:
        eng = self.pipeline.engine
        return {"streams": self.pipeline.running_streams(), "engine": eng.fingerprint, "classes": eng.classes}

    def change_engine(self, req: EngineRequest) -> dict[str, Any]:
        change = self.pipeline.change_engine(new_engine(self.pipeline.engine.settings, req))
        log.info("control: engine now %s with %d classes", change.fingerprint, len(change.classes))
        return {"engine": change.fingerprint, "classes": change.classes}

    def add_source(self, req: AddSource) -> dict[str, Any]:
        self.pipeline.add_source(StreamSpec(req.stream_id, req.uri))
        return {"streams": self.pipeline.running_streams()}

    def remove_source(self, req: RemoveSource) -> dict[str, Any]:
        self.pipeline.remove_source(req.stream_id)
        return {"removing": req.stream_id}
