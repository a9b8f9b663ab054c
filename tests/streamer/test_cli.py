"""The ``streamer`` CLI: argument handling, source naming, forwarding, subscribe output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from configs.core.errors import ConfigError, ExitCode
from streamer.cli import main
from streamer.cli.run import parse_sources
from streamer.cli.subscribe import format_message
from tests.streamer.helpers import LIVENESS_S, ROOT


def test_parse_sources_names_and_dedupes():
    specs = parse_sources(["cam0=rtsp://h:554/live?x=1", "a/lobby.mp4", "b/lobby.mp4", "rtsp://u:p@h/door"])
    assert [(s.stream_id, s.uri) for s in specs] == [
        ("cam0", "rtsp://h:554/live?x=1"),
        ("lobby", "a/lobby.mp4"),
        ("lobby-2", "b/lobby.mp4"),
        ("door", "rtsp://u:p@h/door"),
    ]


def test_stream_ids_from_the_command_line_fit_the_id_rule():
    """An explicit ``ID=`` longer than 64 is refused; ids made from long names are cut to fit,
    numbered ones too."""
    with pytest.raises(ConfigError, match="at most 64"):
        parse_sources(["c" * 65 + "=a.mp4"])
    long = "l" * 80
    ids = [s.stream_id for s in parse_sources([f"a/{long}.mp4", f"b/{long}.mp4", "c" * 64 + "=x.mp4"])]
    assert ids == ["l" * 64, "l" * 62 + "-2", "c" * 64]


def test_run_without_sources_is_a_usage_error(capsys):
    assert main(["run", "--set", "detector.name=haar"]) == 2


def test_bad_override_exits_2_naming_the_key(capsys):
    assert main(["run", "x.mp4", "--set", "scheduler.max_hz=-1"]) == 2
    err = capsys.readouterr().err
    assert "scheduler.max_hz" in err and "-1" in err


def test_duplicate_explicit_stream_id_is_an_error(capsys):
    with pytest.raises(ConfigError, match="cam0 given twice"):
        parse_sources(["cam0=a.mp4", "cam0=b.mp4"])
    assert main(["run", "cam0=a.mp4", "cam0=b.mp4", "-c", "offline"]) == ExitCode.CONFIG
    assert "given twice" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["bench", "--help"], ["--engine-only", "--models", "--batch-sizes", "--streams", "--realtime"]),
        (["build-engine", "--help"], ["--backend", "same as --set engine.backend=VALUE", "--config"]),
        (["run", "--help"], ["--preview", "same as --set preview.path=VALUE", "--demo"]),
    ],
)
def test_subcommands_have_their_own_help(argv, expected, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for piece in expected:
        assert piece in out, (piece, out)


def test_build_engine_runs_on_the_offline_config(tmp_path, capsys):
    rc = main(["build-engine", "-c", "offline", "--backend", "torch", "--set", f"engine.cache_dir={tmp_path}"])
    assert rc == 0
    desc = json.loads(capsys.readouterr().out)
    assert desc["backend"] == "torch" and len(desc["fingerprint"]) == 12 and desc["artefact"] is None
    assert desc["bundle"] is None  # only an onnxruntime engine on a CPU leaves one


def test_build_engine_leaves_the_bundle_a_later_command_starts_from(tmp_path, capsys):
    from configs import load_settings
    from engine import OnnxScorer, open_scorer

    assert main(["build-engine", "-c", "offline", "--set", f"engine.cache_dir={tmp_path}"]) == 0
    desc = json.loads(capsys.readouterr().out)
    assert desc["backend"] == "onnxruntime" and desc["artefact"].endswith(".onnx")
    assert Path(desc["bundle"]).is_file()
    scorer = open_scorer(load_settings("offline", [f"engine.cache_dir={tmp_path}"]).engine)
    assert isinstance(scorer, OnnxScorer) and scorer.fingerprint == desc["fingerprint"]


def test_engine_only_bench_is_a_real_subcommand(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "--engine-only", "--models", "ExpStream-Tiny", "--batch-sizes", "1,2", "--iters", "2"]
    assert main([*argv, "--warmup", "1", "--set", f"engine.cache_dir={tmp_path}", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {(r["backend"], r["batch"]) for r in report["rows"]}
    assert rows == {("openclip-eager", 1), ("openclip-eager", 2), ("torch", 1), ("torch", 2)}
    assert "| model |" in capsys.readouterr().out


@pytest.mark.timeout(900)
def test_bench_publish_goes_out_through_the_services_secured_publisher(tmp_path, face_clip, capsys):
    """``streamer bench --publish`` publishes with the service's own assembly: its CurveZMQ
    keys apply, and an allowed subscriber receives the bench's messages."""
    from streamer.client import Subscriber
    from tests.streamer.helpers import LIVENESS_S, free_endpoint, sets

    folder, allowed = tmp_path / "keys", tmp_path / "authorized"
    assert main(["keys", str(folder), "server", "alice"]) == 0
    allowed.mkdir()
    (allowed / "alice.key").write_bytes((folder / "alice.key").read_bytes())
    endpoint = free_endpoint()
    alice = Subscriber(endpoint, server_key=folder / "server.key", client_key=folder / "alice.key_secret")
    try:
        overrides = sets(
            f"publisher.endpoint={endpoint}",
            "publisher.wait_subscribers=1",  # alice's subscription, through the CurveZMQ handshake
            "publisher.settle_s=120",
            f"security.server_secret_key={folder / 'server.key_secret'}",
            f"security.authorized_clients={allowed}",
            f"engine.cache_dir={tmp_path}",
        )
        assert main(["bench", str(face_clip), "-c", "offline", "--publish", "--warmup-s", "0", *overrides]) == 0
        got = alice.recv(LIVENESS_S)
        assert got is not None and got[1]["stream_id"] == "s00", got
    finally:
        alice.close()
    capsys.readouterr()


def test_unknown_bench_backend_is_a_config_error(capsys):
    assert main(["bench", "--engine-only", "--backends", "turbo"]) == ExitCode.CONFIG
    assert "turbo" in capsys.readouterr().err


def test_subscribe_lines():
    faces = {
        "type": "faces",
        "stream_id": "cam0",
        "frame_index": 42,
        "pts_s": 1.4,
        "latency_ms": 18.24,
        "faces": [
            {"track_id": 1, "label": "happiness", "score": 0.61, "bbox_xyxy": [100.2, 80, 180, 170]},
            {"track_id": 2, "label": None, "score": None, "bbox_xyxy": [1, 2, 3, 4]},
        ],
    }
    line = format_message("faces.cam0", faces)
    assert line.startswith("faces  cam0 #42 t=1.40s 2 face(s) 18.2ms")
    assert "| 1 happiness 0.61 [100,80,180,170]" in line and "| 2 (not scored yet)" in line
    ev = {"type": "event", "scope": "stream", "stream_id": "cam0", "kind": "failed", "reason": "boom"}
    assert format_message("events.cam0", ev) == "event  cam0 stream failed: boom"
    tev = {
        "type": "event",
        "scope": "track",
        "stream_id": "cam0",
        "kind": "ended",
        "track_id": 3,
        "frame_index": 9,
        "track_age": 8,
    }
    assert format_message("events.cam0", tev) == "event  cam0 track 3 ended at frame 9 (age 8)"


def test_subscribe_command_prints_raw_json_lines(capsys):
    import json
    import threading

    from configs.streamer import PublisherSettings
    from streamer.output.publisher import ZmqPublisher
    from tests.streamer.helpers import free_endpoint

    endpoint = free_endpoint()
    pubs = []

    def feed():  # binds, waits for the command's two subscriptions (faces.cam1, events.cam1), sends
        pub = ZmqPublisher(PublisherSettings(endpoint=endpoint, wait_subscribers=2, settle_s=60))
        pubs.append(pub)
        pub.send("faces.cam10", {"stream_id": "cam10", "type": "faces"})  # filtered out: not cam1
        for i in range(2):
            pub.send(
                "events.cam1", {"stream_id": "cam1", "type": "event", "scope": "stream", "kind": "started", "i": i}
            )

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        rc = main(["subscribe", endpoint, "--stream", "cam1", "--raw", "--count", "2", "--idle-timeout", "120"])
    finally:
        feeder.join(60)
        for pub in pubs:
            pub.close()
    out = capsys.readouterr()
    lines = [json.loads(x) for x in out.out.splitlines()]
    assert rc == 0 and [m["i"] for m in lines] == [0, 1] and all(m["stream_id"] == "cam1" for m in lines)
    assert "received 2 message(s), 0 missed" in out.err


def test_model_that_cannot_load_is_a_clear_error_with_an_offline_hint(tmp_path, capsys):
    argv = ["run", "x.mp4", "-c", "offline", "--set", "engine.model.pretrained=no-such-tag"]
    assert main([*argv, "--set", f"engine.cache_dir={tmp_path}"]) == ExitCode.MODEL
    err = capsys.readouterr().err
    assert "neither a file nor a pretrained tag" in err and "Traceback" not in err
    assert "streamer run --demo -c offline" in err


def test_subscribe_lines_for_episodes_engine_changes_and_abstentions():
    ep = {"type": "event", "scope": "episode", "stream_id": "cam0", "kind": "ended", "track_id": 1, "episode_id": 2,
          "label": "surprise", "onset_s": 12.4, "offset_s": 13.9, "duration_s": 1.5, "peak_score": 0.82,
          "reason": "dropped"}  # fmt: skip
    assert format_message("events.cam0", ep) == (
        "event  cam0 episode 2 of track 1: surprise ended at 13.90s (1.50 s, peak 0.82): dropped"
    )
    eng = {"type": "event", "scope": "engine", "stream_id": "cam0", "kind": "changed", "engine": "0123456789ab",
           "classes": ["calm", "tense"]}  # fmt: skip
    assert format_message("events.cam0", eng) == "event  cam0 engine changed to 0123456789ab: calm, tense"
    face = {"track_id": 5, "label": None, "score": None, "abstain": "too_small", "bbox_xyxy": [0, 0, 9, 9]}
    faces = {"type": "faces", "stream_id": "cam0", "frame_index": 1, "pts_s": None, "latency_ms": 1.0, "faces": [face]}
    assert "| 5 (too_small) [0,0,9,9]" in format_message("faces.cam0", faces)


def test_subscribe_state_prints_the_state_then_newer_updates(capsys):
    import threading

    from configs import load_settings
    from streamer.service.outlets import Outlets
    from tests.streamer.helpers import free_endpoint

    endpoint, snap_ep = free_endpoint(), free_endpoint()
    overrides = [f"publisher.endpoint={endpoint}", "publisher.settle_s=0", f"snapshot.endpoint={snap_ep}"]
    settings = load_settings(None, overrides)
    outlets = Outlets(settings)  # the service's publisher, state board and snapshot endpoint
    pub = outlets.publish()
    outlets.serve_snapshot()
    base = {"schema_version": 1, "type": "event", "stream_id": "cam0", "reason": None, "engine": "0123456789ab"}
    pub.send("events.cam0", {**base, "scope": "stream", "kind": "started", "details": {"codec": "h264"}})
    pub.send("events.cam0", {**base, "scope": "track", "kind": "started", "details": {}, "track_id": 4})
    done = threading.Event()

    def feed():  # faces messages until the command has printed one update
        i = 0
        while not done.is_set():
            pub.send("faces.cam0", {"type": "faces", "stream_id": "cam0", "frame_index": i, "pts_s": None,
                                    "latency_ms": 1.0, "classes": ["a"], "faces": []})  # fmt: skip
            i += 1
            done.wait(0.05)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        rc = main(["subscribe", endpoint, "--state", snap_ep, "--count", "1", "--idle-timeout", "120"])
    finally:
        done.set()
        feeder.join(60)
        outlets.close()
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert rc == 0 and lines[0].startswith("state  engine 0123456789ab")
    assert lines[1].startswith("state  cam0 h264") and lines[2].startswith("state  cam0 track 4")
    assert lines[-1].startswith("faces  cam0 #") and "received 1 update(s) after the state, 0 missed" in out.err


def test_subscribe_imports_neither_torch_nor_the_engine():
    """`streamer subscribe` is the light client side: the probe measured 8 s and ~850 MB when
    it imported torch through the publisher."""
    import subprocess
    import sys

    from tests.streamer.helpers import ROOT, free_endpoint

    heavy = ["torch", "cv2", "av", "onnxruntime", "open_clip", "numpy", "engine.engine", "configs.settings"]
    code = (
        "import json, sys\n"
        "from streamer.cli import main\n"
        f"rc = main(['subscribe', {free_endpoint()!r}, '--idle-timeout', '0.3'])\n"
        f"print(json.dumps({{'rc': rc, 'loaded': [m for m in {heavy!r} if m in sys.modules],"
        " 'peak_kb': [ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM')]}))"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.splitlines()[-1])
    assert out["rc"] == 0 and out["loaded"] == [], out
    assert "received 0 message(s)" in res.stderr
    print(f"\nstreamer subscribe: peak RSS {out['peak_kb']} kB")


EARLY_SIGTERM = """
import os, signal, sys, threading
import streamer.service.assembly as assembly

class SlowStart:
    def __init__(self, settings, specs, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the service is still being built
        threading.Event().wait(float(sys.argv[1]))
        raise SystemExit("the SIGTERM was not handled during start-up")

assembly.Service = SlowStart
from streamer.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("when", ["building the service", "loading the settings"])
def test_sigterm_during_start_up_exits_0_and_says_so(when, tmp_path):
    """SIGTERM while ``streamer run`` starts (here: while its service is built, or at once)
    used to kill it with 143 and nothing logged."""
    code = EARLY_SIGTERM
    if when == "loading the settings":
        code = code.replace("assembly.Service = SlowStart", "import configs\nconfigs.load_settings = SlowStart")
        code = code.replace("def __init__(self, settings, specs, **kwargs):", "def __init__(self, *args):")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [str(LIVENESS_S), "run", "-c", "offline", str(tmp_path / "clip.mp4")]
    res = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, (res.returncode, res.stderr[-2000:])
    assert "SIGTERM received: stopped before start-up finished" in res.stderr, res.stderr[-2000:]
