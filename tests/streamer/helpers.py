"""Helpers for the streamer's end-to-end tests: offline settings, free endpoints, a SUB
socket that collects messages on a thread, the JSON Schemas, and running ``streamer`` as a
subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import zmq

from streamer.frames import Frame, FrameImage
from streamer.pipeline.handoff import ScoreJob
from streamer.values import Tracks

ROOT = Path(__file__).resolve().parents[2]
OFFLINE = str(ROOT / "configs" / "offline.yaml")
SCHEMAS = ROOT / "streamer" / "schemas"
LIVENESS_S = 120.0
"""How long a test waits for something that must happen before calling it a failure. Only a
broken build ever waits this long; a busy machine merely gets there later."""

# The offline config (tiny random engine, RetinaFace: no model downloads); the streamer holds
# its first message until the test's subscriber has subscribed (no sleeping).
OFFLINE_SETS = [
    "--set",
    "stats.interval_s=1",
    "--set",
    "publisher.wait_subscribers=1",
    "--set",
    "publisher.settle_s=120",
]


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def validators() -> dict[str, jsonschema.Draft202012Validator]:
    out = {}
    for kind in ("faces", "events", "snapshot"):
        schema = json.loads((SCHEMAS / f"{kind}.v1.json").read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        out[kind] = jsonschema.Draft202012Validator(schema)
    return out


class Collector:
    """A SUB socket (connect) that records ``(topic, message)`` until closed.

    ``delay_s`` > 0 makes it a slow reader, ``paused`` one that reads nothing until
    ``speed_up()``; ``rcvhwm`` bounds what ZeroMQ queues for it.
    """

    def __init__(
        self,
        endpoint: str,
        topics: tuple[str, ...] = ("",),
        delay_s: float = 0.0,
        rcvhwm: int = 1000,
        rcvbuf: int = -1,
        paused: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.raw: list[bytes] = []
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.RCVHWM, rcvhwm)
        if rcvbuf > 0:
            self._sock.setsockopt(zmq.RCVBUF, rcvbuf)
        for t in topics:
            self._sock.setsockopt_string(zmq.SUBSCRIBE, t)
        self._sock.connect(endpoint)
        self._delay = delay_s
        self._reading = threading.Event()
        if not paused:
            self._reading.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._reading.wait(0.05):
                continue
            if self._sock.poll(50):
                topic, payload = self._sock.recv_multipart()
                self.raw.append(payload)
                self.messages.append((topic.decode(), json.loads(payload)))
                if self._delay:
                    time.sleep(self._delay)

    def speed_up(self) -> None:
        """Read at full speed from now on."""
        self._delay = 0.0
        self._reading.set()

    def close(self, drain_s: float = 0.5) -> None:
        """Read what is still queued at full speed; stop after ``drain_s`` seconds without a
        new message."""
        self.speed_up()
        last = -1
        while len(self.messages) != last:
            last = len(self.messages)
            time.sleep(drain_s)
        self._stop.set()
        self._thread.join()
        self._sock.close(linger=0)
        self._ctx.term()

    def of(self, topic_prefix: str) -> list[dict[str, Any]]:
        return [m for t, m in self.messages if t.startswith(topic_prefix)]


def sets(*items: str) -> list[str]:
    """``--set`` overrides for a command line: ``sets("a=1", "b=2")`` -> ``["--set", "a=1", "--set", "b=2"]``."""
    return [a for item in items for a in ("--set", item)]


UNWATCHED_SETS = sets("publisher.wait_subscribers=0", "publisher.settle_s=0", "publisher.endpoint=tcp://127.0.0.1:*")
"""A run that publishes at once, to a free port, without waiting for a subscriber."""


def streamer_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "streamer", "--log-level", "INFO", *args]


def start_streamer(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        streamer_cmd(*args), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(predicate, timeout_s: float, what: str, poll_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(poll_s)


def score_job(stream_id: str, track_ids: list[int], image: np.ndarray | None = None) -> ScoreJob:
    """A 160x120 frame of ``stream_id`` (grey, or ``image``) with one same-box track per id."""
    img = FrameImage.from_bgr(np.full((120, 160, 3), 100, np.uint8) if image is None else image)
    n = len(track_ids)
    boxes = np.tile(np.float32([20, 20, 60, 70]), (n, 1))
    tracks = Tracks(np.array(track_ids, np.int64), boxes, np.ones(n, np.float32), np.zeros(n, np.int64))
    return ScoreJob(Frame(stream_id, 0, 0.0, time.time(), img), tracks)


REFUSED_HANDSHAKE = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH,
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
    zmq.EVENT_DISCONNECTED,
}
"""Socket-monitor events that mean a CurveZMQ client was turned away."""
