"""What the live view costs the pipeline: ``streamer run`` of two real-time clips (looped) for
DURATION seconds, with and without ``--web`` and a headless chromium showing the page, in
alternating order; prints each run's processed fps and dropped share per stream
(docs/BENCHMARKS.md, "The live view's cost").

    PYTHONPATH=$PWD python scripts/bench_web.py --seconds 60 --repeats 3
"""

from __future__ import annotations

import argparse
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LINE = re.compile(r"(\w+): (\d+) of (\d+) decoded frames processed(?:, (\d+) dropped at the source)?")


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


def one_run(clip: Path, seconds: float, web: bool) -> dict[str, tuple[float, float]]:
    port = free_port()
    args = [sys.executable, "-m", "streamer", "--log-level", "INFO", "run", f"a={clip}", f"b={clip}", "-c", "offline"]
    args += ["--set", "sources.realtime=true", "--set", "sources.loop=true"]
    args += ["--set", f"publisher.endpoint=tcp://127.0.0.1:{free_port()}"]
    if web:
        args += ["--web", str(port), "--set", "web.fps=5"]
    proc = subprocess.Popen(args, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    driver = None
    try:
        while True:  # until the streams started (engine loaded and warmed)
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError("streamer run ended early")
            if "source b: started" in line:
                break
        if web:
            driver = browser(f"http://127.0.0.1:{port}/")
        time.sleep(seconds)
    finally:
        if driver is not None:
            driver.quit()
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=120)[1]
    out = {}
    for sid, done, decoded, dropped in LINE.findall(err):
        out[sid] = (int(done), int(decoded), int(dropped or 0))
    return {sid: (done, 100.0 * dropped / max(decoded, 1)) for sid, (done, decoded, dropped) in out.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    from tests.media import make_face_clip

    clip = make_face_clip(Path(tempfile.mkdtemp()) / "faces.mp4", seconds=3.0, fps=15, size_wh=(640, 360))
    rows = []
    for rep in range(a.repeats):
        for web in (False, True) if rep % 2 == 0 else (True, False):
            res = one_run(clip, a.seconds, web)
            frames = sum(done for done, _ in res.values())
            drop = sum(pct for _, pct in res.values()) / max(len(res), 1)
            rows.append((web, frames, drop))
            mode = "on " if web else "off"
            print(f"web={mode} processed {frames} frames in ~{a.seconds:.0f} s, dropped {drop:.1f} %", flush=True)
    for web in (False, True):
        fr = [f for w, f, _ in rows if w == web]
        dr = [d for w, _, d in rows if w == web]
        print(f"web {'on ' if web else 'off'}: frames {min(fr)}-{max(fr)} (mean {sum(fr) / len(fr):.0f}), "
              f"dropped {min(dr):.1f}-{max(dr):.1f} %")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
