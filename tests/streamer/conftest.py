"""Fixtures for streamer tests: a generated face clip, a corrupt file, a real RTSP server.

``rtsp_server`` runs GStreamer's RTSP server (``rtsp_server.py``) under Debian's
``/usr/bin/python3``, which has ``gi``; tests using it skip when that is missing. Usage::

    def test_x(rtsp_server, face_clip):
        url = rtsp_server.url            # the default server: face_clip, looping, started
        rtsp_server.kill()               # SIGKILL, like a crashed camera
        rtsp_server.start()              # again, on the same port
        once = rtsp_server(face_clip)    # another server: plays the clip once per client
        locked = rtsp_server(auth="user:secret")   # the default clip, Basic auth required
"""

from __future__ import annotations

import functools
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from configs.sources import SourceSettings
from streamer.base import Source
from streamer.cli import main
from streamer.sources import open_source
from streamer.values import StreamEvent
from tests.media import make_corrupt_file, make_face_clip
from tests.streamer.netns import pytest_runtest_protocol  # noqa: F401  (the hook that runs netns-marked modules)

collect_ignore = ["rtsp_server.py"]  # runs under Debian's python3 with gi, never imported here

SYSTEM_PYTHON = Path(os.environ.get("EXPSTREAM_GI_PYTHON", "/usr/bin/python3"))
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
CLIP_SECONDS = 3.0
CLIP_FPS = 15
CLIP_SIZE_WH = (640, 360)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "netns: runs in a network namespace of its own, loopback only (netns.py)")


@functools.cache
def rtsp_server_unavailable() -> str | None:
    """Why the GStreamer RTSP server cannot run here, or None when it can."""
    if not SYSTEM_PYTHON.exists():
        return f"{SYSTEM_PYTHON} not found (set EXPSTREAM_GI_PYTHON to a Python with gi)"
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
        " from gi.repository import Gst, GstRtspServer; Gst.init(None);"
        " assert Gst.ElementFactory.find('rtph264pay') and Gst.ElementFactory.find('qtdemux')"
    )
    try:
        res = subprocess.run([str(SYSTEM_PYTHON), "-c", probe], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot run {SYSTEM_PYTHON}: {e}"
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["?"])[-1]
        return (
            f"{SYSTEM_PYTHON} cannot import gi/GstRtspServer or lacks qtdemux/rtph264pay ({last});"
            " apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good"
        )
    return None


class RtspServer:
    """One ``rtsp_server.py`` process serving ``clip`` at ``rtsp://127.0.0.1:PORT/test``.

    The port is chosen on the first ``start()`` and kept, so ``kill()`` then ``start()``
    brings the same URL back.
    """

    def __init__(
        self, clip: Path, *, loop: bool = False, log_path: Path | None = None, auth: str | None = None
    ) -> None:
        self.clip = Path(clip)
        self.loop = loop
        self.auth = auth
        """``USER:PASSWORD`` the server requires (HTTP Basic), or None."""
        self.port = 0
        self.log_path = log_path
        self._proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("RtspServer.url before start()")
        return f"rtsp://127.0.0.1:{self.port}/test"

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 15.0) -> RtspServer:
        """Start the server (same port as before, if any) and wait until it answers."""
        if self.alive:
            return self
        cmd = [str(SYSTEM_PYTHON), str(SERVER_SCRIPT), str(self.clip), "--port", str(self.port)]
        if self.loop:
            cmd.append("--loop")
        if self.auth:
            cmd += ["--auth", self.auth]
        stderr = open(self.log_path, "a") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True)
        finally:
            if stderr is not subprocess.DEVNULL:
                stderr.close()
        self._proc = proc
        line = _read_line(proc, timeout_s)
        if not line.startswith("READY "):
            self.kill()
            raise RuntimeError(f"RTSP server did not start: {line!r} (log: {self.log_path})")
        self.port = int(line.split()[1])
        return self

    def kill(self) -> None:
        """SIGKILL the server (no RTSP teardown: clients just lose the connection)."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait(10)
            if self._proc.stdout:
                self._proc.stdout.close()
            self._proc = None

    def pause(self) -> None:
        """SIGSTOP: connections stay open but go silent (a hung camera)."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after ``pause()``."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)


def _read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    """The server's first stdout line, or "" when it exits or stays silent."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout_s):
            return ""
    return proc.stdout.readline().strip()


class RtspServerFactory:
    """The ``rtsp_server`` fixture: call it for a server of any clip; use ``.url``,
    ``.start()``, ``.kill()`` directly for the default one (``face_clip``, looping)."""

    def __init__(self, default_clip: Path, log_dir: Path) -> None:
        self._default_clip = default_clip
        self._log_dir = log_dir
        self._default: RtspServer | None = None
        self._servers: list[RtspServer] = []

    def __call__(self, clip: Path | None = None, *, loop: bool = False, auth: str | None = None) -> RtspServer:
        log_path = self._log_dir / f"rtsp_server_{len(self._servers)}.log"
        server = RtspServer(clip or self._default_clip, loop=loop, log_path=log_path, auth=auth)
        self._servers.append(server)
        return server.start()

    @property
    def default(self) -> RtspServer:
        if self._default is None:
            self._default = self(loop=True)
        return self._default

    @property
    def url(self) -> str:
        return self.default.url

    @property
    def port(self) -> int:
        return self.default.port

    @property
    def alive(self) -> bool:
        return self.default.alive

    def start(self) -> RtspServer:
        return self.default.start()

    def kill(self) -> None:
        self.default.kill()

    def pause(self) -> None:
        self.default.pause()

    def resume(self) -> None:
        self.default.resume()

    def close(self) -> None:
        for server in self._servers:
            server.resume()
            server.kill()


@pytest.fixture(scope="session")
def face_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 s, 640x360, 15 fps H.264 MP4 (45 frames, keyframe every second) of six faces."""
    path = tmp_path_factory.mktemp("media") / "faces.mp4"
    return make_face_clip(path, seconds=CLIP_SECONDS, fps=CLIP_FPS, size_wh=CLIP_SIZE_WH)


@pytest.fixture
def corrupt_file(tmp_path: Path) -> Path:
    """An .mp4 name holding random bytes."""
    return make_corrupt_file(tmp_path / "corrupt.mp4")


@pytest.fixture
def rtsp_server(face_clip: Path, tmp_path: Path) -> Iterator[RtspServerFactory]:
    """Real RTSP servers (GStreamer); skips when ``/usr/bin/python3`` lacks gi. All servers
    are killed at teardown."""
    reason = rtsp_server_unavailable()
    if reason:
        pytest.skip(reason)
    factory = RtspServerFactory(face_clip, tmp_path)
    try:
        yield factory
    finally:
        factory.close()


class EventRecorder:
    """An ``on_event`` callback that keeps every event (thread-safe) and can wait for one."""

    def __init__(self) -> None:
        self.events: list[StreamEvent] = []
        self._cond = threading.Condition()

    def __call__(self, event: StreamEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def kinds(self) -> list[str]:
        with self._cond:
            return [e.kind for e in self.events]

    def of_kind(self, kind: str) -> list[StreamEvent]:
        with self._cond:
            return [e for e in self.events if e.kind == kind]

    def wait_for(self, kind: str, timeout_s: float, after: int = 0) -> StreamEvent | None:
        """The first event of ``kind`` at position >= ``after``; None after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for event in self.events[after:]:
                    if event.kind == kind:
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)


@pytest.fixture
def event_log() -> EventRecorder:
    """A fresh ``EventRecorder`` to pass as ``on_event``."""
    return EventRecorder()


@pytest.fixture
def start_source() -> Iterator[Callable[..., Source]]:
    """``start_source(uri, stream_id, settings, on_event)``: ``open_source`` + ``start()``;
    every source it made is stopped at teardown, even when the test failed."""
    sources: list[Source] = []

    def start(uri: str, stream_id: str, settings: SourceSettings, on_event: Callable[[StreamEvent], None]) -> Source:
        source = open_source(uri, stream_id, settings, on_event)
        sources.append(source)
        source.start()
        return source

    yield start
    for source in sources:
        source.stop()


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    """server, alice (allowed) and mallory (not) key pairs; alice's public key allowed."""
    folder = tmp_path / "keys"
    assert main(["keys", str(folder), "server", "alice", "mallory"]) == 0
    allowed = tmp_path / "authorized"
    allowed.mkdir()
    (allowed / "alice.key").write_bytes((folder / "alice.key").read_bytes())
    return folder, allowed
