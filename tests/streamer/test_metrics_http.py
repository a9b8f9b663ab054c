"""The HTTP side of ``/metrics`` under load and abuse: 300 scrapes at once are all answered;
a slowloris (headers trickled, never finished) and idle keep-alive connections are closed by
the server, and neither costs a thread per connection."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from configs import load_settings
from streamer.service.metrics import MetricsServer
from tests.streamer.helpers import LIVENESS_S, wait_for


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    server = MetricsServer(load_settings(None, ["metrics.port=0"]).metrics)
    try:
        yield server
    finally:
        server.close()


def scrape_raw(port: int, start: threading.Barrier | None = None) -> bytes:
    """One ``GET /metrics`` on a fresh connection (after every caller reached ``start``)."""
    if start is not None:
        start.wait(LIVENESS_S)
    with socket.create_connection(("127.0.0.1", port), timeout=LIVENESS_S) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def closed_by_server(sock: socket.socket) -> bool:
    """Wait (at most ``LIVENESS_S``) for the server to close ``sock``; False if it never does."""
    sock.settimeout(LIVENESS_S)
    try:
        while sock.recv(4096):
            pass
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_300_concurrent_scrapes_are_all_answered(server):
    start = threading.Barrier(300)
    with ThreadPoolExecutor(300) as pool:
        replies = list(pool.map(lambda _: scrape_raw(server.port, start), range(300)))
    answered = [r for r in replies if r.startswith(b"HTTP/1.1 200") and b"expstream_engine_ready" in r]
    assert len(answered) == 300


def test_a_slowloris_is_closed_and_costs_no_thread(server):
    scrape_raw(server.port)  # the pool's threads exist from now on
    threads, fds = threading.active_count(), open_fds()
    lorises = [socket.create_connection(("127.0.0.1", server.port), timeout=LIVENESS_S) for _ in range(20)]
    try:
        for s in lorises:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and never the rest
        assert threading.active_count() == threads
        assert b"HTTP/1.1 200" in scrape_raw(server.port)  # others are still served meanwhile
        assert all(closed_by_server(s) for s in lorises)
    finally:
        for s in lorises:
            s.close()
    wait_for(lambda: open_fds() <= fds, LIVENESS_S, "the connections' file descriptors to be released")


def test_idle_keep_alive_connections_are_closed(server):
    scrape_raw(server.port)
    threads = threading.active_count()
    idle = []
    try:
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=LIVENESS_S)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive: HTTP/1.1's default
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            idle.append(s)
        assert threading.active_count() == threads
        assert all(closed_by_server(s) for s in idle)
    finally:
        for s in idle:
            s.close()
