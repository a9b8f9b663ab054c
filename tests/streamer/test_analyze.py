"""``streamer analyze``'s parts that need no engine: class lists refused the same way on every
path, ``--classes`` turned into prompts, inputs, names, the manifest, the tables, the lockstep
hand-off and the report's HTML."""

from __future__ import annotations

import argparse
import json
import threading

import numpy as np
import pandas as pd
import pytest

from configs import load_settings
from configs.core.errors import ConfigError
from configs.engine import PromptSettings
from configs.loader import validate
from engine.prompts import load_prompts
from streamer.analysis.collect import Collected
from streamer.analysis.files import Manifest, expand_inputs, file_key, video_names
from streamer.analysis.report.pages import index_page, video_page
from streamer.analysis.tables import build_tables, read_tables, write_tables
from streamer.cli import main
from streamer.cli.classes import class_overrides, with_classes
from streamer.pipeline.handoff import ScoreSlots
from streamer.service.requests import parse_request
from tests.streamer.helpers import LIVENESS_S, OFFLINE, score_job

BAD_CLASSES = [
    ([], "at least one class"),
    (["engaged", " "], "empty or blank"),
    (["engaged", ""], "empty or blank"),
    (["bored", "engaged", "bored"], "given twice"),
    (["Bored", "bored "], "given twice"),
]


@pytest.mark.parametrize(("classes", "error"), BAD_CLASSES)
def test_a_bad_class_list_is_refused_alike_by_a_config_file_set_and_the_control_endpoint(classes, error, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"engine": {"prompts": {"classes": classes}}}))
    refusals = []
    for attempt in (
        lambda: load_settings(str(cfg)),
        lambda: load_settings(None, [f"engine.prompts.classes={json.dumps(classes)}"]),
        lambda: parse_request({"op": "set_prompts", "prompts": {"classes": classes}}),
        lambda: validate(PromptSettings, {"classes": classes}),
    ):
        with pytest.raises(ConfigError) as e:
            attempt()
        refusals.append(str(e.value))
    assert all("classes" in r and error in r for r in refusals), refusals


def test_class_names_are_stripped_and_a_set_name_still_names_a_set():
    assert PromptSettings(classes=[" engaged", "bored "]).classes == ["engaged", "bored"]
    assert PromptSettings(classes="basic8").classes == "basic8"


def test_classes_from_the_command_line_get_the_reference_sets_templates():
    overrides = with_classes(OFFLINE, [], ["engaged", "confused"])
    prompts = load_prompts(load_settings(OFFLINE, overrides).engine.prompts)
    assert prompts.classes == ("engaged", "confused")
    # offline uses ensemble5: five prompts per class, the reference wording with the new name
    assert len(prompts.templates[0]) == 5
    assert "an expression of engaged." in prompts.templates[0]
    assert all("confused" in p and "happiness" not in p for p in prompts.templates[1])


def test_known_classes_keep_the_reference_prompts_and_configured_templates_win():
    prompts = load_prompts(load_settings(OFFLINE, with_classes(OFFLINE, [], ["happiness", "fear"])).engine.prompts)
    reference = load_prompts(PromptSettings(set="ensemble5", classes="basic7"))
    assert prompts.templates[0] == reference.templates[0]
    mine = ['engine.prompts.templates=["a {} face."]']
    prompts = load_prompts(load_settings(OFFLINE, with_classes(OFFLINE, mine, ["calm"])).engine.prompts)
    assert prompts.templates == (("a calm face.",),)


@pytest.mark.parametrize("flag", ["", " , ", "a,,b", "sad,happy,sad"])
def test_run_and_bench_refuse_an_empty_or_repeated_class(flag, capsys):
    for command in (["run", "x.mp4"], ["bench", "--engine-only"], ["analyze", "x.mp4", "--out", "o"]):
        assert main([*command, "-c", OFFLINE, "--classes", flag]) == 2
        assert "engine.prompts.classes" in capsys.readouterr().err


def test_classes_and_prompts_together_are_refused():
    args = argparse.Namespace(config=OFFLINE, overrides=['engine.prompts.custom="p.yaml"'], classes=["a"])
    with pytest.raises(ConfigError, match="not both"):
        class_overrides(args)


def test_inputs_expand_folders_and_globs_and_report_what_names_nothing(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.mp4").write_bytes(b"x")
    (tmp_path / "a" / "notes.txt").write_text("not a video")
    (tmp_path / "b.MOV").write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    items = [str(tmp_path / "a"), str(tmp_path / "*.MOV"), str(tmp_path / "a" / "one.mp4")]
    items += [str(tmp_path / "missing.mp4"), str(tmp_path / "*.mkv"), str(tmp_path / "empty")]
    found, bad = expand_inputs(items)
    assert [p.name for p in found] == ["one.mp4", "b.MOV"]  # once each, in the order given
    assert [reason.split(" ")[0] for _, reason in bad] == ["no", "pattern", "folder"]


def test_video_names_are_unique_and_do_not_depend_on_order(tmp_path):
    a, b, c = tmp_path / "x" / "clip.mp4", tmp_path / "y" / "clip.mp4", tmp_path / "z.mp4"
    names = video_names([a, b, c])
    assert len(set(names)) == 3 and names[2] == "z"
    assert video_names([b, a]) == [names[1], names[0]]


def test_the_manifest_skips_only_the_same_file_with_the_same_fingerprint_and_its_outputs(tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"123")
    m = Manifest.load(tmp_path)
    m.record("v", {"key": file_key(video), "fingerprint": "fp", "status": "done"})
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "faces.parquet").write_bytes(b"")
    again = Manifest.load(tmp_path)
    assert again.done("v", file_key(video), "fp")
    assert not again.done("v", file_key(video), "other-fp")
    video.write_bytes(b"1234")  # new content: another size
    assert not again.done("v", file_key(video), "fp")
    (tmp_path / "manifest.json").write_text("{broken")
    assert Manifest.load(tmp_path).entries == {}


def _collected() -> Collected:
    rows = Collected(fingerprint="f" * 12, classes=["engaged", "bored"])
    rows.frames = [(0, 0.0, 1), (1, 0.5, 2), (2, 1.0, 1)]
    face = (0, 0.0, 1, 1.0, 2.0, 30.0, 40.0, 0.9, False, "engaged", 0.7, None, 0, None, [0.7, 0.3], [0.7, 0.3])
    rows.faces = [
        face,
        (1, 0.5, 1, 2.0, 2.0, 31.0, 40.0, 0.9, False, "bored", 0.6, None, 1, None, [0.2, 0.8], [0.4, 0.6]),
        (1, 0.5, 2, 50.0, 2.0, 80.0, 40.0, 0.8, False, None, None, "too_small", None, None, None, None),
        (2, 1.0, 1, 3.0, 2.0, 32.0, 40.0, 0.9, True, "bored", 0.6, None, 1, 7, [0.2, 0.8], [0.4, 0.6]),
    ]
    rows.episodes = [
        {
            "track_id": 1,
            "episode_id": 1,
            "label": "bored",
            "onset_s": 0.5,
            "offset_s": 1.0,
            "duration_s": 0.5,
            "peak_score": 0.6,
            "peak_time_s": 0.5,
            "observations": 2,
            "reason": "track_ended",
            "mean_probs": [0.4, 0.6],
        }
    ]
    return rows


def test_tables_name_the_classes_and_round_trip_through_parquet_with_their_metadata(tmp_path):
    tables = build_tables(_collected(), "clip", {"video": "clip", "engine": "f" * 12, "classes": ["engaged", "bored"]})
    assert list(tables.faces.columns[-4:]) == ["raw_engaged", "raw_bored", "p_engaged", "p_bored"]
    track = tables.tracks.set_index("track_id").loc[1]
    assert (track.frames_seen, track.scores, track.dominant, track.episodes) == (3, 2, "bored", 1)
    assert track.mean_bored == pytest.approx((0.3 + 0.6 + 0.6) / 3, abs=1e-4)
    assert track.relinked_from == 7
    assert pd.isna(tables.tracks.set_index("track_id").loc[2].dominant)
    write_tables(tables, tmp_path)
    back = read_tables(tmp_path)
    for name in ("faces", "frames", "tracks", "episodes"):
        pd.testing.assert_frame_equal(back.table(name), tables.table(name))
        assert (tmp_path / f"{name}.csv").read_text().splitlines()[0].startswith("video,")
    assert back.meta["classes"] == ["engaged", "bored"] and back.meta["engine"] == "f" * 12


def test_a_video_without_faces_still_has_typed_empty_tables(tmp_path):
    rows = Collected(fingerprint="f", classes=["a"], frames=[(0, 0.0, 0)])
    tables = build_tables(rows, "empty", {"video": "empty", "path": "e.mp4", "engine": "f", "analysis": "f-1"})
    assert len(tables.faces) == 0 and list(tables.faces.columns)[-1] == "p_a"
    write_tables(tables, tmp_path)
    pd.testing.assert_frame_equal(read_tables(tmp_path).faces, tables.faces)
    assert "no face was found" in video_page(tables, {})


def test_pages_escape_names_and_embed_every_image():
    meta = {
        "video": "<clip>",
        "path": "/v/<clip>.mp4",
        "engine": "e",
        "analysis": "e-1",
        "classes": ["engaged", "bored"],
    }
    tables = build_tables(_collected(), "<clip>", meta)
    page = video_page(tables, {1: (1.0, 0, np.full((8, 8, 3), 128, np.uint8))})
    assert "<clip>" not in page and "&lt;clip&gt;" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert page.count("src='data:image/png;base64,") == 1  # the thumbnail
    assert page.count("<svg") == 1 + 2  # the distribution, two timelines
    index = index_page([{"name": "a", "status": "failed", "reason": "cannot open"}], {}, [])
    assert "failed: cannot open" in index


def test_lockstep_waits_until_the_offered_frame_is_settled():
    slots = ScoreSlots()
    slots.offer(score_job("cam0", [1]))
    done = threading.Event()

    def detection() -> None:
        slots.wait_scored("cam0")
        done.set()

    waiter = threading.Thread(target=detection, daemon=True)
    waiter.start()
    jobs, _ = slots.take(timeout_s=1.0)
    assert len(jobs) == 1 and not done.is_set()  # taken, not yet scored: still waiting
    slots.settle(jobs)
    assert done.wait(LIVENESS_S)
    waiter.join(LIVENESS_S)


def test_thumbnails_keep_the_clearest_face_and_are_blurred_when_asked():
    import cv2

    from streamer.analysis.collect import Thumbnails
    from streamer.frames import Frame, FrameImage
    from streamer.sources.demo import group_photo_bgr
    from streamer.values import Tracks

    photo = np.ascontiguousarray(group_photo_bgr()[:480, :640])
    box = np.array([[35, 255, 185, 405]], np.float32)
    kept = {}
    for blur in (False, True):
        thumbs = Thumbnails(blur)
        for i, (scale, score) in enumerate([(0.5, 0.9), (1.0, 0.9), (1.0, 0.5)]):
            small = box.copy()
            small[:, 2:] = small[:, :2] + (box[:, 2:] - box[:, :2]) * scale
            tracks = Tracks(np.array([3]), small, np.array([score], np.float32), np.array([i]))
            thumbs(Frame("cam", i, float(i), 0.0, FrameImage.from_bgr(photo)), tracks, [None])
        _, frame_index, rgb = thumbs.best[3]
        assert frame_index == 1 and max(rgb.shape[:2]) <= 128  # the largest sharp box, not the last one
        kept[blur] = cv2.Laplacian(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
    assert kept[True] < kept[False] / 4
