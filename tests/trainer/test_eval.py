"""Zero-shot evaluation: metrics against hand computation, dataset layouts, the video
protocol, and the written report."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from configs import Settings
from configs.core.errors import ConfigError
from engine import ExpressionEngine
from tests.media import make_face_clip
from trainer.evaluate import confusion_matrix, evaluate, folder_mapping, segment_indices, uar_war
from trainer.evaluate.zeroshot import video_logits

BASIC7 = ["happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"]


def test_uar_war_equal_hand_computed_values() -> None:
    y_true = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 0, 1, 2, 1, 0, 2, 2, 2, 0]
    cm = confusion_matrix(y_true, y_pred, 4)  # class 3 has no samples
    assert cm.tolist() == [[2, 1, 1, 0], [1, 1, 0, 0], [1, 0, 3, 0], [0, 0, 0, 0]]
    uar, war = uar_war(cm)
    assert war == pytest.approx(60.0)  # 6 of 10
    assert uar == pytest.approx((2 / 4 + 1 / 2 + 3 / 4) / 3 * 100)  # 58.33


def test_segment_centres_follow_the_reference() -> None:
    # tick = 86 / 16 = 5.375; frame = int(tick / 2 + tick * x)
    assert segment_indices(86, 16)[:4] == [2, 8, 13, 18]
    assert segment_indices(86, 16)[-1] == int(5.375 / 2 + 5.375 * 15) == 83
    assert segment_indices(32, 16) == list(range(1, 32, 2))
    assert segment_indices(16, 16) == [0] * 16  # the reference's short-clip behaviour


@pytest.mark.parametrize(
    ("folders", "layout", "class_map", "expected", "error"),
    [
        (["1", "4", "7"], "raf-db", None, {"1": "surprise", "4": "happiness", "7": "neutral"}, None),
        (["0", "1", "6"], "affectnet", None, {"0": "neutral", "1": "happiness", "6": "anger"}, None),
        (["2", "3"], "ferplus", None, {"2": "surprise", "3": "sadness"}, None),
        (["Happy", "sad", "Angry"], "auto", None, {"Happy": "happiness", "sad": "sadness", "Angry": "anger"}, None),
        (["x", "y"], "imagefolder", None, {"x": "happiness", "y": "sadness"}, None),
        (["x", "sad"], "auto", {"x": "fear"}, {"x": "fear", "sad": "sadness"}, None),
        (["x"], "auto", None, None, "class folder 'x' maps to no class"),
        (["7"], "affectnet", None, None, "outside the prompt set: {'7': 'contempt'}"),
        (["1"], "rafdb", None, None, "layout: got 'rafdb'"),
    ],
)
def test_folder_to_class_mapping(
    folders: list[str], layout: str, class_map: dict[str, str] | None, expected: Any, error: str | None
) -> None:
    if error:
        with pytest.raises(ConfigError, match=error.replace("{", r"\{").replace("}", r"\}")):
            folder_mapping(folders, BASIC7, layout, class_map)
    else:
        assert folder_mapping(folders, BASIC7, layout, class_map) == expected


class ColourEngine:
    """A stand-in engine whose prediction is the image's red level // 80 (a known answer)."""

    classes = ("happiness", "sadness", "neutral")
    prompts = SimpleNamespace(name="stub")
    preprocess_mode = "clip"  # takes crops as decoded (no reference resize)

    def score(self, crops: list[np.ndarray]) -> SimpleNamespace:
        logits = np.eye(3, dtype=np.float32)[[int(c[0, 0, 0]) // 80 for c in crops]]
        return SimpleNamespace(logits=logits)

    def describe(self) -> dict[str, Any]:
        return {"engine": "colour"}


def test_report_and_png_on_a_constructed_case(tmp_path: Path, cfg: Settings) -> None:
    preds = {"happy": [0, 0, 1, 2], "sad": [1, 0], "neutral": [2, 2, 2, 0]}  # as in the hand case
    for folder, ps in preds.items():
        (tmp_path / "data" / folder).mkdir(parents=True)
        for i, p in enumerate(ps):
            Image.fromarray(np.full((8, 8, 3), p * 80 + 10, np.uint8)).save(tmp_path / "data" / folder / f"{i}.png")
    (tmp_path / "data" / "sad" / "broken.png").write_bytes(b"\x89PNG broken")
    report = evaluate(cfg, tmp_path / "out", images=tmp_path / "data", engines={"head": ColourEngine()})
    m = report["models"]["head"]
    assert m["war"] == pytest.approx(60.0) and m["uar"] == pytest.approx(175 / 3)
    assert m["confusion"] == [[2, 1, 1], [1, 1, 0], [1, 0, 3]]
    assert report["samples"] == 10 and [Path(s["path"]).name for s in report["skipped"]] == ["broken.png"]
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk["models"]["head"]["uar"] == pytest.approx(m["uar"])
    with Image.open(tmp_path / "out" / m["png"]) as png:
        assert png.format == "PNG" and png.size[0] > 100


def test_video_protocol_reduces_to_the_image_path_for_a_still_clip(cfg: Settings) -> None:
    engine = ExpressionEngine(cfg.engine)
    frame = np.random.default_rng(1).integers(0, 256, (60, 50, 3), dtype=np.uint8)
    still = video_logits(engine, [frame] * 16, 16)
    np.testing.assert_allclose(still, engine.score([frame]).logits, rtol=1e-5, atol=1e-4)


def test_video_list_end_to_end_with_head_and_clip(tmp_path: Path, cfg: Settings) -> None:
    rng = np.random.default_rng(2)
    lines = []
    for k, (frames, label) in enumerate([(20, 0), (10, 3), (40, 6)]):
        d = tmp_path / "frames" / f"clip{k}"
        d.mkdir(parents=True)
        for i in range(frames):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(d / f"{i:05d}.jpg")
        lines.append(f"frames/clip{k} {frames} {label}")
    make_face_clip(tmp_path / "clip.mp4", seconds=1.0, fps=20, size_wh=(160, 96))
    lines.append("clip.mp4 20 2")  # a video file instead of a frame folder
    lines.append("frames/missing 30 1")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    report = evaluate(cfg, tmp_path / "out", video_list=tmp_path / "list.txt")
    assert report["kind"] == "videos" and report["samples"] == 4
    assert set(report["models"]) == {"head", "clip"}
    assert report["models"]["clip"]["engine"]["head"] == "none"
    for m in report["models"].values():
        assert sum(map(sum, m["confusion"])) == 4 and (tmp_path / "out" / m["png"]).is_file()
    assert [Path(s["path"]).name for s in report["skipped"]] == ["missing"]


def test_head_none_evaluates_plain_clip_once(tmp_path: Path, cfg: Settings) -> None:
    from trainer.evaluate import eval_engines

    engines = eval_engines(cfg, head="none")
    assert list(engines) == ["clip"]
    assert engines["clip"].describe()["head"] == "none"
    assert cfg.engine.replace(head="none").head == "none"
