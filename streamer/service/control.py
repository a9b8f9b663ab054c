"""The control endpoint (``control.endpoint``, off by default): JSON requests that change a
running service without a restart. A request that fails validation, or whose new engine
cannot be built, gets ``{"ok": false, "error": ...}`` and changes nothing. Requests are
checked by ``streamer.service.requests`` (the cluster's controller checks them there too).

| request | effect |
|---|---|
| ``{"op": "status"}`` | running streams, engine fingerprint and classes |
| ``{"op": "set_prompts", "prompts": {...}}`` | new classes / prompts (an ``engine.prompts`` section) |
| ``{"op": "set_head", "head": "..."}`` | a new head (released name, file, ``none``) |
| ``{"op": "add_source", "id": "cam3", "uri": "rtsp://..."}`` | start a stream (answered once it opened or failed) |
| ``{"op": "remove_source", "id": "cam3"}`` | stop a stream (it ends with reason ``removed``) |

``add_source`` is answered once the source opened (``"state": "running"``) or failed
(``{"ok": false, "error": "add_source cam3: the source failed: <reason>"}``), waiting at most
``sources.open_timeout_s`` + 5 s (then ``"state"`` is ``"starting"`` or ``"reconnecting"``).
A new engine is built off the hot path (sharing the frozen CLIP), swapped in between two
engine batches, and every stream gets an ``engine changed`` event; the reply comes once every
later message carries the new fingerprint and classes.

Example (plain text: needs a running service)::

    from streamer.net.endpoints import request
    request("tcp://127.0.0.1:5558", {"op": "set_prompts", "prompts": {"custom": {"calm": ["a calm face."]}}})
"""

from __future__ import annotations

import logging
import time
from typing import Any

from configs.core.errors import SourceError
from streamer.pipeline import Pipeline, StreamSpec
from streamer.service.requests import AddSource, ControlHandler, EngineRequest, RemoveSource, new_engine

log = logging.getLogger(__name__)
OPEN_MARGIN_S = 5.0
"""How much longer than ``sources.open_timeout_s`` an ``add_source`` answer waits for the
source to open or fail."""
POLL_S = 0.02


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
        """Start the stream, then answer once its source has opened or failed (at most
        ``sources.open_timeout_s`` + ``OPEN_MARGIN_S``): a source that failed is refused with
        its reason (it stays in /metrics as failed until added again); one still connecting
        is answered with its state ("reconnecting", or "starting" when the wait ran out)."""
        self.pipeline.add_source(StreamSpec(req.stream_id, req.uri))
        wait_s = self.pipeline.settings.sources.open_timeout_s + OPEN_MARGIN_S
        state, reason = self.opened(req.stream_id, time.monotonic() + wait_s)
        if state == "failed":
            raise SourceError(f"add_source {req.stream_id}: the source failed: {reason}")
        return {"stream": req.stream_id, "state": state, "streams": self.pipeline.running_streams()}

    def opened(self, stream_id: str, deadline: float) -> tuple[str, str | None]:
        """Wait until ``stream_id`` opened (``running``), failed (``failed``, its reason) or is
        reconnecting, or ``deadline`` (monotonic) passed (``starting``). A cluster worker asks
        it for the instance it started (``StreamWorker.opened``)."""
        while True:
            st = self.pipeline.stats.streams.get(stream_id)
            if st is not None and st.outcome is not None:
                return st.outcome, st.reason
            if st is not None and st.started:
                return "running", None
            if st is not None and st.last_event == "reconnecting":
                return "reconnecting", None
            if time.monotonic() >= deadline:
                return "starting", None
            time.sleep(POLL_S)

    def remove_source(self, req: RemoveSource) -> dict[str, Any]:
        self.pipeline.remove_source(req.stream_id)
        return {"removing": req.stream_id}
