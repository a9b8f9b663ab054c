"""The one way every ExpStream command loads its configuration.

Order: the models' defaults -> the ``-c`` file -> ``--set dotted.key=value`` overrides ->
validation. Relative paths are resolved once, here: those in a file against the file's
folder, those in overrides (and in mappings passed by code) against the working directory;
which settings hold paths is declared on the models (``configs.base.ConfigPath``). A bare
``-c`` name such as ``offline`` names a config shipped in this package. Errors name the
dotted key, the bad value and what is allowed; unknown keys at any level are errors.

Example:
    >>> from configs.settings import Settings
    >>> s = load(Settings, "offline", ["scheduler.max_hz=4"])
    >>> s.scheduler.max_hz, s.engine.model.config_file.endswith("models/ExpStream-Tiny.json")
    (4.0, True)
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from configs.base import path_marker
from configs.core.errors import ConfigError

T = TypeVar("T", bound=BaseModel)

ConfigSource = str | Path | Mapping[str, Any] | None
"""A config file path, a packaged config's name, an already parsed mapping, or None (defaults)."""


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with errors that name the file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({e})") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping, got {type(data).__name__}")
    return data


def config_file(config: str | Path) -> Path:
    """The file ``-c`` names: a path, or a bare name (``offline``, ``default.yaml``) that is
    not a file here and names a config shipped in ``configs/``."""
    p = Path(config).expanduser()
    if p.is_file() or len(p.parts) != 1:
        return p
    packaged = Path(__file__).parent / (p.name if p.suffix else f"{p.name}.yaml")
    return packaged if packaged.is_file() else p


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``"a.b.c=value"`` into its key path and a YAML-parsed value."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip() or any(not k for k in key.strip().split(".")):
        raise ConfigError(f"override {item!r}: expected dotted.key=value")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: value is not valid YAML ({e})") from e
    return key.strip().split("."), parsed


def _section_model(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    field = model.model_fields.get(name)
    ann = getattr(field, "annotation", None)
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def resolve_paths(data: Any, model: type[BaseModel], base_dir: Path, prefix: str = "") -> Any:
    """A copy of ``data`` (a mapping for ``model``) with its relative paths made absolute
    against ``base_dir``; keys the model does not know are left for validation to report."""
    if not isinstance(data, Mapping):
        return data
    out = dict(data)
    for name, value in data.items():
        field = model.model_fields.get(name) if isinstance(name, str) else None
        if field is None:
            continue
        sub = _section_model(model, name)
        if sub is not None:
            out[name] = resolve_paths(value, sub, base_dir, f"{prefix}{name}.")
        elif (marker := path_marker(field)) is not None:
            try:
                out[name] = marker.resolve(value, base_dir)
            except ValueError as e:
                raise ConfigError(f"invalid configuration:\n  {prefix}{name}: got {value!r}; {e}") from e
    return out


def apply_override(data: dict[str, Any], keys: Sequence[str], value: Any, model: type[BaseModel]) -> None:
    """Set ``keys`` to ``value`` in ``data`` (in place); paths in ``value`` resolve against the
    working directory."""
    node, sub = data, model
    for k in keys[:-1]:
        child = node.get(k)
        if child is None:
            child = node[k] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {'.'.join(keys)}: {k!r} is not a section")
        node, sub = child, (_section_model(sub, k) if sub is not None else None)
    if sub is not None:
        prefix = "".join(f"{k}." for k in keys[:-1])
        value = resolve_paths({keys[-1]: value}, sub, Path.cwd(), prefix)[keys[-1]]
    node[keys[-1]] = value


def _describe(err: Mapping[str, Any], model: type[BaseModel]) -> str:
    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc)
    if err["type"] == "extra_forbidden":
        parent: type[BaseModel] | None = model
        for part in loc[:-1]:
            parent = _section_model(parent, part) if parent is not None else None
        known = list(parent.model_fields) if parent is not None else []
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f" (did you mean {'.'.join([*loc[:-1], close[0]])!r}?)" if close else ""
        return f"{key}: unknown key{hint}"
    value = err.get("input")
    msg = err["msg"]
    if err["type"] == "literal_error":
        return f"{key}: got {value!r}; {msg.replace('Input should be', 'allowed:')}"
    if msg.startswith("Value error, "):
        msg = msg.removeprefix("Value error, ")
    return f"{key}: got {value!r}; {msg}"


def validate(model: type[T], data: Any, origin: str = "") -> T:
    """Typed settings from a parsed mapping; ConfigError naming every bad dotted key."""
    try:
        return model.model_validate({} if data is None else data)
    except ValidationError as e:
        where = f" ({origin})" if origin else ""
        lines = [_describe(err, model) for err in e.errors()]
        raise ConfigError(f"invalid configuration{where}:\n  " + "\n  ".join(lines)) from e


def load(model: type[T], config: ConfigSource = None, overrides: Sequence[str] = ()) -> T:
    """Defaults -> ``config`` -> ``overrides`` -> validated ``model``."""
    origin = []
    if config is None:
        data: dict[str, Any] = {}
    elif isinstance(config, Mapping):
        data = resolve_paths(copy.deepcopy(dict(config)), model, Path.cwd())
    else:
        path = config_file(config)
        data = resolve_paths(read_yaml(path), model, path.resolve().parent)
        origin.append(str(path))
    for item in overrides:
        keys, value = parse_override(item)
        apply_override(data, keys, value, model)
    if overrides:
        origin.append("--set overrides")
    return validate(model, data, " and ".join(origin))


def dump(settings: BaseModel) -> str:
    """Settings as YAML (the resolved configuration is logged once at start)."""
    return yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False)
