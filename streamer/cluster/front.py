"""What the cluster's driver serves, assembled as one process's outlets are
(``streamer.service.outlets.Outlets``: one ZeroMQ context, the CurveZMQ security its
authenticator enforces, the state board): the forwarder in place of a publisher (workers
connect to its ingest endpoint, subscribers to its publish endpoint, both CurveZMQ servers
with keys), the snapshot endpoint, and the control endpoint once the driver can answer
(``serve_control``), and the live view (``serve_web``, ``web.listen``). No Ray here.

Example (plain text: binds ports)::

    front = ClusterOutlets(settings)     # forwarder + snapshot endpoint, secured alike
    front.serve_control(ClusterController(driver))
    front.serve_web(driver.status)       # web.listen: the live view of every worker's streams
    ...
    front.close()                        # endpoints, forwarder, then the context
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zmq

from configs import Settings
from configs.core.errors import ConfigError
from streamer.cluster.forwarder import Forwarder
from streamer.cluster.numbering import TopicSeqs
from streamer.service.outlets import Outlets

if TYPE_CHECKING:
    from streamer.web import LiveView


class ClusterOutlets(Outlets):
    """The driver's sockets, state board, forwarder and request endpoints."""

    def __init__(self, settings: Settings, seqs: TopicSeqs | None = None) -> None:
        super().__init__(settings)
        pub, ingest = settings.publisher, settings.cluster.ingest_endpoint
        try:
            try:
                self.forwarder = Forwarder(
                    ingest, pub.endpoint, self.sockets, observer=self.observe, sndhwm=pub.sndhwm, seqs=seqs
                )
            except zmq.ZMQError as e:
                where = f"publisher.endpoint {pub.endpoint} / cluster.ingest_endpoint"
                raise ConfigError(f"{where}: cannot bind ({e})") from e
            self.on_close(self.forwarder.close)
            self.serve_snapshot()
            self.feed = None
            if settings.web.listen:  # aiohttp and OpenCV load only when the page is on
                from streamer.web import watch

                self.feed = watch(self, settings)
            self.web: LiveView | None = None
        except BaseException:
            self.close()
            raise

    def serve_web(self, status: Callable[[], dict[str, Any]]) -> None:
        """The live view (``web.listen``; nothing when it is off): every stream of every worker,
        with the worker and epoch ``status()`` (the driver's status reply) names."""
        if self.feed is not None:
            from streamer.web import serve_cluster_view

            self.web = serve_cluster_view(self.settings, self, self.feed, status)
