"""What the end-to-end cluster tests share: a ``streamer cluster`` driver started as a
subprocess (its own process group: a local Ray's processes go with it) with a subscriber
that keeps when each message arrived, processes paused and resumed by the test (always
resumed again, even when a test fails), and the check that the cluster's sockets use
loopback only. The tests run in a network namespace of their own (``netns.py``)."""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import os
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamer.cluster.epochs import split_track_id
from streamer.net.endpoints import request
from tests.streamer.helpers import LIVENESS_S, OFFLINE, ROOT, Collector, free_endpoint, sets, streamer_cmd, validators

LOOPBACK_SETTINGS = ("cluster.ingest_endpoint=tcp://127.0.0.1:*",)


class TimedCollector(Collector):
    """A ``Collector`` that also keeps when each message arrived (``timed``)."""

    def __init__(self, endpoint: str) -> None:
        self.timed: list[tuple[float, str, dict[str, Any]]] = []
        super().__init__(endpoint)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._sock.poll(50):
                topic, payload = self._sock.recv_multipart()
                msg = json.loads(payload)
                self.timed.append((time.monotonic(), topic.decode(), msg))
                self.messages.append((topic.decode(), msg))


@dataclass
class Cluster:
    proc: subprocess.Popen
    log: Path
    endpoint: str
    control: str
    snapshot: str
    col: TimedCollector
    clip: Path
    paused: set[int] = field(default_factory=set)
    earlier: list[subprocess.Popen] = field(default_factory=list)
    """Driver processes killed and replaced by the test (``restart``)."""

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        return request(self.control, body, LIVENESS_S)

    def status(self) -> dict[str, Any]:
        st = self.request({"op": "status"})
        assert st["ok"], st
        return st

    def ready(self) -> list[dict[str, Any]]:
        return [w for w in self.status()["workers"] if w["state"] == "ready"]

    def worker(self, wid: str) -> dict[str, Any]:
        return next(w for w in self.status()["workers"] if w["id"] == wid)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def events(self, sid: str, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.col.of(f"events.{sid}") if m["scope"] == "stream" and m["kind"] == kind]

    def faces(self, sid: str, epoch: int | None = None) -> list[dict[str, Any]]:
        return [m for m in self.col.of(f"faces.{sid}") if epoch is None or m["epoch"] == epoch]

    def pause(self, pid: int) -> None:
        """SIGSTOP ``pid`` (resumed by ``resume``, or at the latest by ``stop_cluster``)."""
        self.paused.add(pid)
        os.kill(pid, signal.SIGSTOP)

    def resume(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        self.paused.discard(pid)


def start_cluster(
    d: Path,
    sources: list[str],
    clip: Path,
    *settings: str,
    again: Cluster | None = None,
    env: dict | None = None,
) -> Cluster:
    """A driver serving ``sources`` (each the looping realtime ``clip``), with a subscriber
    connected before the sources start (``publisher.wait_subscribers``). ``again``: a driver
    that restarts on that cluster's endpoints, its subscriber kept. ``env``: the driver's
    environment (default this process's; ``RayNodes.env`` to join a ``RayNodes`` Ray)."""
    listing = d / "sources.yaml"
    listing.write_text("sources:\n" + "".join(f"  {s}: {clip}\n" for s in sources))
    if again is None:
        endpoint, control, snapshot = free_endpoint(), free_endpoint(), free_endpoint()
        col = TimedCollector(endpoint)
    else:
        endpoint, control, snapshot, col = again.endpoint, again.control, again.snapshot, again.col
    args = sets(
        "detector.name=haar",
        "detector.full_frame_every=5",
        "sources.loop=true",
        "sources.realtime=true",
        "pipeline.torch_threads=1",
        "stats.interval_s=10",
        "publisher.wait_subscribers=1",
        "publisher.settle_s=120",
        f"publisher.endpoint={endpoint}",
        f"control.endpoint={control}",
        f"snapshot.endpoint={snapshot}",
        *LOOPBACK_SETTINGS,
        *settings,
    )
    log = d / ("driver.log" if again is None else "driver-again.log")
    with log.open("w") as out:
        proc = subprocess.Popen(
            streamer_cmd("cluster", "-c", OFFLINE, "--sources", str(listing), *args),
            cwd=ROOT,
            env={**(os.environ if env is None else env), "PYTHONPATH": str(ROOT)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: Ray's processes with it
        )
    return Cluster(proc, log, endpoint, control, snapshot, col, clip)


def stop_cluster(c: Cluster) -> None:
    """Resume what the test paused, SIGTERM the driver (SIGKILL after ``LIVENESS_S``), kill
    what is left of its process group, close the subscriber."""
    for pid in list(c.paused):
        c.resume(pid)
    for old in c.earlier:  # drivers the test killed and restarted: what their local Ray left
        with contextlib.suppress(ProcessLookupError):
            os.killpg(old.pid, signal.SIGKILL)
    try:
        if c.proc.poll() is None:
            c.proc.send_signal(signal.SIGTERM)
            try:
                c.proc.wait(LIVENESS_S)
            except subprocess.TimeoutExpired:
                c.proc.kill()
                c.proc.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):  # what a killed driver's local Ray left behind
            os.killpg(c.proc.pid, signal.SIGKILL)
        c.col.close()


# ---- loopback only


def own_network_namespace() -> bool:
    """This process is not in the network namespace of process 1 (the machine's)."""
    try:
        return os.stat("/proc/self/ns/net").st_ino != os.stat("/proc/1/ns/net").st_ino
    except PermissionError:
        return True  # cannot see process 1's: a container of its own


def _address(hex_addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes.fromhex(hex_addr)
    # /proc/net prints each 32-bit word in host (little-endian) order
    return ipaddress.ip_address(b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4)))


def sockets_off_loopback() -> list[str]:
    """Every socket of this network namespace (TCP and UDP, IPv4 and IPv6) whose local or
    remote address is neither loopback nor unspecified (an unconnected peer, or a wildcard
    bind, which in a namespace with only ``lo`` reaches loopback alone). Empty: all local."""
    off = []
    for name in ("tcp", "tcp6", "udp", "udp6"):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, remote = line.split()[1:3]
            for end in (local, remote):
                addr = _address(end.split(":")[0])
                mapped = getattr(addr, "ipv4_mapped", None)
                if not ((mapped or addr).is_loopback or (mapped or addr).is_unspecified):
                    off.append(f"{name} {_address(local.split(':')[0])} -> {_address(remote.split(':')[0])}")
                    break
    return off


def listening_count() -> int:
    """TCP sockets listening in this namespace (state 0A)."""
    return sum(
        line.split()[3] == "0A"
        for name in ("tcp", "tcp6")
        if (Path("/proc/net") / name).exists()
        for line in (Path("/proc/net") / name).read_text().splitlines()[1:]
    )


def assert_in_order(messages: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """What a subscriber received, as (topic, message): each message valid against its schema,
    and within one run (a restarted driver starts a new one): per topic ``seq`` increasing,
    per stream epochs never going back, per (stream, epoch) frames increasing, and every
    face's track id carrying its message's epoch."""
    v = validators()
    frames: dict[tuple[str, str, int], list[int]] = defaultdict(list)
    epochs: dict[tuple[str, str], list[int]] = defaultdict(list)
    seqs: dict[tuple[str, str], list[int]] = defaultdict(list)
    for topic, m in messages:
        assert not [e.message for e in v[topic.split(".", 1)[0]].iter_errors(m)], (topic, m)
        seqs[(m["run"], topic)].append(m["seq"])
        if "epoch" in m:
            epochs[(m["run"], m["stream_id"])].append(m["epoch"])
        if m["type"] == "faces":
            frames[(m["run"], m["stream_id"], m["epoch"])].append(m["frame_index"])
            assert all(split_track_id(f["track_id"])[0] == m["epoch"] for f in m["faces"])
    for key, idx in frames.items():
        assert all(a < b for a, b in itertools.pairwise(idx)), f"{key}: frames went backwards within one epoch"
    for sid, es in epochs.items():
        assert es == sorted(es), f"{sid}: an older epoch after a newer one"
    for topic, ss in seqs.items():
        assert all(a < b for a, b in itertools.pairwise(ss)), f"{topic}: seq not increasing"
