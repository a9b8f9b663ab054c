"""What the live view costs the pipeline: ``streamer run`` of two real-time clips (looped),
with and without ``--web`` and a headless chromium showing the page (``--client poller``:
a Python loop fetching what the page fetches), in alternating order.
Over a window of SECONDS after the streams started (and the page loaded) it reads, from the
run's own ``/metrics``, frames processed and frames decoded and dropped, and from /proc the
streamer process's CPU time (docs/BENCHMARKS.md, "The live view's cost").

    PYTHONPATH=$PWD python scripts/bench_web.py --seconds 45 --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SERIES = ("expstream_frames_total", "expstream_frames_decoded_total", "expstream_source_frames_dropped_total")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser(url: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.get(url)
    return driver


class Poller:
    """What the page fetches (the state once a second, each picture ``fps`` times a second),
    without a browser: the server's cost alone."""

    def __init__(self, url: str, streams: list[str], fps: float) -> None:
        import threading

        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._poll, args=(f"{url}/api/state", 1.0), daemon=True)]
        self._threads += [
            threading.Thread(target=self._poll, args=(f"{url}/api/frame/{s}", 1.0 / fps), daemon=True) for s in streams
        ]
        for t in self._threads:
            t.start()

    def _poll(self, url: str, every_s: float) -> None:
        while not self._stop.wait(every_s):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(url, timeout=60).read()

    def quit(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def counters(port: int) -> dict[str, float]:
    """Each of ``SERIES`` summed over the streams."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as r:
        text = r.read().decode()
    out = dict.fromkeys(SERIES, 0.0)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in out:
                out[s.name] += s.value
    return out


def one_run(clip: Path, seconds: float, web: bool, client: str, fps: float) -> tuple[float, float, float]:
    """(fps of both streams together, % of decoded frames dropped, CPU ms per processed frame)."""
    metrics, page = free_port(), free_port()
    args = [sys.executable, "-m", "streamer", "--log-level", "INFO", "run", f"a={clip}", f"b={clip}", "-c", "offline"]
    args += ["--set", "sources.realtime=true", "--set", "sources.loop=true", "--set", "metrics.enabled=true"]
    args += ["--set", f"metrics.port={metrics}", "--set", f"publisher.endpoint=tcp://127.0.0.1:{free_port()}"]
    if web:
        args += ["--web", str(page), "--set", f"web.fps={fps}"]
    proc = subprocess.Popen(args, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    driver = None
    try:
        while "source b: started" not in (line := proc.stderr.readline()):
            if not line:
                raise RuntimeError("streamer run ended early")
        if web:
            url = f"http://127.0.0.1:{page}"
            driver = browser(url + "/") if client == "chromium" else Poller(url, ["a", "b"], fps)
        c0, cpu0, t0 = counters(metrics), cpu_s(proc.pid), time.monotonic()
        time.sleep(seconds)
        c1, cpu1, t1 = counters(metrics), cpu_s(proc.pid), time.monotonic()
    finally:
        if driver is not None:
            driver.quit()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    frames, decoded, dropped = (c1[k] - c0[k] for k in SERIES)
    return frames / (t1 - t0), 100.0 * dropped / max(decoded, 1.0), 1000.0 * (cpu1 - cpu0) / max(frames, 1.0)


def micro() -> None:
    """CPU per picture (drawn and encoded, six faces) and per ``/api/state``, in this process."""
    import itertools
    import json
    import resource

    import av
    import numpy as np

    from configs import load_settings
    from streamer.frames import Frame, FrameImage
    from streamer.output.state import StateBoard
    from streamer.values import FaceResult, Tracks
    from streamer.web import EventFeed, FrameTap
    from streamer.web.view import page_state

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    n = 6
    boxes = np.float32([[50 + 100 * i, 50, 120 + 100 * i, 140] for i in range(n)])
    tracks = Tracks(np.arange(n, dtype=np.int64), boxes, np.ones(n, np.float32), np.ones(n, np.int64))
    results = [FaceResult(np.full(7, 1 / 7, np.float32), np.full(7, 1 / 7, np.float32), "happiness", 0.2, 0)] * n
    for w, h in ((640, 360), (1280, 720), (1920, 1080)):
        noise = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
        yuv = av.VideoFrame.from_ndarray(noise, format="bgr24").reformat(format="yuv420p")
        for blur in (False, True):
            tap = FrameTap(load_settings(None, []).web, blur=blur, clock=itertools.count().__next__)  # keeps each
            frames = [Frame("s", i, 0.0, 0.0, FrameImage.from_av(yuv)) for i in range(60)]
            c0 = cpu()
            for f in frames:
                tap.put(f, tracks, results)
                tap.jpeg("s")
            print(f"picture {w}x{h}, blur {blur}: {(cpu() - c0) / len(frames) * 1000:.1f} ms CPU")
    board, feed = StateBoard(), EventFeed(50)
    for s in range(4):
        board.apply(f"events.c{s}", {"type": "event", "scope": "stream", "kind": "started", "stream_id": f"c{s}"})
        faces = [{"track_id": t, "label": "a", "score": 0.5, "smoothed_probs": [0.1] * 7} for t in range(20)]
        board.apply(f"faces.c{s}", {"type": "faces", "stream_id": f"c{s}", "frame_index": 1, "faces": faces})
    c0 = cpu()
    for _ in range(200):
        json.dumps(page_state(board.snapshot(), feed))
    print(f"/api/state, 4 streams x 20 tracks: {(cpu() - c0) / 200 * 1000:.2f} ms CPU")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=45.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--web-fps", type=float, default=5.0, help="web.fps: pictures a second per stream")
    p.add_argument("--client", choices=["chromium", "poller"], default="chromium", help="who looks at the page")
    p.add_argument("--micro", action="store_true", help="only the CPU per picture and per state, in this process")
    a = p.parse_args()
    if a.micro:
        micro()
        return 0
    from tests.media import make_face_clip

    clip = make_face_clip(Path(tempfile.mkdtemp()) / "faces.mp4", seconds=3.0, fps=15, size_wh=(640, 360))
    rows = []
    for rep in range(a.repeats):
        for web in (False, True) if rep % 2 == 0 else (True, False):
            fps, drop, ms = one_run(clip, a.seconds, web, a.client, a.web_fps)
            rows.append((web, fps, drop, ms))
            print(f"web {'on ' if web else 'off'}: {fps:.1f} fps, {drop:.1f} % dropped, {ms:.0f} ms CPU per frame")
            sys.stdout.flush()
    for web in (False, True):
        got = [r[1:] for r in rows if r[0] == web]
        spread = [(min(g[i] for g in got), max(g[i] for g in got)) for i in range(3)]
        units = ("fps", "% dropped", "ms CPU/frame")
        text = ", ".join(f"{lo:.1f}-{hi:.1f} {unit}" for (lo, hi), unit in zip(spread, units, strict=True))
        print(f"web {'on ' if web else 'off'} ({len(got)} runs): {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
