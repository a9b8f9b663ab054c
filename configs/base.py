"""What every settings section is made of: a strict, immutable pydantic model whose
attribute docstrings are its field descriptions, and the marker for settings that hold paths.

Example:
    >>> from configs.streamer import SchedulerSettings
    >>> SchedulerSettings.model_fields["max_batch"].description
    'Most crops sent to the engine in one tick (across all streams).'
    >>> SchedulerSettings().replace(max_hz=4).max_hz
    4.0
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict

PATH_PREFIXES = ("/", "~", "./", "../")


@dataclass(frozen=True)
class ConfigPath:
    """Marks a string setting as a path, for the one path resolver (``configs.loader``).

    A plain path setting (``suffixes`` None) is always a path. A name-or-path setting (a head
    is ``expclip-l14`` or a file) is a path when its value starts with ``/``, ``~``, ``./`` or
    ``../``, or ends with one of ``suffixes``; anything else is a name. Relative paths in a
    config file are taken relative to that file's folder; in ``--set`` overrides and in
    mappings passed by code, relative to the working directory.
    """

    suffixes: tuple[str, ...] | None = None

    def is_path(self, value: str) -> bool:
        if self.suffixes is None:
            return True
        return value.startswith(PATH_PREFIXES) or value.lower().endswith(self.suffixes)

    def resolve(self, value: Any, base_dir: Path) -> Any:
        """``value`` made absolute against ``base_dir`` when it is a relative path."""
        if not isinstance(value, str) or not value or not self.is_path(value):
            return value
        try:
            p = Path(value).expanduser()
            return value if p.is_absolute() else str((base_dir / p).resolve())
        except (ValueError, RuntimeError, OSError) as e:  # a NUL byte, "~nosuchuser", a loop of links
            raise ValueError(f"not a usable path ({e})") from e


class StrictSettings(BaseModel):
    """Base of every settings section: unknown keys are errors, values are immutable, and each
    field's docstring is its description (the generated reference uses it)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, use_attribute_docstrings=True)

    def replace(self, **changes: Any) -> Self:
        """A validated copy with top-level fields replaced (``model_copy`` does not validate)."""
        return type(self).model_validate({**self.model_dump(), **changes})


def check_device(value: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    if value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit()):
        return value
    raise ValueError("allowed: auto, cpu, cuda, cuda:N")


Device = Annotated[str, AfterValidator(check_device)]
"""A torch device setting: ``auto`` (cuda when available), ``cpu``, ``cuda`` or ``cuda:N``."""


def path_marker(field: Any) -> ConfigPath | None:
    """The ``ConfigPath`` a pydantic field carries, if any."""
    return next((m for m in field.metadata if isinstance(m, ConfigPath)), None)
