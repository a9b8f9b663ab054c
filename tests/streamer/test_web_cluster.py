"""``streamer cluster --web`` on a local Ray: the driver's page lists every stream of every
worker with the worker serving it and its epoch, and a stream whose worker is killed moves
on the page (new worker, next epoch, the ``moved`` event in the feed)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import urllib.request
from typing import Any

import pytest

from streamer.net.endpoints import request
from tests.streamer.helpers import LIVENESS_S, OFFLINE, ROOT, Collector, free_endpoint, sets, streamer_cmd, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

START_S = 3 * LIVENESS_S
"""Ray and two workers loading their engines at once on two busy cores."""


def page(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=LIVENESS_S) as r:
        return json.loads(r.read())


def test_the_drivers_page_follows_a_moved_stream(face_clip, tmp_path):
    sources = tmp_path / "sources.yaml"
    sources.write_text(f"sources:\n  cam0: {face_clip}\n  cam1: {face_clip}\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint, control = free_endpoint(), free_endpoint()
    col = Collector(endpoint)
    args = sets(
        "detector.name=haar",
        "sources.loop=true",
        "sources.realtime=true",
        "pipeline.torch_threads=1",
        "publisher.wait_subscribers=1",
        "publisher.settle_s=120",
        f"publisher.endpoint={endpoint}",
        f"control.endpoint={control}",
        "cluster.local_cpus=3",
        "cluster.workers=2",
        "cluster.worker_cpus=1",
        "cluster.streams_per_worker=2",
        "cluster.ingest_endpoint=tcp://127.0.0.1:*",
        "cluster.heartbeat_timeout_s=10",
        "cluster.lost_kill_s=1000",
    )
    log = tmp_path / "driver.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            streamer_cmd("cluster", "-c", OFFLINE, "--sources", str(sources), *args, "--web", str(port)),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def placed() -> dict[str, Any] | None:
            try:
                streams = page(port)["streams"]
            except OSError:
                return None
            ok = all(
                streams.get(s, {}).get("state") == "running" and streams[s].get("worker") for s in ("cam0", "cam1")
            )
            return streams if ok else None

        wait_for(lambda: placed() is not None, START_S, f"both streams running on the page\n{log.read_text()[-3000:]}")
        before = placed()
        assert before is not None and {before[s]["epoch"] for s in ("cam0", "cam1")} == {1}
        assert page(port)["pictures"] is None  # pictures stay with the workers; the page says so
        victim = before["cam0"]["worker"]
        st = request(control, {"op": "status"}, LIVENESS_S)
        pid = next(w["pid"] for w in st["workers"] if w["id"] == victim)
        os.kill(pid, signal.SIGKILL)

        def moved() -> bool:
            doc = page(port)
            cam0 = doc["streams"].get("cam0", {})
            return (
                cam0.get("worker") not in (None, victim) and cam0.get("epoch") == 2 and cam0.get("state") == "running"
            )

        wait_for(moved, LIVENESS_S + 60, "cam0 on another worker, epoch 2, on the page")
        events = page(port)["events"]
        move = next(e for e in events if e["kind"] == "moved" and e["stream_id"] == "cam0" and e["to"])
        assert move["from"] == victim and move["epoch"] == 2 and victim in move["reason"]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(LIVENESS_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with contextlib.suppress(ProcessLookupError):  # what the driver's local Ray left behind
            os.killpg(proc.pid, signal.SIGKILL)
        col.close()
