"""The live view's HTTP side: the aiohttp application (the page, its script and style from
the package; ``/api/state``; ``/api/frame/<stream>``), the token check, TLS, and
``LiveView``, which serves it with the service's one small runner
(``streamer.service.http.HttpServer``) on ``web.listen``.

Security: with ``web.token`` (or ``web.token_file``) every request must carry it, as an
``Authorization: Bearer`` header, the cookie the page sets, or ``?token=`` (the page then
sets the cookie and drops it from the address bar); others get 401, logged with the peer's
address (at most once a minute per peer). A non-loopback ``web.listen`` is refused at load
time without a token (``configs.web``). ``web.tls_cert``/``web.tls_key`` serve HTTPS.

Example (plain text: binds a port)::

    view = LiveView(settings.web, board, feed, tap=tap, health=PipelineHealth(pipe))
    print(view.url)   # http://127.0.0.1:8080
    view.close()
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from configs.core.errors import ConfigError
from configs.web import LOOPBACK_HOSTS, WebSettings
from streamer.output.state import StateBoard
from streamer.service.http import HttpServer
from streamer.web.feed import EventFeed
from streamer.web.tap import FrameTap
from streamer.web.view import page_state

log = logging.getLogger(__name__)

COOKIE = "expstream_token"
STATIC = ("index.html", "app.js", "style.css")
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
REFUSAL_LOG_EVERY_S = 60.0

Health = Callable[[], dict[str, dict[str, Any]]]
Placement = Callable[[], tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]]


def load_token(settings: WebSettings) -> str | None:
    """The token from ``web.token`` or the first line of ``web.token_file`` (None: none)."""
    if settings.token is not None:
        token = settings.token.get_secret_value().strip()
    elif settings.token_file is not None:
        try:
            token = Path(settings.token_file).read_text().strip().splitlines()[0].strip()
        except (OSError, IndexError) as e:
            raise ConfigError(f"web.token_file: cannot read a token from it ({type(e).__name__})") from e
    else:
        return None
    if len(token) < 8:
        raise ConfigError("web.token / web.token_file: a token of at least 8 characters")
    return token


def tls_context(settings: WebSettings) -> ssl.SSLContext | None:
    """An HTTPS context from ``web.tls_cert``/``web.tls_key`` (None: plain HTTP)."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as e:  # the message names no path: it is logged
        why = e.__class__.__name__
        raise ConfigError(f"web.tls_cert/web.tls_key: cannot load the certificate and key ({why})") from e
    return ctx


def _static(name: str) -> bytes:
    return resources.files("streamer.web").joinpath("static", name).read_bytes()


def token_middleware(token: str | None, secure: bool) -> Callable[..., Awaitable[web.StreamResponse]]:
    """401 for a request without ``token`` (none needed when ``token`` is None)."""
    logged: dict[str, float] = {}

    def given(request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[7:].strip()
        return request.query.get("token") or request.cookies.get(COOKIE)

    @web.middleware
    async def check(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        if token is not None:
            offered = given(request)
            if offered is None or not hmac.compare_digest(offered.encode(), token.encode()):
                peer = request.remote or "?"
                if time.monotonic() - logged.get(peer, -1e9) >= REFUSAL_LOG_EVERY_S:
                    logged[peer] = time.monotonic()
                    log.warning(
                        "web: refused %s %s from %s: %s token",
                        request.method,
                        request.path,
                        peer,
                        "wrong" if offered else "no",
                    )
                return web.Response(
                    status=401,
                    text="401: a token is needed (?token=... or Authorization: Bearer)\n",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            if "token" in request.query:  # set the cookie, drop the token from the address bar
                clean = request.rel_url.with_query({k: v for k, v in request.query.items() if k != "token"})
                resp = web.Response(status=303, headers={"Location": str(clean)})
                resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict", secure=secure)
                return resp
        resp = await handler(request)
        resp.headers.update(SECURITY_HEADERS)
        return resp

    return check


def web_app(
    settings: WebSettings,
    board: StateBoard,
    feed: EventFeed,
    *,
    token: str | None = None,
    secure: bool = False,
    tap: FrameTap | None = None,
    health: Health | None = None,
    placement: Placement | None = None,
) -> web.Application:
    """The page and its API over ``board`` and ``feed`` (``tap``: pictures; ``health``: per
    stream counters; ``placement``: a cluster's workers, epochs and their health)."""

    def state() -> bytes:
        where, load = placement() if placement is not None else (None, None)
        doc = page_state(board.snapshot(), feed, health() if health is not None else load, where)
        doc["pictures"] = {"fps": settings.fps} if tap is not None else None
        return json.dumps(doc).encode()

    async def page(request: web.Request) -> web.Response:
        name = request.match_info.get("name", "index.html")
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.Response(body=_static(name), content_type=CONTENT_TYPES[Path(name).suffix])

    async def api_state(request: web.Request) -> web.Response:
        body = await asyncio.get_running_loop().run_in_executor(None, state)
        return web.Response(body=body, content_type="application/json")

    async def api_frame(request: web.Request) -> web.Response:
        if tap is None:
            raise web.HTTPNotFound(text="pictures are served by each worker's own streamer run --web\n")
        index, data = await asyncio.get_running_loop().run_in_executor(None, tap.jpeg, request.match_info["sid"])
        if data is None:
            raise web.HTTPNotFound(text="no picture of this stream yet\n")
        return web.Response(body=data, content_type="image/jpeg", headers={"X-Frame-Index": str(index)})

    app = web.Application(middlewares=[token_middleware(token, secure)], client_max_size=4096)
    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", page)
    app.router.add_get("/api/state", api_state)
    app.router.add_get("/api/frame/{sid}", api_frame)
    return app


class LiveView:
    """The page on ``settings.listen`` until ``close``; ``url`` says where."""

    def __init__(
        self,
        settings: WebSettings,
        board: StateBoard,
        feed: EventFeed,
        *,
        tap: FrameTap | None = None,
        health: Health | None = None,
        placement: Placement | None = None,
    ) -> None:
        token, ctx = load_token(settings), tls_context(settings)
        app = web_app(
            settings, board, feed, token=token, secure=ctx is not None, tap=tap, health=health, placement=placement
        )
        self._http = HttpServer(app, settings.host, settings.port, name="web", what="web.listen", ssl_context=ctx)
        self.url = self._http.url
        self.port = self._http.port
        log.info("live view on %s/%s", self.url, " (token needed)" if token else "")
        if ctx is None and not (settings.host in LOOPBACK_HOSTS or settings.host.startswith("127.")):
            log.warning("web.listen %s is reachable from other machines over plain HTTP: the token travels in "
                        "clear; set web.tls_cert and web.tls_key", settings.listen)  # fmt: skip

    def close(self) -> None:
        """Stop serving. Idempotent."""
        self._http.close()
