"""ExpStream's configuration: the settings schema of every section, the one loader every
command uses, and the packaged files (YAML configs, tiny model configs, reference prompts).

``configs.path("offline.yaml")`` returns the on-disk path of a packaged file, so code and
tests find them whether ExpStream runs from a checkout or an installed wheel.

Example:
    >>> from configs import load_settings
    >>> load_settings("offline").engine.head
    'random'
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def path(name: str) -> Path:
    """Return the path of a file shipped in ``configs/`` (e.g. ``"prompts/expclip_prompts.yaml"``)."""
    p = Path(str(resources.files(__name__).joinpath(name)))
    if not p.exists():
        raise FileNotFoundError(f"no packaged config file {name!r} (looked at {p})")
    return p


__all__ = ["Settings", "dump_settings", "load_settings", "path"]


def __getattr__(name: str) -> object:
    # Imported on first use: the ground floor (``configs.core``) stays free of pydantic.
    if name in ("Settings", "dump_settings", "load_settings"):
        # on first use: configs.core stays free of pydantic
        from configs import settings

        return getattr(settings, name)
    raise AttributeError(f"module 'configs' has no attribute {name!r}")
