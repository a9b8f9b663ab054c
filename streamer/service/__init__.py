"""The running service around the pipeline: its one assembly (``assembly.Service``, built on
``outlets.Outlets``: one ZeroMQ context, its security, the publisher, the endpoints), the
control requests that change it while it runs (``requests.py`` checks them, ``control.py``
applies them) and its Prometheus metrics and health (``metrics.py``, served over HTTP by
``http.py``, which serves the live view of ``streamer.web`` too).

``from streamer.service import Service`` loads the pipeline (and torch) only when asked for:
the cluster driver imports ``outlets`` and ``requests`` and stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamer.service.assembly import Service

__all__ = ["Service"]


def __getattr__(name: str) -> object:
    if name == "Service":
        from streamer.service.assembly import Service

        return Service
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
