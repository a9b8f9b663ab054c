"""Prometheus metrics and health endpoints: scraped during and after real runs, the series
agree with the run's own report; ``/readyz`` turns ready only once the engine is loaded and
every source has started or failed."""

from __future__ import annotations

import signal
import socket
import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from configs import load_settings
from configs.core.errors import ExitCode
from streamer.cli.run import exit_code
from streamer.net.endpoints import answer
from streamer.pipeline import Pipeline, StreamSpec
from streamer.service.control import Controller
from streamer.service.metrics import MetricsServer
from tests.streamer.helpers import LIVENESS_S, OFFLINE, OFFLINE_SETS, UNWATCHED_SETS, start_streamer, wait_for
from tests.streamer.test_pipeline import ListPublisher


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=LIVENESS_S) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: ``(name, sorted labels) -> value``."""
    status, text = get(f"{base}/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_agree_with_the_report_and_readiness_follows_engine_and_sources(face_clip, tmp_path):
    settings = load_settings(
        OFFLINE,
        ["detector.name=haar", "stats.enabled=false", "metrics.port=0", "sources.loop=true", "scheduler.max_hz=30"],
    )
    server = MetricsServer(settings.metrics)
    try:
        base = server.url
        assert get(f"{base}/healthz") == (200, "ok\n")
        assert get(f"{base}/readyz") == (503, "engine loading\n")
        before = scrape(base)
        assert before[("expstream_engine_ready", ())] == 0 and before[("process_resident_memory_bytes", ())] > 0

        pub = ListPublisher()
        specs = [StreamSpec("cam", str(face_clip)), StreamSpec("gone", str(tmp_path / "missing.mp4"))]
        pipe = Pipeline(settings, specs, pub)  # loads the engine
        server.attach(pipe)
        status, why = get(f"{base}/readyz")
        assert status == 503 and why.strip() == "waiting for source(s): cam, gone"

        stop = threading.Event()
        report: list = []
        runner = threading.Thread(target=lambda: report.append(pipe.run(stop)))
        runner.start()
        try:
            wait_for(lambda: get(f"{base}/readyz")[0] == 200, LIVENESS_S, "/readyz to turn ready")
            wait_for(lambda: pipe.stats.stream("cam").scored >= 3, LIVENESS_S, "crops scored")
            during = scrape(base)
            assert during[("expstream_frames_total", (("stream", "cam"),))] > 0
            assert during[("expstream_stream_state", (("state", "running"), ("stream", "cam")))] == 1
            assert during[("expstream_stream_state", (("state", "failed"), ("stream", "gone")))] == 1
            assert during[("expstream_engine_ready", ())] == 1
        finally:
            stop.set()
            runner.join()
        snap = report[0]
        after = scrape(base)
    finally:
        server.close()

    def per_stream(name: str, sid: str) -> float:
        return after[(f"expstream_{name}_total", (("stream", sid),))]

    cam = snap.streams["cam"]
    assert per_stream("frames", "cam") == cam.stats.frames > 0
    assert per_stream("faces", "cam") == cam.stats.faces > 0
    assert per_stream("crops_scored", "cam") == cam.stats.scored > 0
    assert per_stream("frames_decoded", "cam") == cam.source.frames_decoded
    assert per_stream("source_frames_dropped", "cam") == cam.source.frames_dropped
    assert per_stream("frames", "gone") == 0
    assert after[("expstream_stream_state", (("state", "ended"), ("stream", "cam")))] == 1
    assert after[("expstream_messages_published_total", ())] == pub.stats.sent == snap.published
    for stage, n in snap.drops.items():
        assert after[("expstream_dropped_total", (("stage", stage),))] == n
    for stage, timing in snap.stages.items():
        assert after[("expstream_stage_seconds_count", (("stage", stage),))] == timing.calls
        assert after[("expstream_stage_seconds_sum", (("stage", stage),))] == pytest.approx(timing.total_s)
    engine = snap.stages["engine"]
    assert after[("expstream_engine_batch_crops_count", ())] == engine.calls
    assert after[("expstream_engine_batch_crops_sum", ())] == engine.items == cam.stats.scored
    assert after[("expstream_ticks_total", ())] == snap.ticks


def test_a_busy_metrics_port_is_a_config_error():
    from configs.core.errors import ConfigError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        settings = load_settings(None, [f"metrics.port={port}"]).metrics
        with pytest.raises(ConfigError, match=r"metrics\.host/metrics\.port: cannot listen on 127\.0\.0\.1"):
            MetricsServer(settings)


@pytest.mark.timeout(900)
def test_streamer_run_serves_metrics_and_health(face_clip):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    proc = start_streamer(
        "run",
        f"cam0={face_clip}",
        "-c",
        OFFLINE,
        *OFFLINE_SETS,
        *UNWATCHED_SETS,
        "--set",
        "sources.loop=true",
        "--set",
        "metrics.enabled=true",
        "--set",
        f"metrics.port={port}",
    )
    try:

        def ready() -> bool:
            try:
                return get(f"{base}/readyz")[0] == 200
            except OSError:  # not listening yet
                return False

        wait_for(ready, 3 * LIVENESS_S, "/readyz")
        wait_for(
            lambda: scrape(base).get(("expstream_frames_total", (("stream", "cam0"),)), 0) > 0, LIVENESS_S, "frames"
        )
        assert get(f"{base}/healthz")[0] == 200
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=LIVENESS_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert f"metrics on http://127.0.0.1:{port}/metrics" in err


def test_streams_added_at_run_time_are_answered_honestly_reported_and_leave_when_removed(face_clip, tmp_path):
    """``add_source`` answers once the source opened or failed, with the reason (hostile
    sources included); every added stream, failed or not, is in /metrics and /readyz; a
    removed one leaves; the exit code follows the start-up streams only."""
    settings = load_settings(
        OFFLINE,
        ["detector.name=haar", "stats.enabled=false", "metrics.port=0", "sources.loop=true", "scheduler.max_hz=30"],
    )
    (tmp_path / "folder").mkdir()
    hostile = {
        "passwd": ("file:///etc/passwd", "Invalid data"),
        "zero": ("/dev/zero", "Invalid data"),
        "random": ("/dev/urandom", "Invalid data"),
        "folder": (str(tmp_path / "folder"), "Is a directory"),
        "missing": (str(tmp_path / "missing.mp4"), "No such file"),
    }
    server = MetricsServer(settings.metrics)
    pipe = Pipeline(settings, [StreamSpec("cam", str(face_clip))], ListPublisher(), keep_alive=True)
    server.attach(pipe)
    control = Controller(pipe)
    base, stop, report = server.url, threading.Event(), []
    runner = threading.Thread(target=lambda: report.append(pipe.run(stop)))
    runner.start()
    try:
        wait_for(lambda: pipe.stats.stream("cam").started, LIVENESS_S, "the start-up stream to start")
        added = answer(control, {"op": "add_source", "id": "extra", "uri": str(face_clip)})
        assert added == {"ok": True, "stream": "extra", "state": "running", "streams": ["cam", "extra"]}
        for sid, (uri, why) in hostile.items():
            reply = answer(control, {"op": "add_source", "id": sid, "uri": uri})
            assert reply["ok"] is False, reply
            assert reply["error"].startswith(f"add_source {sid}: the source failed: ") and why in reply["error"], reply
        samples = scrape(base)
        for sid in hostile:
            assert samples[("expstream_stream_state", (("state", "failed"), ("stream", sid)))] == 1, sid
        assert samples[("expstream_stream_state", (("state", "running"), ("stream", "extra")))] == 1
        assert get(f"{base}/readyz") == (200, "ready\n")
        assert answer(control, {"op": "remove_source", "id": "extra"}) == {"ok": True, "removing": "extra"}
        extra_frames = ("expstream_frames_total", (("stream", "extra"),))
        wait_for(lambda: extra_frames not in scrape(base), LIVENESS_S, "the removed stream to leave /metrics")
        assert ("expstream_frames_total", (("stream", "cam"),)) in scrape(base)
        again = answer(control, {"op": "add_source", "id": "zero", "uri": str(face_clip)})
        assert again["ok"] and again["state"] == "running", again  # a failed id can be used again
        assert scrape(base)[("expstream_stream_state", (("state", "running"), ("stream", "zero")))] == 1
    finally:
        stop.set()
        runner.join()
        server.close()
    assert exit_code(report[0], {"cam"}) == ExitCode.OK, "failed run-time streams do not fail the run"
    assert exit_code(report[0]) == ExitCode.STREAM_FAILED
