"""Control requests, checked in one place for every controller: ``parse_request`` turns a
request (a JSON object) into a typed value or raises ConfigError saying what is wrong, and
``ControlHandler`` hands each typed value to its controller's method. The single-process
controller (``streamer.service.control``) and the cluster's (``streamer.cluster.control``)
both are ``ControlHandler``s, so they accept and refuse the same requests with the same words.

What is checked: the op; a ``prompts`` object that is there and not empty (``null`` would
silently reset the defaults); stream ids (letters, digits, ``_``, ``.``, ``-``, at most 64, the
whole string); ``uri`` and ``weight``; prompts against the ``engine.prompts`` schema, their
relative paths made absolute; a head: a released name, ``none``, ``random``, or a ``.pth``,
``.pt`` or ``.safetensors`` file (any case) that is not a directory, made absolute against
the working directory (``./``, ``../``, ``~``), since every cluster node must find it there.

Example:
    >>> parse_request({"op": "add_source", "id": "cam3", "uri": "rtsp://h/live"})
    AddSource(stream_id='cam3', uri='rtsp://h/live', weight=1)
    >>> parse_request({"op": "set_head", "head": "expclip-l14"})
    SetHead(head='expclip-l14')
    >>> parse_request({"op": "set_head", "head": "~/heads/mine.PTH"}).head.startswith("/")
    True
    >>> parse_request({"op": "set_head", "head": "heads/mine.pkl"})
    Traceback (most recent call last):
    ...
    configs.core.errors.ConfigError: head: 'heads/mine.pkl' is not a head file (.pth, .pt or .safetensors)
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from configs.core.errors import ConfigError
from configs.engine import HEAD_FILES, EngineSettings, PromptSettings
from configs.loader import resolve_paths, validate
from streamer.net.wire import check_stream_id

OPS = ("status", "set_prompts", "set_head", "add_source", "remove_source")
PROMPTS_NEEDED = (
    "set_prompts needs a non-empty 'prompts' object (an engine.prompts section: set, classes, templates, custom); "
    "to go back to the defaults, send them"
)
HEAD_NAME = re.compile(r"[A-Za-z0-9_-]+")
"""A released head's name, ``none`` or ``random`` (the engine knows which exist)."""


@dataclass(frozen=True)
class Status:
    """``{"op": "status"}``."""


@dataclass(frozen=True)
class SetPrompts:
    """``{"op": "set_prompts", "prompts": {...}}``: an ``engine.prompts`` section."""

    prompts: PromptSettings

    def changes(self) -> dict[str, Any]:
        return {"prompts": self.prompts.model_dump()}

    def body(self) -> dict[str, Any]:
        """The request as checked here (what a cluster's workers are sent)."""
        return {"op": "set_prompts", "prompts": self.prompts.model_dump(mode="json")}


@dataclass(frozen=True)
class SetHead:
    """``{"op": "set_head", "head": "..."}``: a released name, ``none``, ``random``, or an
    absolute path to a head file."""

    head: str

    def changes(self) -> dict[str, Any]:
        return {"head": self.head}

    def body(self) -> dict[str, Any]:
        return {"op": "set_head", "head": self.head}


EngineRequest = SetPrompts | SetHead


@dataclass(frozen=True)
class AddSource:
    """``{"op": "add_source", "id": ..., "uri": ..., "weight": 1}`` (``weight``: capacity
    units on a cluster worker; one process has no use for it)."""

    stream_id: str
    uri: str
    weight: int = 1


@dataclass(frozen=True)
class RemoveSource:
    """``{"op": "remove_source", "id": ...}``."""

    stream_id: str


ControlRequest = Status | SetPrompts | SetHead | AddSource | RemoveSource


def parse_request(req: dict[str, Any]) -> ControlRequest:
    """The typed request; ConfigError naming the bad field and what is allowed."""
    op = req.get("op")
    if op == "status":
        return Status()
    if op == "set_prompts":
        if req.get("prompts") in (None, {}):  # would silently put back the defaults
            raise ConfigError(f"prompts: got {req.get('prompts')!r}; {PROMPTS_NEEDED}")
        raw = resolve_paths(req["prompts"], PromptSettings, Path.cwd())
        return SetPrompts(validate(PromptSettings, raw, "prompts"))
    if op == "set_head":
        return SetHead(_head(req.get("head")))
    if op == "add_source":
        sid, uri, weight = req.get("id"), req.get("uri"), req.get("weight", 1)
        if not isinstance(sid, str) or not sid or not isinstance(uri, str) or not uri:
            raise ConfigError("add_source needs a non-empty 'id' and 'uri'")
        if not isinstance(weight, int) or isinstance(weight, bool) or weight < 1:
            raise ConfigError(f"weight: got {weight!r}; a whole number >= 1")
        return AddSource(check_stream_id(sid), uri, weight)
    if op == "remove_source":
        sid = req.get("id")
        if not isinstance(sid, str) or not sid:
            raise ConfigError("remove_source needs the stream 'id'")
        return RemoveSource(check_stream_id(sid))
    raise ConfigError(f"op: got {op!r}; allowed: {', '.join(OPS)}")


def _head(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError("head: expected a released head name, a file path or 'none'")
    if HEAD_NAME.fullmatch(value):
        return value
    if not value.lower().endswith(HEAD_FILES):
        raise ConfigError(f"head: {value!r} is not a head file ({', '.join(HEAD_FILES[:-1])} or {HEAD_FILES[-1]})")
    try:
        path = Path(value).expanduser()
        path = path if path.is_absolute() else (Path.cwd() / path).resolve()
    except (ValueError, RuntimeError, OSError) as e:  # a NUL byte, "~nosuchuser", a loop of links
        raise ConfigError(f"head: {value!r} is not a usable path ({e})") from e
    if path.is_dir():
        raise ConfigError(f"head: {value!r} is a directory; give the head file in it")
    return str(path)


def new_engine(current: EngineSettings, req: EngineRequest) -> EngineSettings:
    """``current`` with the request's change (ConfigError when the result is invalid)."""
    try:
        return current.replace(**req.changes())
    except ValueError as e:
        raise ConfigError(f"invalid engine settings: {e}") from e


class ControlHandler(ABC):
    """A control endpoint's handler (``streamer.net.endpoints.RequestServer``): every request
    is parsed by ``parse_request``, then handed to the method for its op."""

    def __call__(self, req: dict[str, Any]) -> dict[str, Any]:
        parsed = parse_request(req)
        if isinstance(parsed, Status):
            return self.status()
        if isinstance(parsed, SetPrompts | SetHead):
            return self.change_engine(parsed)
        if isinstance(parsed, AddSource):
            return self.add_source(parsed)
        return self.remove_source(parsed)

    @abstractmethod
    def status(self) -> dict[str, Any]:
        """Running streams, engine fingerprint and classes (and whatever else there is)."""

    @abstractmethod
    def change_engine(self, req: EngineRequest) -> dict[str, Any]:
        """New prompts or head: the new fingerprint and classes."""

    @abstractmethod
    def add_source(self, req: AddSource) -> dict[str, Any]:
        """Start a stream."""

    @abstractmethod
    def remove_source(self, req: RemoveSource) -> dict[str, Any]:
        """Stop a stream (it ends with reason ``removed``)."""
