"""A driver that can die: ``streamer cluster`` on a Ray that outlives it (a ``ray start
--head`` of ``RayNodes``, joined with ``cluster.address``), the driver SIGKILLed (its own
process group: not the Ray head) and restarted on the same endpoints (the ingest's too, as
in production), twice, with a subscriber connected throughout (offline engine, Haar
detector, looped realtime clips, in a network namespace of its own: ``netns.py``).

The driver keeps its state in Ray's GCS key-value store (``streamer.cluster.memory``), so
after each restart: every stream is served again, under a new ``run``, each stream's epochs
above any before and each topic's ``seq`` above any before (no ``(topic, seq)`` repeats, even
ignoring the run), no ``(stream, epoch, frame_index)`` repeats, the client counts one restart
per kill and no duplicate, and the old driver's workers were ended by Ray with their driver;
a second driver started on the same key while the first runs refuses to start.
The subscriber's gap per stream (its last faces message before the kill to its first after)
is printed; docs/deployment.md has the figures. Every wait is on messages or on the driver's
status.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import signal
import threading
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from streamer.client import Subscriber
from tests.streamer.clusterkit import Cluster, assert_in_order, start_cluster, stop_cluster
from tests.streamer.helpers import LIVENESS_S, free_endpoint, wait_for
from tests.streamer.raynodes import RayNodes

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.timeout(1200)]

SOURCES = ["r1", "r2", "r3"]
START_S = 3 * LIVENESS_S
RESTARTS = 2
SETTINGS = (
    "cluster.worker_cpus=1",  # two workers on the head's two CPUs
    "cluster.heartbeat_interval_s=1",
    "cluster.heartbeat_timeout_s=10",  # a busy machine's slow heartbeat is no loss
    "cluster.rebalance=false",
)


def alive(pid: int) -> bool:
    """``pid`` runs (a zombie does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def milestones(log: Path, since: float) -> list[str]:
    """The restarted driver's first line and its steps to serving, timed from the kill
    (``since``: wall-clock seconds), from its log's timestamps."""
    lines = log.read_text(errors="replace").splitlines()
    steps = re.compile(r"previous driver|worker w\d+ (starting|ready)|cluster: \d+ worker|resumed|: no message|waited")
    out = []
    for i, line in enumerate(lines):
        try:
            at = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        except ValueError:
            continue
        if i == 0 or steps.search(line) or not out:
            out.append(f"  +{at - since:5.1f} s  {line[24:150]}")
    return out


def faces_of_every_stream(c: Cluster, n: int, old_runs: frozenset[str] = frozenset()) -> bool:
    """Every stream has ``n`` faces messages of a run not in ``old_runs``."""
    count: dict[str, int] = defaultdict(int)
    for t, m in list(c.col.messages):
        if t.startswith("faces.") and m["run"] not in old_runs:
            count[m["stream_id"]] += 1
    return all(count[s] >= n for s in SOURCES) or c.proc.poll() is not None


def test_a_killed_driver_goes_on_with_its_epochs_and_seq(tmp_path: Path, face_clip: Path):
    got: list[tuple[str, dict[str, Any]]] = []
    stop = threading.Event()
    statuses, kills = [], []
    with RayNodes(tmp_path) as ray_nodes:
        address = ray_nodes.start_head(cpus=2)
        # One ingest address for every driver, as in production (tcp://*:5560): the dead
        # driver's workers, while Ray has not ended them yet, reach the new forwarder (fenced).
        settings = (f"cluster.address={address}", f"cluster.ingest_endpoint={free_endpoint()}", *SETTINGS)
        c = start_cluster(tmp_path, SOURCES, face_clip, *settings, env=ray_nodes.env)
        sub = Subscriber(c.endpoint)

        def read() -> None:
            while not stop.is_set():
                if (m := sub.recv(0.1)) is not None:
                    got.append(m)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            wait_for(lambda: faces_of_every_stream(c, 10), START_S, "faces of every source")
            # A second driver on the same Ray and key (a sharding mistake, or a supervisor that
            # did not wait) would hand out the same epochs: it refuses to start.
            (tmp_path / "twin").mkdir()
            twin = start_cluster(tmp_path / "twin", SOURCES, face_clip, *settings, env=ray_nodes.env)
            try:
                assert twin.proc.wait(LIVENESS_S) == 2, twin.tail()
                assert "still runs under that key" in twin.tail(), twin.tail()
            finally:
                stop_cluster(twin)
            for n in range(1, RESTARTS + 1):
                assert c.proc.poll() is None, c.tail()
                statuses.append(c.status())
                assert len(statuses[-1]["workers"]) == 2, statuses[-1]["workers"]
                old_pids = [w["pid"] for w in statuses[-1]["workers"]]
                old_run = c.col.messages[-1][1]["run"]

                os.killpg(c.proc.pid, signal.SIGKILL)  # the driver alone: the Ray head is RayNodes'
                kills.append((time.monotonic(), time.time(), old_run))
                c.proc.wait()
                c.earlier.append(c.proc)
                again = start_cluster(tmp_path, SOURCES, face_clip, *settings, again=c, env=ray_nodes.env)
                c.proc, c.log = again.proc, again.log

                old_runs = frozenset(k[2] for k in kills)
                served = functools.partial(faces_of_every_stream, c, 10, old_runs)
                wait_for(served, START_S, "every stream served again")
                assert c.proc.poll() is None, c.tail()
                # Ray ended the dead driver's workers (its actors) with it.
                wait_for(lambda pids=old_pids: not any(alive(p) for p in pids), LIVENESS_S, "the old workers gone")
                assert "left epochs and seq in the Ray cluster" in c.log.read_text(), c.tail()
                print(f"restart {n}, from the kill:", *milestones(c.log, kills[-1][1]), sep="\n")
                c.log = c.log.rename(tmp_path / f"driver-restart{n}.log")
            statuses.append(c.status())
            print("the last driver's forwarder fenced", statuses[-1]["forwarder"]["fenced"], "message(s)")
            c.proc.send_signal(signal.SIGTERM)
            assert c.proc.wait(LIVENESS_S) == 0, c.tail()
            time.sleep(1.0)  # the last messages on their way to the subscribers
        finally:
            stop.set()
            reader.join()
            sub.close()
            stop_cluster(c)

    messages = list(c.col.messages)
    assert_in_order(messages)
    runs = list(dict.fromkeys(m["run"] for _, m in messages))
    assert len(runs) == RESTARTS + 1 and runs[:-1] == [k[2] for k in kills], runs
    by_run = [[(t, m) for t, m in messages if m["run"] == r] for r in runs]
    assert messages == [x for part in by_run for x in part], "nothing of a killed driver's run after its restart"

    for old, new in itertools.pairwise(by_run):
        for sid in SOURCES:  # epochs go on above any before
            old_e = max(m["epoch"] for _, m in old if m.get("stream_id") == sid and "epoch" in m)
            new_e = min(m["epoch"] for _, m in new if m.get("stream_id") == sid and "epoch" in m)
            assert new_e > old_e, (sid, old_e, new_e)
        for topic in {t for t, _ in new} & {t for t, _ in old}:  # seq goes on above any before
            assert max(m["seq"] for t, m in old if t == topic) < min(m["seq"] for t, m in new if t == topic), topic
    for before, after in itertools.pairwise(statuses):
        assert all(after["sources"][s]["epoch"] > before["sources"][s]["epoch"] for s in SOURCES)
    seqs = [(t, m["seq"]) for t, m in messages]
    assert len(set(seqs)) == len(seqs), "a (topic, seq) repeated across a restart"
    frames = [(m["stream_id"], m["epoch"], m["frame_index"]) for _, m in messages if m["type"] == "faces"]
    assert len(set(frames)) == len(frames), "a (stream, epoch, frame_index) repeated"
    assert sub.restarts == RESTARTS and sub.duplicates == 0, (sub.restarts, sub.duplicates)
    known = [(m["run"], t, m["seq"]) for t, m in got]
    assert len(set(known)) == len(known)

    timed = [(at, m) for at, topic, m in list(c.col.timed) if topic.startswith("faces.")]
    for n, (killed_at, _, old_run) in enumerate(kills, 1):
        new_run = runs[runs.index(old_run) + 1]
        first_any = min(at for at, m in timed if m["run"] == new_run)
        print(
            f"restart {n}: the first faces message of the restarted driver {first_any - killed_at:.2f} s after the kill"
        )
        for sid in SOURCES:
            old = [(at, m["epoch"]) for at, m in timed if m["stream_id"] == sid and m["run"] == old_run]
            new = [(at, m["epoch"]) for at, m in timed if m["stream_id"] == sid and m["run"] == new_run]
            gap = min(new)[0] - max(old)[0]
            print(f"restart {n}, stream {sid}: no faces for {gap:.2f} s (epoch {max(old)[1]} -> {min(new)[1]})")
        last = {t: m["seq"] for t, m in messages if m["run"] == old_run}
        first = {t: m["seq"] for t, m in reversed(messages) if m["run"] == new_run}
        jumps = {t: first[t] - last[t] for t in sorted(last.keys() & first.keys())}
        print(f"restart {n}: seq jump per topic:", jumps)
