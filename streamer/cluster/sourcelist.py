"""The sources file of ``streamer cluster --sources sources.yaml``: stream ids mapped to URIs,
or to a URI with options. Validated with pydantic; errors name the bad key.

```yaml
sources:
  door: rtsp://10.0.0.5/live            # id: URI
  lobby:                                # id: URI with options
    uri: videos/lobby.mp4               # relative paths: from this file's folder
    weight: 2                           # capacity units it takes on a worker (default 1)
```

Every worker must reach every URI (files: the same path on every node).

Example:
    >>> specs = parse_sources({"sources": {"door": "rtsp://h/live", "lobby": {"uri": "/v/l.mp4", "weight": 2}}})
    >>> [(s.stream_id, s.uri, s.weight) for s in specs]
    [('door', 'rtsp://h/live', 1), ('lobby', '/v/l.mp4', 2)]
    >>> parse_sources({"sources": {"bad id": "x.mp4"}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    configs.core.errors.ConfigError: sources file: sources.bad id: a stream id uses letters, digits, ...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from configs.core.errors import ConfigError
from configs.loader import read_yaml, validate
from streamer.net.wire import STREAM_ID_RULE, is_stream_id


class SourceOptions(BaseModel):
    """One source with options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str = Field(min_length=1)
    """File path or URL (rtsp://, http(s)://, /dev/videoN)."""
    weight: int = Field(1, ge=1)
    """Capacity units the source takes on its worker (a 4K camera may count as 2)."""


class SourcesFile(BaseModel):
    """The whole file: ``sources`` maps stream ids to a URI or to ``{uri, weight}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: dict[str, SourceOptions] = {}
    """Stream id -> source."""

    @field_validator("sources", mode="before")
    @classmethod
    def _uri_alone(cls, v: Any) -> Any:
        """``id: URI`` is short for ``id: {uri: URI}``."""
        if isinstance(v, dict):
            return {k: {"uri": item} if isinstance(item, str) else item for k, item in v.items()}
        return v


@dataclass(frozen=True)
class ClusterSource:
    """A source of the cluster: its id, URI and weight."""

    stream_id: str
    uri: str
    weight: int = 1


def _resolve(uri: str, base: Path | None) -> str:
    if base is None or "://" in uri or uri.startswith("/") or uri.startswith("~"):
        return str(Path(uri).expanduser()) if uri.startswith("~") else uri
    return str((base / uri).resolve())


def parse_sources(data: Any, base: Path | None = None, origin: str = "sources file") -> list[ClusterSource]:
    """Sources from a parsed mapping; relative file paths resolve against ``base``."""
    model = validate(SourcesFile, data, origin)
    out = []
    for sid, item in model.sources.items():
        if not is_stream_id(sid):
            raise ConfigError(f"{origin}: sources.{sid}: a stream id uses {STREAM_ID_RULE}")
        out.append(ClusterSource(sid, _resolve(item.uri, base), item.weight))
    return out


def load_sources(path: str | Path) -> list[ClusterSource]:
    """The sources of a YAML file (ConfigError naming the file and the bad key)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"sources file {str(p)!r} not found")
    return parse_sources(read_yaml(p), p.resolve().parent, str(p))
