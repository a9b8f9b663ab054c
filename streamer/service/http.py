"""The service's HTTP: one small runner (``HttpServer``) that serves an aiohttp application
on its own event loop in one daemon thread, and the application behind ``/metrics``,
``/healthz`` and ``/readyz`` (``metrics_app``). The live view (``streamer.web``) is served
by the same runner on its own port.

Why aiohttp rather than a thread per connection: every connection is a coroutine on one
loop, so 300 concurrent scrapes cost no threads; the listen backlog is ``BACKLOG``; a
connection that sends no complete request (idle keep-alive, or a slowloris trickling
headers) is closed ``KEEPALIVE_TIMEOUT_S`` after it opened or after its last response; work
that may take a while (building the Prometheus text) runs in a bounded pool of
``POOL_THREADS`` threads.

Example (plain text: binds a port)::

    server = HttpServer(metrics_app(registry, readiness), "127.0.0.1", 0, name="metrics",
                        what="metrics.host/metrics.port")
    print(server.url)      # http://127.0.0.1:PORT
    server.close()
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from configs.core.errors import ConfigError

log = logging.getLogger(__name__)

BACKLOG = 1024
"""Connections the kernel queues before the loop accepts them."""
KEEPALIVE_TIMEOUT_S = 10.0
"""A connection without a complete request this long after it opened (or after its last
response) is closed: idle keep-alive clients and slowloris alike."""
POOL_THREADS = 2
"""Threads for blocking work of the handlers (one scrape builds its text on one of them)."""
START_TIMEOUT_S = 60.0
"""How long a start may take before it is an error (binding is immediate; a busy machine is not)."""


class HttpServer:
    """``app`` served on ``host:port`` (0: any free port; ``port`` says which) until ``close``.

    Args:
        app: the aiohttp application.
        host, port: where to listen (IPv6 without brackets).
        name: names the thread and the log lines.
        what: the settings keys of the address, for the error when it cannot listen.
        ssl_context: serve HTTPS with it.
    """

    def __init__(
        self,
        app: web.Application,
        host: str,
        port: int,
        *,
        name: str,
        what: str,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_timeout_s: float = KEEPALIVE_TIMEOUT_S,
    ) -> None:
        self.name = name
        self._loop = asyncio.new_event_loop()
        self._pool = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix=f"{name}-pool")
        self._loop.set_default_executor(self._pool)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, keepalive_timeout=keepalive_timeout_s, shutdown_timeout=1.0
        )
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._site = (host, port, ssl_context)
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()
        if not self._started.wait(START_TIMEOUT_S):
            raise RuntimeError(f"{name}: the HTTP server did not start within {START_TIMEOUT_S} s")
        if self._error is not None:
            self._thread.join()
            self._loop.close()
            self._pool.shutdown()
            raise ConfigError(f"{what}: cannot listen on {host}:{port} ({self._error})") from self._error
        self.port: int = self._runner.addresses[0][1]
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://{f'[{host}]' if ':' in host else host}:{self.port}"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start())
        except BaseException as e:  # reported to the constructor: a busy port is a config error
            self._error = e
            self._loop.run_until_complete(self._runner.cleanup())
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())

    async def _start(self) -> None:
        host, port, ssl_context = self._site
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=BACKLOG, ssl_context=ssl_context)
        await site.start()

    def close(self) -> None:
        """Stop serving (open connections are closed) and end the thread. Idempotent."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        if not self._loop.is_closed():
            self._loop.close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def metrics_app(registry: CollectorRegistry, readiness: Callable[[], tuple[bool, str]]) -> web.Application:
    """``/metrics`` (``registry`` in the format the scraper asks for), ``/healthz`` (200 while
    the process serves) and ``/readyz`` (200 or 503 with ``readiness()``'s reason)."""

    async def metrics(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = await asyncio.get_running_loop().run_in_executor(None, encoder, registry)
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        ready, why = readiness()
        return web.Response(text=why + "\n", status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
