"""``streamer bench`` pipeline mode: synthetic workloads and their truth, the sweep's JSON
report (every field, counts that add up, ordered latencies; never speeds), and every step of
``scripts/gpu_proof.sh`` on the CPU with tiny settings."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import av
import numpy as np
import pytest

from streamer.benchmark.workload import Workload, make_workload, read_tag
from streamer.cli import main
from tests.streamer.helpers import OFFLINE, ROOT


def test_workload_frames_carry_their_number_and_faces_enter_and_leave(tmp_path):
    wl = Workload(640, 360, fps=30, seconds=4, faces=4)
    clip = make_workload(wl, tmp_path)
    assert clip.path.is_file() and len(clip.truth.frames) == wl.frames
    with av.open(str(clip.path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            small = frame.reformat(width=320, height=180, format="bgr24").to_ndarray()  # the detector's scale
            assert read_tag(small, (640, 360)) == i
    assert i + 1 == wl.frames
    boxes = np.concatenate(clip.truth.frames)
    assert 2.5 <= clip.truth.faces_per_frame() <= 4.0
    assert (boxes[:, 0] <= 1).any() and (boxes[:, 2] >= 639).any()  # faces at both edges: entering, leaving
    counts = {len(f) for f in clip.truth.frames}
    assert len(counts) > 1  # the number in view changes as they come and go
    assert make_workload(wl, tmp_path).path == clip.path  # cached


def _check_run(run: dict) -> None:
    for key in ("streams", "window_s", "total", "drops_by_stage", "stages", "cpu_per_thread", "gpu", "per_stream"):
        assert key in run, key
    tot = run["total"]
    for key in ("fps", "faces_per_s", "crops_scored_per_s", "latency_ms", "lag_growth_ms", "drops_share"):
        assert key in tot, key
    for stage in ("decode", "prepare", "convert", "detect", "track", "publish"):
        assert stage in run["stages"], stage
    assert any(name.startswith("decode (") for name in run["cpu_per_thread"])
    assert "detection" in run["cpu_per_thread"] and "scoring" in run["cpu_per_thread"]
    assert run["realtime"]["ok"] in (True, False) and isinstance(run["realtime"]["reasons"], list)
    assert len(run["per_stream"]) == run["streams"]
    for s in run["per_stream"].values():
        f = s["frames"]
        assert f["decoded"] > 0 and f["published"] > 0
        assert f["published"] == f["decoded"] - f["dropped"] - f["discarded"] - f["failed"]
        lat = s["latency_ms"]
        assert 0 <= lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        assert s["outcome"] == "ended"
    lat = tot["latency_ms"]
    assert 0 <= lat["p50"] <= lat["p95"] <= lat["p99"]
    frames = tot["frames"]
    assert frames["published"] == frames["decoded"] - frames["dropped"] - frames["discarded"] - frames["failed"]
    assert run["drops_by_stage"]["source_queue"] == frames["dropped"]


def test_sweep_on_the_offline_config_reports_every_field(tmp_path, capsys):
    out = tmp_path / "sweep.json"
    argv = ["bench", "-c", OFFLINE, "--set", f"engine.cache_dir={tmp_path}", "--set", "stats.enabled=false"]
    argv += ["--sweep", "streams=2", "faces=1,4", "--resolution", "640x360", "--duration", "2"]
    argv += ["--seconds", "2", "--warmup-s", "1", "--faces-from", "truth", "--json", str(out)]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    for key in ("command", "machine", "versions", "config", "runs", "sweep", "max_latency_ms"):
        assert key in report, key
    assert report["command"].startswith("streamer bench") and "--sweep" in report["command"]
    assert report["machine"]["cores"] >= 1 and report["versions"]["torch"]
    assert len(report["config"]["fingerprint"]) == 12 and report["config"]["engine"]["fingerprint"]
    assert [r["faces"] for r in report["runs"]] == [1, 4] and all(r["streams"] == 2 for r in report["runs"])
    for run in report["runs"]:
        _check_run(run)
    assert report["runs"][1]["total"]["faces_per_frame"] > report["runs"][0]["total"]["faces_per_frame"]
    assert set(report["sweep"]) == {"1", "4"}
    for s in report["sweep"].values():
        assert s["tried"] == [2] and s["max_realtime_streams"] in (0, 2)
    text = capsys.readouterr().out
    assert "| faces | streams |" in text and "most streams in real time" in text


def test_device_frame_path_run_scores_crops(tmp_path):
    out = tmp_path / "run.json"
    argv = ["bench", "-c", OFFLINE, "--set", f"engine.cache_dir={tmp_path}", "--set", "stats.enabled=false"]
    argv += ["--faces", "2", "--resolution", "320x180", "--duration", "1", "--frames", "device"]
    argv += ["--faces-from", "truth", "--set", "scheduler.max_hz=1000", "--seconds", "2", "--warmup-s", "1"]
    argv += ["--json", str(out)]
    assert main(argv) == 0
    (run,) = json.loads(out.read_text())["runs"]
    _check_run(run)
    assert json.loads(out.read_text())["config"]["frames"] == "device"
    frames = run["total"]["frames"]
    assert frames["dropped"] == 0 and frames["failed"] == 0  # unpaced files block instead of dropping
    assert run["stages"]["engine"]["items"] > 0 and run["stages"]["crop"]["calls"] > 0


@pytest.mark.slow
def test_gpu_proof_script_runs_every_step_on_cpu(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable, "WHEELS": str(tmp_path / "none")}
    # A budget no step fits in: under --tiny the GPU-sized budgets do not apply (a busy CPU is
    # slow, never wrong), so every step must still run to its end.
    env["PROOF_BUDGET_S"] = "1"
    res = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_proof.sh"), "run", "--device", "cpu", "--tiny"],
        env=env,
        capture_output=True,
        text=True,
        timeout=4 * 3600,  # a hang guard only
    )
    assert res.returncode == 0, res.stderr[-2000:]
    out = tmp_path / "out"
    with open(out / "steps.tsv") as f:
        steps = {row[0]: row[1] for row in csv.reader(f, delimiter="\t")}
    expected = ["facts", "install", "engine-l14", "standin", "retinaface", "sweep-l14", "sweep-b16", "engine-compile"]
    expected += ["engine-fp8", "engine-b16", "engine-b32", "analyze-l14", "summary"]
    assert list(steps) == expected
    failed = {k: v for k, v in steps.items() if v != "0"}
    assert not failed, {k: (out / f"{k}.log").read_text()[-1500:] for k in failed}
    for name in ("engine-eager-l14", "engine-compile", "engine-fp8", "sweep-l14", "sweep-b16", "retinaface"):
        assert json.loads((out / f"{name}.json").read_text()), name
    analyzed = json.loads((out / "analyze" / "manifest.json").read_text())["videos"]
    assert [v["status"] for v in analyzed.values()] == ["done"] and all(v["process_s"] > 0 for v in analyzed.values())
    fp8 = json.loads((out / "engine-fp8.json").read_text())["rows"]
    assert any(r["precision"] == "fp8" and r["top1_agreement"] is not None for r in fp8)
    sweep = json.loads((out / "sweep-l14.json").read_text())
    assert sweep["config"]["frames"] == "device" and sweep["config"]["faces_from"] == "truth+detector"
    for run in sweep["runs"]:
        _check_run(run)
    summary = (out / "summary.md").read_text()
    assert "## Targets" in summary and "ViT-L/14, 4 faces/frame" in summary
