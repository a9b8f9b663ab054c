"""The control endpoint (``control.endpoint``, off by default): JSON requests that change a
running service without a restart. A request that fails validation, or whose new engine
cannot be built, gets ``{"ok": false, "error": ...}`` and changes nothing.

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
from pathlib import Path
from typing import Any

from configs.base import ConfigPath
from configs.core.errors import ConfigError
from configs.engine import HEAD_FILES, PromptSettings
from configs.loader import validate
from streamer.net.endpoints import OpHandler
from streamer.net.wire import check_stream_id
from streamer.pipeline import Pipeline, StreamSpec

log = logging.getLogger(__name__)


class Controller(OpHandler):
    """Turns control requests into calls on a running ``Pipeline``."""

    OPS = ("status", "set_prompts", "set_head", "add_source", "remove_source")

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def status(self, req: dict[str, Any]) -> dict[str, Any]:
        eng = self.pipeline.engine
        return {"streams": self.pipeline.running_streams(), "engine": eng.fingerprint, "classes": eng.classes}

    def _change(self, **changes: Any) -> dict[str, Any]:
        settings = self.pipeline.engine.settings
        try:
            new = settings.replace(**changes)
        except ValueError as e:
            raise ConfigError(f"invalid engine settings: {e}") from e
        change = self.pipeline.change_engine(new)
        log.info("control: engine now %s with %d classes", change.fingerprint, len(change.classes))
        return {"engine": change.fingerprint, "classes": change.classes}

    def set_prompts(self, req: dict[str, Any]) -> dict[str, Any]:
        prompts = validate(PromptSettings, req.get("prompts"), "prompts")
        return self._change(prompts=prompts.model_dump())

    def set_head(self, req: dict[str, Any]) -> dict[str, Any]:
        head = req.get("head")
        if not isinstance(head, str) or not head:
            raise ConfigError("head: expected a released head name, a file path or 'none'")
        return self._change(head=ConfigPath(HEAD_FILES).resolve(head, Path.cwd()))

    def add_source(self, req: dict[str, Any]) -> dict[str, Any]:
        sid, uri = req.get("id"), req.get("uri")
        if not isinstance(sid, str) or not sid or not isinstance(uri, str) or not uri:
            raise ConfigError("add_source needs a non-empty 'id' and 'uri'")
        self.pipeline.add_source(StreamSpec(check_stream_id(sid), uri))
        return {"streams": self.pipeline.running_streams()}

    def remove_source(self, req: dict[str, Any]) -> dict[str, Any]:
        sid = req.get("id")
        if not isinstance(sid, str):
            raise ConfigError("remove_source needs the stream 'id'")
        self.pipeline.remove_source(sid)
        return {"removing": sid}
