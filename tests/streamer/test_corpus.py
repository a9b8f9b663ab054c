"""The bad-input corpus: every kind of broken or odd input a hostile tester brings, each run
beside a healthy stream. The bad one ends or fails with an event naming the reason, the
healthy one completes, nothing logs a traceback, no thread is left behind, and the exit code
says what happened. The corpus is generated here with PyAV (small clips: fast)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from configs import load_settings
from configs.core.errors import ExitCode
from engine import ExpressionEngine
from streamer.cli.run import exit_code
from streamer.pipeline import Pipeline, StreamSpec
from tests.media import concat_files, group_photo_bgr, make_corrupt_file, make_face_clip, truncate_file, write_video
from tests.streamer.helpers import LIVENESS_S, OFFLINE, OFFLINE_SETS, UNWATCHED_SETS, start_streamer, validators
from tests.streamer.test_pipeline import ListPublisher

HEALTHY_FRAMES = 15
SETS = ["detector.name=haar", "stats.enabled=false", "sources.realtime=true", "sources.queue_size=64"]
LIVE_SETS = ["sources.max_reconnects=1", "sources.backoff_initial_s=0.05", "sources.backoff_max_s=0.1"]


@dataclass(frozen=True)
class Case:
    uri: str
    outcome: str
    """The bad stream's terminal event: "ended" or "failed"."""
    reason: str
    """Text its reason contains."""
    frames: int | None = None
    """Frames of it published, when known."""
    details: dict = field(default_factory=dict)
    """Items its terminal event's details hold."""
    discontinuity: bool = False


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    return path


def build_corpus(d: Path) -> dict[str, Case]:
    """Every file-like case (the RTSP ones need servers and live in their own tests)."""
    empty = d / "empty.mp4"
    empty.write_bytes(b"")
    whole_tail_index = write_video(d / "tail-index.mp4", 60, (160, 120))
    whole_head_index = write_video(d / "head-index.mp4", 60, (160, 120), faststart=True)
    photo = d / "photo.jpg"
    cv2.imwrite(str(photo), group_photo_bgr())
    (d / "a-directory").mkdir()
    later = write_video(d / "later.ts", 10, container="mpegts", start_s=10.0)
    small = write_video(d / "small.ts", 10, container="mpegts")
    bigger = write_video(d / "bigger.ts", 10, (160, 120), container="mpegts", start_s=10 / 15)  # continues small
    return {
        "zero_byte": Case(str(empty), "failed", "cannot open"),
        "truncated_index_last": Case(
            str(truncate_file(whole_tail_index, d / "cut-tail-index.mp4", 0.5)), "failed", "InvalidDataError"
        ),
        "truncated_index_first": Case(
            str(truncate_file(whole_head_index, d / "cut-head-index.mp4", 0.6)),
            "ended",
            "truncated",
            details={"truncated": True},
        ),
        "random_bytes": Case(str(make_corrupt_file(d / "random.mp4")), "failed", "cannot open"),
        "audio_only": Case(str(_audio_only(d / "tone.wav")), "failed", "no video stream"),
        "resolution_change": Case(str(concat_files(d / "resize.ts", small, bigger)), "ended", "end of file", 20),
        "tiny_2x2": Case(str(write_video(d / "tiny.mp4", 15, (2, 2))), "ended", "end of file", 15),
        "uhd_4k": Case(str(write_video(d / "uhd.mp4", 3, (3840, 2160))), "ended", "end of file", 3),
        "gray": Case(str(write_video(d / "gray.mkv", 15, codec="ffv1", pix_fmt="gray")), "ended", "end of file", 15),
        "yuvj420p": Case(str(write_video(d / "yuvj.mp4", 15, pix_fmt="yuvj420p")), "ended", "end of file", 15),
        "ten_bit": Case(str(write_video(d / "p10.mp4", 15, pix_fmt="yuv420p10le")), "ended", "end of file", 15),
        "timestamps_backwards": Case(
            str(concat_files(d / "backwards.ts", later, small)), "ended", "end of file", 20, discontinuity=True
        ),
        "timestamps_jump": Case(
            str(write_video(d / "jump.ts", 20, container="mpegts", jump_at=10, jump_s=1000.0)),
            "ended",
            "end of file",
            20,
            discontinuity=True,
        ),
        "missing_path": Case(str(d / "missing.mp4"), "failed", "No such file"),
        "directory": Case(str(d / "a-directory"), "failed", "cannot"),
        "image_file": Case(str(photo), "ended", "end of file", 1),
        "unknown_scheme": Case("foo://camera/stream", "failed", "cannot open"),
        "empty_uri": Case("", "failed", "source URI is empty"),
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, Case]]:
    d = tmp_path_factory.mktemp("corpus")
    healthy = make_face_clip(d / "healthy.mp4", seconds=HEALTHY_FRAMES / 15, fps=15)
    return healthy, build_corpus(d)


@pytest.fixture(scope="module")
def engine() -> ExpressionEngine:
    return ExpressionEngine(load_settings(OFFLINE).engine)


def _pipeline_threads() -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t.is_alive() and (t.name.startswith("source:") or t.name in ("detection", "scoring", "publisher"))
    ]


def run_beside_healthy(healthy: Path, case: Case, engine, caplog, extra_sets=()) -> None:
    """Run ``case`` beside the healthy clip in-process and check everything the corpus promises."""
    settings = load_settings(OFFLINE, [*SETS, *extra_sets])
    assert _pipeline_threads() == []
    pub = ListPublisher()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        report = Pipeline(
            settings, [StreamSpec("good", str(healthy)), StreamSpec("bad", case.uri)], pub, engine=engine
        ).run()
    assert _pipeline_threads() == [], "a pipeline thread outlived the run"
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert tracebacks == [], [r.getMessage() for r in tracebacks]

    v = validators()
    for topic, msg in pub.messages:
        v[topic.split(".")[0]].validate({**msg, "seq": 0})
    good = [m for t, m in pub.messages if t == "faces.good"]
    assert [m["frame_index"] for m in good] == list(range(HEALTHY_FRAMES))
    assert report.streams["good"].stats.outcome == "ended"

    bad_events = [m for t, m in pub.messages if t == "events.bad" and m["scope"] == "stream"]
    last = bad_events[-1]
    assert last["kind"] == case.outcome, bad_events
    assert case.reason in last["reason"], last
    for key, value in case.details.items():
        assert last["details"][key] == value, last
    assert ("discontinuity" in [e["kind"] for e in bad_events]) == case.discontinuity, bad_events
    if case.frames is not None:
        assert report.streams["bad"].stats.frames == case.frames
    expected = ExitCode.STREAM_FAILED if case.outcome == "failed" else ExitCode.OK
    assert exit_code(report) == expected


@pytest.mark.parametrize(
    "name",
    [
        "zero_byte",
        "truncated_index_last",
        "truncated_index_first",
        "random_bytes",
        "audio_only",
        "resolution_change",
        "tiny_2x2",
        "uhd_4k",
        "gray",
        "yuvj420p",
        "ten_bit",
        "timestamps_backwards",
        "timestamps_jump",
        "missing_path",
        "directory",
        "image_file",
        "unknown_scheme",
        "empty_uri",
    ],
)
def test_bad_input_beside_a_healthy_stream(name, corpus, engine, caplog):
    healthy, cases = corpus
    run_beside_healthy(healthy, cases[name], engine, caplog)


def test_rtsp_port_that_refuses(corpus, engine, caplog):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    case = Case(f"rtsp://127.0.0.1:{port}/live", "failed", "ConnectionRefusedError")
    run_beside_healthy(corpus[0], case, engine, caplog, LIVE_SETS)


@pytest.mark.rtsp
def test_rtsp_server_that_answers_401(corpus, engine, caplog, rtsp_server):
    server = rtsp_server(auth="user:secret")
    case = Case(server.url, "failed", "401", details={"auth_failed": True})
    run_beside_healthy(corpus[0], case, engine, caplog)  # the default: retry forever, except a refused login


@pytest.mark.timeout(900)
def test_the_whole_corpus_in_one_streamer_run(corpus, tmp_path):
    """The command line with every bad file at once beside the healthy clip: exit 1 (some
    streams failed, others ran), every stream reaches its terminal event, no traceback."""
    healthy, cases = corpus
    sources = [f"good={healthy}"] + [f"{name}={case.uri}" for name, case in cases.items()]
    proc = start_streamer(
        "run",
        *sources,
        "-c",
        OFFLINE,
        *OFFLINE_SETS,
        *UNWATCHED_SETS,
        "--set",
        "sources.realtime=true",
    )
    try:
        _, err = proc.communicate(timeout=3 * LIVENESS_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == ExitCode.STREAM_FAILED, err[-3000:]
    assert "Traceback" not in err
    failed = sorted(name for name, case in cases.items() if case.outcome == "failed")
    assert f"failed: {failed[0]} (" in err or f"{failed[0]} (" in err
    for name in failed:
        assert f"{name} (" in err, name
    print(f"\ncorpus: {len(cases)} bad inputs + 1 healthy in one run: {len(failed)} failed, the rest ended; exit 1")
