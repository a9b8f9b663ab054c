"""``streamer analyze`` end to end with the offline engine: the command's outputs, its exit
codes with a bad file among good ones, the Python API returning the same tables, a rerun
skipping what is done, a run killed mid-way then rerun giving the same outputs, and the
ground truth of a synthetic workload (every frame once, one track per face, times = tags)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from configs import load_settings
from streamer import analyze
from streamer.analysis.runner import Analyzer
from streamer.analysis.tables import TABLES, read_tables
from streamer.benchmark.truth import TruthDetector
from streamer.benchmark.workload import Workload, make_workload
from streamer.cli import main
from tests.media import make_face_clip
from tests.streamer.helpers import LIVENESS_S, OFFLINE, ROOT, streamer_cmd, wait_for

CLASSES = "engaged,confused,bored"


@pytest.fixture(scope="module")
def clips(face_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two good clips (the second long enough to be cut by a kill) in one folder."""
    folder = tmp_path_factory.mktemp("videos")
    first = folder / "a_faces.mp4"
    first.write_bytes(face_clip.read_bytes())
    second = make_face_clip(folder / "b_pan.mp4", seconds=8.0, fps=15, size_wh=(640, 360), shift_px=120)
    return [first, second]


@pytest.fixture(scope="module")
def analyzed(clips: list[Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """One uninterrupted ``streamer analyze`` of the two clips, a corrupt file and a missing one."""
    folder = clips[0].parent
    bad = tmp_path_factory.mktemp("bad") / "broken.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    out = tmp_path_factory.mktemp("results")
    code = main(["analyze", str(folder), str(bad), str(folder / "gone.mp4"), "--out", str(out), "-c", OFFLINE])
    return out, code


def test_one_bad_file_fails_alone_with_its_reason_in_the_manifest_and_the_index(analyzed):
    out, code = analyzed
    assert code == 1  # some failed, the others written
    data = json.loads((out / "manifest.json").read_text())
    assert [m["reason"] for m in data["inputs_not_found"]] == ["no such file or folder"]
    manifest = data["videos"]
    assert manifest["a_faces"]["status"] == manifest["b_pan"]["status"] == "done"
    assert manifest["broken"]["status"] == "failed" and "broken.mp4" in manifest["broken"]["reason"]
    index = (out / "index.html").read_text()
    assert "gone.mp4" in index and "no such file" in index and "a_faces/report.html" in index
    for name in ("a_faces", "b_pan"):
        files = {p.name for p in (out / name).iterdir()}
        assert {f"{t}.{ext}" for t in TABLES for ext in ("parquet", "csv")} | {"report.html", "meta.json"} <= files
    assert not list(out.glob(".*.part-*"))


def test_tables_carry_the_engine_and_classes_and_every_frame_once(analyzed, clips):
    out, _ = analyzed
    tables = read_tables(out / "a_faces")
    meta = json.loads(pq.read_schema(out / "a_faces" / "faces.parquet").metadata[b"expstream"])
    assert meta["engine"] == tables.meta["engine"] and len(meta["engine"]) == 12
    assert meta["classes"] == ["happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"]
    assert "p_happiness" in tables.faces and "raw_fear" in tables.faces and "mean_fear" in tables.tracks
    assert tables.frames["frame"].tolist() == list(range(45))  # 3 s at 15 fps: each decoded frame, once
    assert np.allclose(tables.frames["time_s"], np.arange(45) / 15.0)
    assert len(tables.tracks) >= 5 and not tables.faces.duplicated(["frame", "track_id"]).any()
    scored = tables.faces[tables.faces["label"].notna()]
    assert np.allclose(scored[[f"p_{c}" for c in meta["classes"]]].sum(axis=1), 1.0, atol=1e-3)


def test_the_python_api_returns_what_the_command_wrote(analyzed, clips):
    out, _ = analyzed
    res = analyze(clips[0], config=OFFLINE)
    written = read_tables(out / "a_faces")
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(res, name), written.table(name))
    fig = res.plot_track(int(res.tracks["track_id"].iloc[0]))
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == len(res.classes) == 7
    with pytest.raises(ValueError, match="no track"):
        res.plot_track(10_000)


def test_a_start_from_the_compiled_engine_writes_the_same_tables(clips, tmp_path, caplog):
    """The first analysis builds the engine (torch, open_clip) and leaves its compiled bundle;
    the second starts from that bundle without torch and must give the same tables."""
    caplog.set_level(logging.INFO, logger="engine.onnx_scorer")
    over = [f"engine.cache_dir={tmp_path}"]
    first = analyze(clips[0], config=OFFLINE, overrides=over, report=False)
    assert "from its compiled bundle" not in caplog.text and list((tmp_path / "engines").glob("*.json"))
    second = analyze(clips[0], config=OFFLINE, overrides=over, report=False)
    assert "from its compiled bundle" in caplog.text
    assert len(first.faces) > 0
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(second, name), getattr(first, name))


def test_zero_shot_classes_name_the_columns_and_change_the_fingerprint(analyzed, clips, tmp_path):
    out, _ = analyzed
    res = analyze(clips[0], classes=CLASSES.split(","), config=OFFLINE, out=tmp_path, thumbnails=False)
    assert res.classes == ["engaged", "confused", "bored"]
    assert [c for c in res.faces.columns if c.startswith("p_")] == ["p_engaged", "p_confused", "p_bored"]
    base = json.loads((out / "a_faces" / "meta.json").read_text())
    mine = json.loads((tmp_path / "a_faces" / "meta.json").read_text())
    assert mine["engine"] != base["engine"] and mine["classes"] == ["engaged", "confused", "bored"]
    page = (tmp_path / "a_faces" / "report.html").read_text()
    assert page.count("no thumbnail") == len(res.tracks) and "class='thumb'><img" not in page  # --no-thumbnails
    assert "class='thumb'><img" in (out / "a_faces" / "report.html").read_text()


def test_a_rerun_skips_what_is_done_and_rewrites_nothing(analyzed, clips):
    out, _ = analyzed
    before = {p: p.stat().st_mtime_ns for p in (out / "a_faces").iterdir()}
    assert main(["analyze", *map(str, clips), "--out", str(out), "-c", OFFLINE]) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "a_faces").iterdir()} == before


def test_a_run_killed_mid_way_then_rerun_gives_the_uninterrupted_outputs(analyzed, clips, tmp_path):
    out, _ = analyzed
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = streamer_cmd("analyze", *map(str, clips), "--out", str(tmp_path), "-c", OFFLINE)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = tmp_path / "manifest.json"
    try:
        wait_for(lambda: manifest.is_file() and "a_faces" in manifest.read_text(), LIVENESS_S, "the first video")
    finally:
        proc.send_signal(signal.SIGKILL)  # no clean-up: whatever is half-written stays
        proc.wait(LIVENESS_S)
    assert subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=LIVENESS_S * 3).returncode == 0
    for name in ("a_faces", "b_pan"):
        again, first = read_tables(tmp_path / name), read_tables(out / name)
        for table in TABLES:
            pd.testing.assert_frame_equal(again.table(table), first.table(table))
    assert not list(tmp_path.glob(".*.part-*"))


def _identities(truth_frames: list[np.ndarray]) -> list[np.ndarray]:
    """Per frame, a ground-truth face id per truth row: a face keeps its id while its box
    overlaps its box of the frame before (faces move a few pixels a frame; a new face enters
    at the other edge)."""
    ids, prev, prev_ids, next_id = [], np.zeros((0, 14), np.float32), np.zeros(0, int), 0
    for rows in truth_frames:
        cur = np.full(len(rows), -1)
        for i, r in enumerate(rows):
            ious = [_iou(r[:4], p[:4]) for p in prev]
            if ious and max(ious) > 0.5:
                cur[i] = prev_ids[int(np.argmax(ious))]
            else:
                cur[i], next_id = next_id, next_id + 1
        ids.append(cur)
        prev, prev_ids = rows, cur
    return ids


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_ground_truth_every_frame_once_one_track_per_face_times_match_tags(tmp_path):
    wl = Workload(640, 360, fps=15, seconds=8, faces=3)
    clip = make_workload(wl, tmp_path)
    # the truth is read from whole pictures: every frame gets a full-frame pass
    settings = load_settings(OFFLINE, ["engine.cache_dir=" + str(tmp_path), "detector.full_frame_every=1"])
    detector = TruthDetector(clip.truth, input_size_wh=(640, 640))
    run = Analyzer(settings, detector=detector, progress=False).run([str(clip.path)])
    tables = next(iter(run.tables.values()))
    assert tables.frames["frame"].tolist() == list(range(wl.frames))
    assert np.allclose(tables.frames["time_s"], np.arange(wl.frames) / wl.fps)  # the tag is the frame number
    gt_ids = _identities(clip.truth.frames)
    pairs = set()
    detected = tables.faces[~tables.faces["predicted"]]  # coasted boxes (tracker.coast_s) are guesses, not faces
    for frame, rows in detected.groupby("frame"):
        truth = clip.truth.frames[frame]  # the detector read the frame's tag: its faces are the tag's
        for r in rows.itertuples():
            i = int(np.argmax([_iou(np.array([r.x0, r.y0, r.x1, r.y1]), t[:4]) for t in truth]))
            assert _iou(np.array([r.x0, r.y0, r.x1, r.y1]), truth[i][:4]) > 0.9
            pairs.add((int(gt_ids[frame][i]), int(r.track_id)))
    tracks_of: dict[int, set[int]] = {}
    faces_of: dict[int, set[int]] = {}
    for gt, tid in pairs:
        tracks_of.setdefault(gt, set()).add(tid)
        faces_of.setdefault(tid, set()).add(gt)
    splits = sum(len(t) - 1 for t in tracks_of.values())
    merges = sum(len(f) - 1 for f in faces_of.values())
    print(f"ground truth: {len(tracks_of)} faces, {len(faces_of)} tracks, {splits} splits, {merges} merges")
    assert splits == 0 and merges == 0
    faces = len(set(np.concatenate(gt_ids).tolist()))
    assert len(tracks_of) == faces  # every face got a track
    # every face in every frame, but for each face's first frame (a track is confirmed on its second)
    assert len(detected) == sum(len(f) for f in clip.truth.frames) - faces


def _browser():
    """Headless Debian chromium through selenium, or a skip saying what is missing."""
    missing = [p for p in ("/usr/bin/chromium", "/usr/bin/chromedriver") if not Path(p).exists()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,1400"):
        options.add_argument(arg)
    options.binary_location = "/usr/bin/chromium"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def test_the_report_opens_from_disk_in_a_real_browser_with_every_image_and_no_error(analyzed, tmp_path):
    out, _ = analyzed
    driver = _browser()
    try:
        for page in (out / "index.html", out / "a_faces" / "report.html"):
            driver.get(page.as_uri())
            sizes = driver.execute_script(
                "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.src.slice(0, 5)])"
            )
            assert all(done and width > 0 and src == "data:" for done, width, src in sizes), sizes
            charts = driver.execute_script(  # inline SVG: each chart laid out, with a visible size
                "return Array.from(document.querySelectorAll('svg')).map(s => s.getBoundingClientRect().width)"
            )
            assert charts and all(w > 100 for w in charts), charts
            severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert not severe, severe
            shot = tmp_path / f"{page.parent.name}.png"
            driver.save_screenshot(str(shot))
            import cv2

            grey = cv2.imread(str(shot), cv2.IMREAD_GRAYSCALE)
            assert grey is not None and grey.std() > 10.0  # not a blank page
        tracks = len(read_tables(out / "a_faces").tracks)
        thumbs = driver.execute_script("return document.querySelectorAll('.thumb img').length")
        assert thumbs == tracks  # a clearest face per track
        lines = driver.execute_script(  # every timeline draws its classes: lines with a drawn length
            "return Array.from(document.querySelectorAll('.track svg')).map("
            "s => Array.from(s.querySelectorAll('polyline.series')).filter(p => p.getBBox().width > 0).length)"
        )
        assert len(lines) == tracks and all(n >= 1 for n in lines), lines
    finally:
        driver.quit()


def test_every_frame_publishes_each_face_with_the_scores_of_its_own_frame(clips):
    res = analyze(clips[0], config=OFFLINE, every_frame=True)
    judged = res.faces[res.faces["abstain"].isna() & ~res.faces["predicted"]]
    assert len(judged) > 100
    # lockstep: the detection thread waited for the engine, so no face carries an older frame's scores
    assert (judged["scored_frame"] == judged["frame"]).all()
    per_track = res.tracks.set_index("track_id")
    assert (per_track["scores"] >= per_track["frames_labelled"] * 0.9).all()
