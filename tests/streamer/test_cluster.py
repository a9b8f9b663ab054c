"""The cluster's pieces without Ray: the forwarder's fence and ``seq``, the worker-side
fenced publisher over a real ZeroMQ publisher, the driver's handover messages, the
assignment, the sources file, the plan (workers, capacity, ingest address), and the socket
hooks where CurveZMQ plugs in. The whole cluster on Ray: ``test_cluster_e2e.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zmq

from configs import load_settings
from configs.cluster import ClusterSettings
from configs.core.errors import ConfigError, ExitCode
from configs.streamer import PublisherSettings
from streamer.cli import main
from streamer.cli.cluster import status_text
from streamer.cluster.assignment import Assignment
from streamer.cluster.epochs import TRACK_ID_STRIDE, cluster_track_id, split_track_id
from streamer.cluster.fencing import FencedPublisher
from streamer.cluster.forwarder import Forwarder
from streamer.cluster.handover import close_tracks, ended_event, moved_event
from streamer.cluster.plan import plan_workers, worker_capacity, worker_ingest
from streamer.cluster.sourcelist import load_sources
from streamer.net.sockets import Sockets
from streamer.output.publisher import ZmqPublisher
from streamer.output.state import StateBoard
from streamer.pipeline import NullPublisher
from tests.streamer.helpers import LIVENESS_S, Collector, free_endpoint, validators, wait_for

ENGINE = "0123456789ab"


def faces(sid: str, frame: int, track_ids: list[int]) -> dict:
    return {
        "schema_version": 1,
        "type": "faces",
        "stream_id": sid,
        "frame_index": frame,
        "pts_s": frame / 15,
        "wall_time_s": 1.0 + frame,
        "latency_ms": 1.0,
        "engine": ENGINE,
        "classes": ["happiness", "sadness"],
        "size_wh": [64, 48],
        "faces": [
            {
                "track_id": t,
                "bbox_xyxy": [1.0, 2.0, 20.0, 30.0],
                "det_score": 0.9,
                "label": None,
                "score": None,
                "probs": None,
                "smoothed_probs": None,
                "track_age": frame,
            }
            for t in track_ids
        ],
    }


def event(sid: str, scope: str, kind: str, **extra) -> dict:
    msg = {
        "schema_version": 1,
        "type": "event",
        "scope": scope,
        "kind": kind,
        "stream_id": sid,
        "wall_time_s": 1.0,
        "reason": None,
        "details": {},
        "engine": ENGINE,
    }
    msg.update(extra)
    return msg


def worker_publisher(ingest: str) -> FencedPublisher:
    """A worker's publishing stack: a real ZmqPublisher connecting to the forwarder, holding
    its first message until the forwarder's subscription arrived."""
    settings = PublisherSettings(endpoint=ingest, bind=False, wait_subscribers=1, settle_s=LIVENESS_S, linger_ms=2000)
    return FencedPublisher(ZmqPublisher(settings))


@pytest.fixture
def forwarder():
    board = StateBoard()
    fwd = Forwarder("tcp://127.0.0.1:*", free_endpoint(), observer=board.apply)
    fwd.board = board  # type: ignore[attr-defined]
    yield fwd
    fwd.close()


def check_schemas(messages) -> None:
    v = validators()
    for topic, msg in messages:
        errors = [e.message for e in v[topic.split(".", 1)[0]].iter_errors(msg)]
        assert not errors, (topic, errors, msg)


def test_forwarder_fences_stale_epochs_and_keeps_one_seq_per_topic(forwarder):
    col = Collector(forwarder.publish_endpoint)
    wait_for(lambda: forwarder.stats.subscriptions >= 1, LIVENESS_S, "the subscriber's subscription")
    a, b = worker_publisher(forwarder.ingest_endpoint), worker_publisher(forwarder.ingest_endpoint)
    try:
        forwarder.call(lambda: forwarder.set_epoch("cam0", 1))
        k1 = a.hold("cam0", 1)  # the pipeline instance of epoch 1 on worker a: "cam0@1"
        a.send(f"events.{k1}", event(k1, "stream", "started"))
        a.send(f"events.{k1}", event(k1, "track", "started", track_id=3, frame_index=0, track_age=0))
        for i in range(5):
            a.send(f"faces.{k1}", faces(k1, i, [3]))
        wait_for(lambda: len(col.of("faces.cam0")) == 5, LIVENESS_S, "epoch 1 through the forwarder")
        assert forwarder.board.snapshot()["streams"]["cam0"]["tracks"].keys() == {"3"}

        # The stream moves to b under epoch 2; a does not know yet (a stalled worker that comes back).
        forwarder.call(lambda: forwarder.set_epoch("cam0", 2))
        k2 = b.hold("cam0", 2)
        for i in range(3):
            a.send(f"faces.{k1}", faces(k1, 5 + i, [3]))
        b.send(f"events.{k2}", event(k2, "stream", "started"))
        for i in range(4):
            b.send(f"faces.{k2}", faces(k2, i, [3]))
        wait_for(lambda: len(col.of("faces.cam0")) == 9, LIVENESS_S, "epoch 2 through the forwarder")
        wait_for(lambda: forwarder.stats.fenced == 3, LIVENESS_S, "a's stale messages at the forwarder")
        b.send(f"events.{k2}", event(k2, "stream", "ended", reason="stopped"))
        assert not b.send(f"faces.{k2}", faces(k2, 99, [])) and b.fenced == 1, "the worker released epoch 2"
        b.hold("cam0", 2)  # a worker that would not: the forwarder closed epoch 2 at its terminal event
        b.send(f"faces.{k2}", faces(k2, 99, []))
        wait_for(lambda: forwarder.stats.fenced == 4, LIVENESS_S, "the message after the terminal event")
    finally:
        a.close()
        b.close()
    col.close()

    got = col.of("faces.cam0")
    assert [m["epoch"] for m in got] == [1] * 5 + [2] * 4, "no stale epoch after the move"
    assert [m["seq"] for m in got] == list(range(9)), "seq counts on across the move, per topic"
    assert [m["faces"][0]["track_id"] for m in got] == [3] * 5 + [TRACK_ID_STRIDE + 3] * 4
    assert [m["seq"] for m in col.of("events.cam0")] == [0, 1, 2, 3]
    notices = []
    while not forwarder.notices.empty():
        notices.append(forwarder.notices.get_nowait())
    assert [(n.what, n.epoch) for n in notices] == [("first", 1), ("first", 2), ("ended", 2)]
    assert notices[0].previous_s is None
    assert notices[1].previous_s is not None and notices[1].at_s >= notices[1].previous_s
    assert forwarder.terminal("cam0") == (2, "ended", "stopped") and forwarder.epoch("cam0") is None
    assert "cam0" not in forwarder.board.snapshot()["streams"]
    check_schemas(col.messages)


def test_worker_publisher_publishes_only_held_streams():
    pub = FencedPublisher(NullPublisher())
    assert pub.send("faces.cam0", faces("cam0", 0, [1])) is False and pub.fenced == 1
    key = pub.hold("cam0", 3)
    assert pub.send("faces.cam0", faces("cam0", 0, [1])) is False, "only a pipeline instance's own name passes"
    msg = faces(key, 1, [1])
    assert pub.send(f"faces.{key}", msg) and msg["stream_id"] == "cam0" and msg["epoch"] == 3
    assert msg["faces"][0]["track_id"] == 2 * TRACK_ID_STRIDE + 1
    ended = event(key, "stream", "ended", reason="removed")
    assert pub.send(f"events.{key}", ended) and pub.epochs() == {}, "the terminal event releases the instance"
    assert pub.send(f"faces.{key}", faces(key, 2, [1])) is False and pub.fenced == 3
    k1 = pub.hold("cam1", 1)
    assert pub.revoke(k1) and not pub.send(f"faces.{k1}", faces(k1, 0, []))


def test_a_stale_instance_never_publishes_as_the_new_one():
    """A stream moved back to the same worker: the old instance's leftovers (a late frame,
    its tracks' and its stream's ends) come after the new instance started. Each message is
    stamped with the epoch of the instance that produced it, so nothing of the old one goes
    out under the new epoch, frames never go backwards within an epoch, and the old
    instance's ``ended`` neither passes nor ends the new one."""
    sent: list[tuple[str, dict]] = []

    class Recorder(NullPublisher):
        def send(self, topic: str, msg: dict) -> bool:
            sent.append((topic, msg))
            return True

    pub = FencedPublisher(Recorder())
    old = pub.hold("cam0", 1)
    for i in range(3):
        pub.send(f"faces.{old}", faces(old, 150 + i, [4]))
    assert pub.revoke(old)  # the worker was lost and rejoined: its instance of epoch 1 is stale
    new = pub.hold("cam0", 2)
    pub.send(f"events.{new}", event(new, "stream", "started"))
    pub.send(f"faces.{new}", faces(new, 0, [1]))
    pub.send(f"faces.{old}", faces(old, 155, [4]))  # the old pipeline's leftovers
    pub.send(f"events.{old}", event(old, "track", "ended", track_id=4, frame_index=155, track_age=5))
    pub.send(f"events.{old}", event(old, "stream", "ended", reason="end of stream"))
    pub.send(f"faces.{new}", faces(new, 1, [1]))
    assert pub.fenced == 3 and pub.epochs() == {"cam0": 2}, "the old instance's end did not end the new one"
    frames = [(m["epoch"], m["frame_index"]) for t, m in sent if m["type"] == "faces"]
    assert frames == [(1, 150), (1, 151), (1, 152), (2, 0), (2, 1)]
    assert {t for t, _ in sent} == {"faces.cam0", "events.cam0"} and {m["stream_id"] for _, m in sent} == {"cam0"}
    assert not [m for _, m in sent if m["type"] == "event" and m["kind"] == "ended"]


def test_forwarder_keeps_a_workers_seq_gap_visible(forwarder):
    """A message lost between a worker and the forwarder stays a gap for subscribers."""
    col = Collector(forwarder.publish_endpoint)
    wait_for(lambda: forwarder.stats.subscriptions >= 1, LIVENESS_S, "the subscriber's subscription")
    ctx = zmq.Context()
    raw = ctx.socket(zmq.XPUB)
    raw.connect(forwarder.ingest_endpoint)
    assert raw.poll(int(LIVENESS_S * 1000)) and raw.recv()[:1] == b"\x01"
    forwarder.call(lambda: forwarder.set_epoch("cam0", 1))
    for seq in (0, 1, 4, 5):
        raw.send_multipart([b"faces.cam0", json.dumps({**faces("cam0", seq, []), "seq": seq, "epoch": 1}).encode()])
    raw.send_multipart([b"faces.cam0", b"not json"])
    wait_for(lambda: len(col.of("faces.cam0")) == 4 and forwarder.stats.malformed == 1, LIVENESS_S, "4 messages")
    raw.close(0)
    ctx.term()
    col.close()
    assert [m["seq"] for m in col.of("faces.cam0")] == [0, 1, 4, 5]
    assert forwarder.stats.ingest_gaps == 2


def test_forwarder_sockets_are_made_by_the_drivers_sockets():
    """Both forwarder sockets come from the ``Sockets`` it is given (the driver's one context
    and its CurveZMQ server role), named by their settings."""

    class Recording(Sockets):
        def __init__(self) -> None:
            super().__init__()
            self.made: list[tuple[int, str]] = []

        def server(self, kind, endpoint, **kw):
            self.made.append((kind, kw["what"]))
            return super().server(kind, endpoint, **kw)

    with Recording() as sockets:
        fwd = Forwarder("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", sockets)
        fwd.close()
    assert sorted(sockets.made) == sorted([(zmq.XSUB, "cluster.ingest_endpoint"), (zmq.XPUB, "publisher.endpoint")])


def test_handover_messages_end_the_lost_epoch_and_name_the_move():
    board = StateBoard()
    tid = cluster_track_id(2, 5)
    board.apply("events.cam0", {**event("cam0", "stream", "started"), "seq": 0, "epoch": 2})
    board.apply(
        "events.cam0",
        {**event("cam0", "track", "started", track_id=tid, frame_index=3, track_age=0), "seq": 1, "epoch": 2},
    )
    episode = event(
        "cam0",
        "episode",
        "started",
        track_id=tid,
        episode_id=1,
        label="happiness",
        onset_s=1.0,
        offset_s=None,
        duration_s=None,
        peak_score=0.8,
        peak_time_s=1.2,
        mean_probs=[0.8, 0.2],
        observations=2,
    )
    board.apply("events.cam0", {**episode, "seq": 2, "epoch": 2})
    board.apply("faces.cam0", {**faces("cam0", 9, [tid]), "seq": 0, "epoch": 2})
    stream = board.snapshot()["streams"]["cam0"]
    out = close_tracks(stream, "cam0", 2, ENGINE, "worker_lost", now_s=5.0)
    out.append(moved_event("cam0", ENGINE, "w0", "w1", 3, "worker w0 gone", now_s=5.0))
    out.append(moved_event("cam0", ENGINE, "w1", None, None, "worker w1 lost", now_s=6.0))
    out.append(ended_event("cam0", ENGINE, 3, "removed", now_s=7.0))
    assert [(m["scope"], m["kind"]) for _, m in out] == [
        ("episode", "ended"),
        ("track", "ended"),
        ("stream", "moved"),
        ("stream", "moved"),
        ("stream", "ended"),
    ]
    assert out[1][1]["track_id"] == tid and out[1][1]["frame_index"] == 9 and out[1][1]["epoch"] == 2
    assert out[2][1]["details"] == {"from": "w0", "to": "w1", "epoch": 3} and out[2][1]["epoch"] == 3
    assert "epoch" not in out[3][1]
    for seq, (topic, msg) in enumerate(out):
        msg["seq"] = 10 + seq
        board.apply(topic, msg)
    check_schemas(out)
    assert "cam0" not in board.snapshot()["streams"]


def test_track_ids_are_unique_per_stream_across_epochs():
    ids = {cluster_track_id(e, t) for e in (1, 2, 3) for t in (0, 1, 2**32 - 1)}
    assert len(ids) == 9 and max(ids) < 2**53
    assert all(split_track_id(cluster_track_id(e, t)) == (e, t) for e in (1, 7) for t in (0, 9))
    with pytest.raises(ValueError):
        cluster_track_id(0, 1)


def test_assignment_spreads_by_capacity_and_counts_epochs():
    a = Assignment()
    for w in ("w0", "w1", "w2"):
        a.add_worker(w, 2)
    for i in range(5):
        a.add_source(f"cam{i}", "x.mp4")
    a.add_source("big", "y.mp4", weight=2)
    placed = {sid: a.place(sid) for sid in a.pending()}
    assert placed["big"] is None, "no worker has 2 units left"
    assert sorted(a.load(w) for w in ("w0", "w1", "w2")) == [1, 2, 2]
    with pytest.raises(ConfigError, match="in use"):
        a.add_source("cam0", "z.mp4")
    victim = a.sources["cam0"].worker
    moved, removed = a.drop_worker(victim, "gone")
    assert "cam0" in moved and removed == [] and a.sources["cam0"].displaced == "gone"
    assert len(moved) == 2 and [a.place(sid) for sid in moved][1] is None, "one unit left: the second one waits"
    a.add_worker("w3", 2)  # a replacement
    assert a.place(a.pending()[0]) == ("w3", 2)
    assert a.sources["cam0"].epoch == 2
    # A terminal event of a stale epoch does not finish the current one.
    assert not a.finish("cam0", 1, "ended", None) and a.sources["cam0"].active
    assert a.finish("cam0", 2, "failed", "corrupt") and a.sources["cam0"].state == "failed"
    a.removing("cam1")
    assert a.sources["cam1"].state == "removing"
    assert a.finish("cam1", a.sources["cam1"].epoch, "ended", "removed") and a.sources["cam1"].state == "removed"
    with pytest.raises(ConfigError, match="no running stream"):
        a.removing("cam1")
    src = a.add_source("cam1", "again.mp4")
    assert src.epoch == 1 and src.displaced is None, "a re-added id keeps counting epochs"


def test_sources_file(tmp_path: Path):
    f = tmp_path / "sources.yaml"
    f.write_text("sources:\n  door: rtsp://h/live\n  lobby: {uri: clips/lobby.mp4, weight: 2}\n")
    got = load_sources(f)
    assert [(s.stream_id, s.uri, s.weight) for s in got] == [
        ("door", "rtsp://h/live", 1),
        ("lobby", str(tmp_path / "clips" / "lobby.mp4"), 2),
    ]
    for text, error in [
        ("sources:\n  door: {uri: x, wieght: 2}\n", "sources.door.wieght: unknown key"),
        ("sources:\n  'bad id': x.mp4\n", "sources.bad id: a stream id"),
        ('sources:\n  "cam0\\n": x.mp4\n', "a stream id uses letters"),
        (f"sources:\n  {'c' * 65}: x.mp4\n", "at most 64"),
        ("sources:\n  door: {weight: 2}\n", "sources.door.uri"),
        ("cameras: {}\n", "cameras: unknown key"),
    ]:
        f.write_text(text)
        with pytest.raises(ConfigError, match=error):
            load_sources(f)
    with pytest.raises(ConfigError, match="not found"):
        load_sources(tmp_path / "missing.yaml")


def test_plan_workers_capacity_and_ingest(tmp_path: Path):
    assert plan_workers(ClusterSettings(worker_cpus=2), "cpu", [{"CPU": 7.0}]) == (3, {"num_cpus": 2.0, "num_gpus": 0})
    assert plan_workers(ClusterSettings(), "auto", [{"CPU": 64.0, "GPU": 4.0}])[0] == 4
    assert plan_workers(ClusterSettings(workers=2), "auto", [{"CPU": 64.0}])[0] == 2
    with pytest.raises(ConfigError, match="no GPU"):
        plan_workers(ClusterSettings(), "cuda", [{"CPU": 8.0}])
    with pytest.raises(ConfigError, match="room for one"):
        plan_workers(ClusterSettings(worker_cpus=4), "cpu", [{"CPU": 2.0}, {"CPU": 3.0}])

    report = tmp_path / "sweep.json"
    report.write_text(json.dumps({"sweep": {"1": {"max_realtime_streams": 12}, "4": {"max_realtime_streams": 7}}}))
    assert worker_capacity(ClusterSettings(capacity_report=str(report))) == 7
    assert worker_capacity(ClusterSettings(streams_per_worker=5)) == 5
    with pytest.raises(ConfigError, match="capacity_faces: 16 is not in the report's sweep"):
        worker_capacity(ClusterSettings(capacity_report=str(report), capacity_faces=16))
    assert worker_ingest("tcp://0.0.0.0:5560", "head.lan", "10.0.0.2") == "tcp://head.lan:5560"
    with pytest.raises(ConfigError, match="heartbeat_timeout_s"):
        load_settings(None, ["cluster.heartbeat_timeout_s=1", "cluster.heartbeat_interval_s=2"])
    with pytest.raises(ConfigError, match=r"cluster\.ingest_endpoint"):
        load_settings(None, ["cluster.ingest_endpoint=ipc:///tmp/x"])


def test_plan_workers_counts_gpus_node_by_node():
    """Workers never span nodes: capacity is counted per node, in CPUs and GPUs (fractions too)."""
    two_nodes = [{"CPU": 16.0, "GPU": 1.5}, {"CPU": 16.0, "GPU": 1.5}]
    assert plan_workers(ClusterSettings(worker_gpus=1), "auto", two_nodes) == (2, {"num_cpus": 2.0, "num_gpus": 1})
    assert plan_workers(ClusterSettings(worker_gpus=0.5), "auto", two_nodes)[0] == 6
    assert plan_workers(ClusterSettings(worker_gpus=0.1), "auto", [{"CPU": 64.0, "GPU": 1.0}])[0] == 10
    # CPUs bind where they are scarcer: 2 GPUs but 3 CPUs hold one 2-CPU worker
    assert plan_workers(ClusterSettings(worker_gpus=1), "auto", [{"CPU": 3.0, "GPU": 2.0}])[0] == 1
    # a node without GPUs hosts no GPU worker; an engine on the CPU ignores GPUs
    assert plan_workers(ClusterSettings(worker_gpus=1), "auto", [{"CPU": 64.0}, {"CPU": 4.0, "GPU": 1.0}])[0] == 1
    assert plan_workers(ClusterSettings(worker_gpus=1), "cpu", [{"CPU": 8.0, "GPU": 4.0}])[0] == 4
    with pytest.raises(ConfigError, match="room for one"):
        plan_workers(ClusterSettings(worker_gpus=1), "auto", [{"CPU": 1.0, "GPU": 1.0}, {"CPU": 8.0, "GPU": 0.5}])


def test_cluster_command_refuses_what_it_cannot_run(tmp_path: Path, capsys):
    """Errors found before Ray starts: exit 2 with the reason."""
    src = tmp_path / "sources.yaml"
    src.write_text("sources:\n  cam0: clip.mp4\n")
    cases = [
        (["cluster", "-c", "offline"], "no sources"),
        (["cluster", "-c", "offline", "--sources", str(tmp_path / "nope.yaml")], "not found"),
        (["cluster", "-c", "offline", "--sources", str(src), "--set", "publisher.kind=jsonl"], "one bound ZeroMQ"),
        (["cluster", "-c", "offline", "--sources", str(src), "--set", "preview.path=x.mp4"], "preview.path"),
        (["cluster", "status", "-c", "offline"], "control.endpoint"),
    ]
    for argv, error in cases:
        assert main(argv) == ExitCode.CONFIG, argv
        assert error in capsys.readouterr().err, argv


def test_cluster_status_text():
    reply = {
        "endpoint": "tcp://10.0.0.2:5556",
        "engine": ENGINE,
        "capacity": 3,
        "workers": [
            {"id": "w0", "state": "ready", "node_ip": "10.0.0.3", "pid": 41, "load": 2, "capacity": 3,
             "cpu_percent": 150.0, "streams": ["cam0", "cam1"], "fps": {"cam0": 15.0, "cam1": 14.9}, "cause": None},
            {"id": "w1", "state": "dead", "node_ip": "10.0.0.4", "pid": 42, "load": 0, "capacity": 3,
             "cpu_percent": None, "streams": [], "fps": {}, "cause": "ActorDiedError: gone"},
        ],
        "sources": {"cam0": {"state": "assigned"}, "cam1": {"state": "assigned"}, "cam2": {"state": "pending"}},
        "moves": [{"stream": "cam1", "from": "w1", "to": "w0", "epoch": 2, "at": 5.0, "gap_s": 0.6, "cause": "x"}],
        "forwarder": {"forwarded": 10, "fenced": 1, "ingest_gaps": 0, "subscriptions": 2},
    }  # fmt: skip
    text = status_text(reply)
    assert "cam0 (15.0), cam1 (14.9)" in text and "[ActorDiedError: gone]" in text
    assert "pending: cam2" in text and "moved cam1: w1 -> w0 epoch 2" in text and "1 fenced" in text


def test_the_cluster_path_with_curve_keys(tmp_path):
    """The driver's forwarder as a CurveZMQ server (ingest and publish side), a worker's
    publisher as a CurveZMQ client with its own key: an allowed worker's messages reach an
    allowed subscriber; a worker whose key is not allowed gets nothing through."""
    from streamer.net.security import secure_client

    folder, allowed = tmp_path / "keys", tmp_path / "authorized"
    assert main(["keys", str(folder), "driver", "worker", "viewer", "intruder"]) == 0
    allowed.mkdir()
    for name in ("worker", "viewer"):
        (allowed / f"{name}.key").write_bytes((folder / f"{name}.key").read_bytes())

    def settings(client: str):
        return load_settings(
            None,
            [
                f"security.server_secret_key={folder / 'driver.key_secret'}",
                f"security.authorized_clients={allowed}",
                f"security.client_secret_key={folder / client}.key_secret",
                f"security.server_public_key={folder / 'driver.key'}",
            ],
        )

    driver = Sockets(settings("worker").security)  # the driver's context: its authenticator, its sockets
    fwd = Forwarder("tcp://127.0.0.1:*", free_endpoint(), driver)
    ctx = zmq.Context()  # the viewer's
    sub = ctx.socket(zmq.SUB)
    secure_client(sub, folder / "driver.key", folder / "viewer.key_secret")
    sub.setsockopt_string(zmq.SUBSCRIBE, "")
    sub.connect(fwd.publish_endpoint)
    wait_for(lambda: fwd.stats.subscriptions >= 1, LIVENESS_S, "the allowed viewer's subscription")
    workers: list[Sockets] = []  # each worker process has its own

    def publisher(client: str, wait: bool) -> FencedPublisher:
        ps = PublisherSettings(
            endpoint=fwd.ingest_endpoint, bind=False, wait_subscribers=int(wait), settle_s=LIVENESS_S if wait else 0
        )
        workers.append(Sockets(settings(client).security, serve=False))
        return FencedPublisher(ZmqPublisher(ps, workers[-1], client=True))

    intruder = publisher("intruder", wait=False)  # never gets the forwarder's subscription
    worker = publisher("worker", wait=True)
    try:
        fwd.call(lambda: fwd.set_epoch("cam0", 1))
        keys = [pub.hold("cam0", 1) for pub in (intruder, worker)]
        intruder.send(f"faces.{keys[0]}", faces(keys[0], 0, [6]))
        worker.send(f"faces.{keys[1]}", faces(keys[1], 0, [3]))
        assert sub.poll(int(LIVENESS_S * 1000)), "the allowed worker's message reached the viewer"
        got = [json.loads(sub.recv_multipart()[1])]
        while sub.poll(500):
            got.append(json.loads(sub.recv_multipart()[1]))
    finally:
        intruder.close()
        worker.close()
        for w in workers:
            w.close()
        sub.close(0)
        fwd.close()
        driver.close()
        ctx.term()
    assert [m["faces"][0]["track_id"] for m in got] == [3]
