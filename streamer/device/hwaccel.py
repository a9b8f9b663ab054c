"""PyAV hardware decoding (``sources.hwaccel``): NVDEC through FFmpeg's ``cuda`` device where
the loaded FFmpeg offers it; anything else decodes in software, and says so once in the log.

Decoded frames come back to host memory as ``nv12``, which the device frame path uploads as
planes like any other 4:2:0 picture (``streamer.device.planes``).

Example:
    >>> hwaccel_for("none") is None
    True
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

_warned: set[str] = set()


def _warn_once(key: str, msg: str, *args: Any) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(msg, *args)


def hwaccel_for(name: str) -> Any | None:
    """An ``av.codec.hwaccel.HWAccel`` for ``name`` (``auto`` = cuda), or None for software
    decoding (``none``, or a device type this FFmpeg build does not offer: logged)."""
    if name == "none":
        return None
    try:
        from av.codec.hwaccel import HWAccel, hwdevices_available  # absent from older PyAV builds
    except ImportError:
        _warn_once("pyav", "sources.hwaccel=%s: this PyAV has no hardware decoding; decoding in software", name)
        return None
    kind = "cuda" if name == "auto" else name
    offered = list(hwdevices_available())
    if kind not in offered:
        _warn_once(kind, "sources.hwaccel=%s: FFmpeg offers %s, not %s; decoding in software", name, offered, kind)
        return None
    return HWAccel(kind, allow_software_fallback=True)


def software_fallback(name: str, error: BaseException) -> None:
    """Log (once per device type) that opening with hardware decoding failed."""
    _warn_once(
        f"open:{name}", "sources.hwaccel=%s: cannot open the hardware decoder (%s); decoding in software", name, error
    )
