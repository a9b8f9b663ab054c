"""Soak: ``streamer run -c offline`` on looping streams for a long time, sampling the process's
resident memory, threads and open file descriptors to a CSV (docs/operations.md, "Memory over
a long run").

    python scripts/soak.py --minutes 30 --csv soak.csv            # two looping demo streams
    python scripts/soak.py --minutes 30 --csv soak.csv --png docs/images/soak.png
    python scripts/soak.py --plot soak.csv --png docs/images/soak.png   # only draw an earlier CSV

The service runs as a child process (``python -m streamer run``) with the snapshot, control
and metrics endpoints on and a subscriber reading everything it publishes, so every outlet
holds what it would hold in production. Samples come from ``/proc/PID`` (Linux) every
``--every`` seconds; the log of the run goes to ``--log``. SIGTERM ends the run at the end and
its exit code is printed.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

FIELDS = ("t_s", "rss_mib", "threads", "fds", "messages")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample(pid: int) -> tuple[float, int, int]:
    """Resident MiB, threads and open file descriptors of ``pid`` (Linux ``/proc``)."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kib = int(fields["VmRSS"].split()[0])
    threads = int(fields["Threads"])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss_kib / 1024.0, threads, fds


def _subscribe(endpoint: str, stop: threading.Event, counter: list[int]) -> None:
    import zmq

    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVTIMEO, 500)
    sub.connect(endpoint)
    try:
        while not stop.is_set():
            try:
                sub.recv_multipart()
            except zmq.Again:
                continue
            counter[0] += 1
    finally:
        sub.close()


def soak(args: argparse.Namespace) -> int:
    clip = args.clip
    if clip is None:
        from streamer.sources.demo import demo_clip

        clip = str(demo_clip())
    pub = f"tcp://127.0.0.1:{_free_port()}"
    cmd = [
        sys.executable,
        "-m",
        "streamer",
        "run",
        "-c",
        "offline",
        *[f"s{i}={clip}" for i in range(args.streams)],
        "--set",
        "sources.loop=true",
        "--set",
        f"sources.realtime={str(args.realtime).lower()}",
        "--set",
        f"publisher.endpoint={pub}",
        "--set",
        f"snapshot.endpoint=tcp://127.0.0.1:{_free_port()}",
        "--set",
        f"control.endpoint=tcp://127.0.0.1:{_free_port()}",
        "--set",
        "metrics.enabled=true",
        "--set",
        f"metrics.port={_free_port()}",
        *[x for o in args.set for x in ("--set", o)],
    ]
    stop, counter = threading.Event(), [0]
    reader = threading.Thread(target=_subscribe, args=(pub, stop, counter), daemon=True)
    reader.start()
    with open(args.log, "w") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
    print(f"soak: pid {proc.pid}, {args.minutes} min, samples every {args.every} s -> {args.csv}", flush=True)
    t0 = time.monotonic()
    end = t0 + args.minutes * 60.0
    with open(args.csv, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(FIELDS)
        while time.monotonic() < end and proc.poll() is None:
            rss, threads, fds = sample(proc.pid)
            out.writerow((round(time.monotonic() - t0, 1), round(rss, 1), threads, fds, counter[0]))
            f.flush()
            time.sleep(args.every)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    stop.set()
    reader.join(timeout=5)
    print(f"soak: streamer exited {code}; {counter[0]} messages received", flush=True)
    if args.png:
        plot(args.csv, args.png)
    return 0 if code == 0 else 1


def plot(csv_path: str, png: str) -> None:
    """Draw RSS, threads and fds over time from a soak CSV."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    t = [float(r["t_s"]) / 60.0 for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(7, 4.5))
    top.plot(t, [float(r["rss_mib"]) for r in rows])
    top.set_ylabel("RSS (MiB)")
    top.grid(alpha=0.3)
    bottom.plot(t, [int(r["threads"]) for r in rows], label="threads")
    bottom.plot(t, [int(r["fds"]) for r in rows], label="open fds")
    bottom.set_xlabel("minutes")
    bottom.legend()
    bottom.grid(alpha=0.3)
    fig.suptitle(f"streamer run -c offline, looping streams ({Path(csv_path).name})")
    fig.tight_layout()
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    p.add_argument("--streams", type=int, default=2)
    p.add_argument("--clip", help="video file to loop (default: the demo clip)")
    p.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True, help="play like cameras")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more settings for the run")
    p.add_argument("--csv", default="soak.csv")
    p.add_argument("--log", default="soak.log")
    p.add_argument("--png", help="also draw the curve into this PNG")
    p.add_argument("--plot", metavar="CSV", help="only draw this earlier CSV into --png")
    args = p.parse_args(argv)
    if args.plot:
        plot(args.plot, args.png or "soak.png")
        return 0
    return soak(args)


if __name__ == "__main__":
    sys.exit(main())
