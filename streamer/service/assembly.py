"""``Service``: one running ExpStream process, assembled in one place whatever starts it
(``streamer run``, a cluster worker, a Python program).

It builds, in this order: the process's one ZeroMQ context and CurveZMQ security, the
state board (``Outlets``), the metrics server (``metrics.enabled``), the publisher, the
snapshot endpoint, the pipeline (which loads the engine), the live view (``web.listen``:
``streamer.web``), the controller and the control endpoint; ``close`` undoes it in the
reverse order, after the pipeline has stopped. A service with ``control.endpoint`` keeps
running when no stream is left (sources can be added), until ``stop`` is set.

Example (plain text: loads an engine and binds ports)::

    import threading

    from configs import load_settings
    from streamer.pipeline import StreamSpec
    from streamer.service import Service

    settings = load_settings("offline", ["publisher.endpoint=tcp://127.0.0.1:5556"])
    with Service(settings, [StreamSpec("cam0", "lobby.mp4")]) as svc:
        snapshot = svc.run(threading.Event())   # until every stream ends (or stop is set)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from configs import Settings
from streamer.base import Publisher
from streamer.output.state import StateBoard
from streamer.pipeline import Pipeline, StreamSpec
from streamer.pipeline.stats import StatsSnapshot
from streamer.service.control import Controller
from streamer.service.outlets import Outlets
from streamer.sources import redact_uri

log = logging.getLogger("streamer")


class Service:
    """Sockets, publisher, endpoints, pipeline and controller of one process.

    Args:
        settings: the whole configuration.
        specs: the streams to start with.
        keep_alive: run on with no stream left (default: when ``control.endpoint`` is set).
        client: the publisher connects to ``publisher.endpoint`` as a CurveZMQ client
            (``security.client_secret_key``), as a cluster worker does to its driver.
        wrap: a layer around the publisher (a cluster worker's ``FencedPublisher``);
            ``publisher`` is the wrapped one.
    """

    def __init__(
        self,
        settings: Settings,
        specs: Sequence[StreamSpec] = (),
        *,
        keep_alive: bool | None = None,
        client: bool = False,
        wrap: Callable[[Publisher], Publisher] | None = None,
    ) -> None:
        self.settings = settings
        self.outlets = Outlets(settings)
        try:
            self.metrics = None
            if settings.metrics.enabled:
                from streamer.service.metrics import MetricsServer

                self.metrics = MetricsServer(settings.metrics)
                self.outlets.on_close(self.metrics.close)
            feed = None
            if settings.web.listen and not client:  # a cluster worker's streams are on its driver's page
                from streamer.web import watch

                feed = watch(self.outlets, settings)
            self.publisher = self.outlets.publish(client=client, wrap=wrap)
            self.outlets.serve_snapshot()
            alive = settings.control.endpoint is not None if keep_alive is None else keep_alive
            self.pipeline = Pipeline(settings, list(specs), self.publisher, keep_alive=alive)
            if self.metrics is not None:
                self.metrics.attach(self.pipeline)
            self.web = None
            if feed is not None:
                from streamer.web import serve_live_view

                self.web = serve_live_view(settings, self.outlets, feed, self.pipeline)
            self.controller = Controller(self.pipeline)
            self.outlets.serve_control(self.controller)
        except BaseException:
            self.outlets.close()
            raise
        log.info(
            "%s (%s) for %s; engine %s%s",
            _where(settings),
            self.outlets.sockets.describe(client),
            ", ".join(f"{s.stream_id}={redact_uri(s.uri)}" for s in specs) or "no stream yet",
            self.pipeline.engine.fingerprint,
            self.outlets.describe(),
        )

    @property
    def board(self) -> StateBoard:
        """What subscribers were told: the snapshot endpoint's answer."""
        return self.outlets.board

    def run(self, stop: threading.Event) -> StatsSnapshot:
        """Run the pipeline until every stream is done (without ``keep_alive``) or ``stop``
        is set; the final counters."""
        return self.pipeline.run(stop)

    def close(self) -> None:
        """Close the endpoints, the publisher (after it sent what is queued), the metrics
        server and the ZeroMQ context. Idempotent."""
        self.outlets.close()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _where(settings: Settings) -> str:
    p = settings.publisher
    if p.kind == "jsonl":
        return f"writing {p.path}"
    return f"publishing on {p.endpoint} ({'bind' if p.bind else 'connect'})"
