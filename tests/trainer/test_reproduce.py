"""`trainer reproduce`: the paper's benchmarks found in their published layouts (or reported
absent), scored with the paper's protocol, printed beside Table 2 and the authors' log."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer.cli import main
from trainer.reproduce import BENCHMARKS, Absent, Located, load_published, locate
from trainer.reproduce.datasets import AUTHORS_PREFIX, BENCHMARKS_BY_KEY

BASIC7 = ["happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"]
BASIC8 = [*BASIC7, "contempt"]
RAF_IDS = {"surprise": 1, "fear": 2, "disgust": 3, "happiness": 4, "sadness": 5, "anger": 6, "neutral": 7}


def _image(path: Path, rng: np.random.Generator, hw: tuple[int, int] = (48, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (*hw, 3), dtype=np.uint8)).save(path)


def rafdb_release(root: Path, per_class: int = 2) -> int:
    """RAF-DB as released: basic/EmoLabel/list_patition_label.txt + basic/Image/aligned/."""
    rng = np.random.default_rng(0)
    lines, n = [], 0
    for label in RAF_IDS.values():
        for _ in range(per_class):
            n += 1
            lines.append(f"test_{n:04d}.jpg {label}")
            _image(root / "RAF-DB/basic/Image/aligned" / f"test_{n:04d}_aligned.jpg", rng, (100, 100))
        lines.append(f"train_{n:05d}.jpg {label}")  # training images are not part of the test
    (root / "RAF-DB/basic/EmoLabel").mkdir(parents=True)
    (root / "RAF-DB/basic/EmoLabel/list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return n


def dfew_release(root: Path, clips: int = 10) -> list[int]:
    """DFEW as released: EmoLabel_DataSplit csv folds (labels 1..7) + Clip/clip_224x224 frames."""
    rng = np.random.default_rng(1)
    split = root / "DFEW/EmoLabel_DataSplit/test(single-labeled)"
    split.mkdir(parents=True)
    folds: list[list[tuple[int, int]]] = [[] for _ in range(5)]
    for i in range(1, clips + 1):
        folds[(i - 1) % 5].append((i, (i - 1) % 7 + 1))
        for f in range(12 + i):
            _image(root / "DFEW/Clip/clip_224x224" / f"{i:05d}" / f"{i:05d}_{f:05d}.jpg", rng, (40, 40))
    for k, rows in enumerate(folds, start=1):
        with (split / f"set_{k}.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["video_name", "label"])
            w.writerows(rows)
    return [len(f) for f in folds]


def test_layouts_are_found_and_absent_ones_listed(tmp_path: Path) -> None:
    n = rafdb_release(tmp_path)
    found = locate(BENCHMARKS_BY_KEY["raf-db"], tmp_path, BASIC7)
    assert isinstance(found, Located) and found.layout.startswith("official release")
    fold = found.folds[0]
    assert len(fold) == n and sorted(set(fold.labels)) == list(range(7))
    assert fold.labels[0] == BASIC7.index("surprise") and fold.paths[0].name == "test_0001_aligned.jpg"

    sizes = dfew_release(tmp_path)
    dfew = locate(BENCHMARKS_BY_KEY["dfew"], tmp_path, BASIC7)
    assert [len(f) for f in dfew.folds] == sizes and dfew.layout.startswith("official release")
    first = dfew.folds[0].clips[0]
    assert (first.path.name, first.num_frames, first.label) == ("00001", 13, 0)  # frames counted, label - 1

    # The authors' own tree wins over the release: ImageFolder order and their lists under ROOT.
    rng = np.random.default_rng(2)
    for i, cls in enumerate(BASIC7):
        _image(tmp_path / "Static_FER_Datasets/RAFDB_Face/test" / f"{i}_{cls}" / "a.png", rng)
    authors = locate(BENCHMARKS_BY_KEY["raf-db"], tmp_path, BASIC7)
    assert authors.layout.startswith("authors'") and authors.folds[0].labels == list(range(7))
    (tmp_path / "annotation").mkdir()
    (tmp_path / "annotation/AFEW_validation.txt").write_text(
        f"{AUTHORS_PREFIX}AFEW/AFEW_Face/validation/Sadness/1_1_002916200 86 1\nAFEW/rel/clip 20 6\n"
    )
    afew = locate(BENCHMARKS_BY_KEY["afew"], tmp_path, BASIC7)
    clips = afew.folds[0].clips
    assert [c.path for c in clips] == [
        tmp_path / "AFEW/AFEW_Face/validation/Sadness/1_1_002916200",
        tmp_path / "AFEW/rel/clip",
    ]
    assert [(c.num_frames, c.label) for c in clips] == [(86, 1), (20, 6)]

    # AffectNet-7 leaves contempt out; AffectNet-8 keeps it (official val_set, *_exp.npy labels).
    for i, label in enumerate([0, 1, 7, 7]):
        _image(tmp_path / "AffectNet/val_set/images" / f"{i}.jpg", rng)
        (tmp_path / "AffectNet/val_set/annotations").mkdir(parents=True, exist_ok=True)
        np.save(tmp_path / "AffectNet/val_set/annotations" / f"{i}_exp.npy", np.array(str(label)))
    an7 = locate(BENCHMARKS_BY_KEY["affectnet-7"], tmp_path, BASIC7).folds[0]
    an8 = locate(BENCHMARKS_BY_KEY["affectnet-8"], tmp_path, BASIC8).folds[0]
    assert an7.labels == [2, 0] and an8.labels == [2, 0, 7, 7]  # neutral=0, happy=1, contempt=7 ids

    ferplus = locate(BENCHMARKS_BY_KEY["ferplus"], tmp_path, BASIC8)
    assert isinstance(ferplus, Absent)
    assert ferplus.looked == [
        str(tmp_path / "Static_FER_Datasets/FERPlus_Face/test"),
        str(tmp_path / "FERPlus/test"),
    ]


def test_published_numbers_cover_every_column() -> None:
    pub = load_published()
    assert pub.datasets == tuple(b.key for b in BENCHMARKS)
    for row in ("clip-l14", "expclip-l14", "expclip-b16", "expclip-b32"):
        assert set(pub.paper_rows[row]) == set(pub.datasets)
    for row in ("expclip-l14", "expclip-b16", "expclip-b32"):
        assert set(pub.log_rows[row]) == {
            "class_name",
            "an_expression_of",
            "a_photo_of_a_face",
            "ensemble5",
            "ensemble10",
        }
        assert all(set(t) == set(pub.datasets) for t in pub.log_rows[row].values())
    assert pub.paper("expclip-b32", "mafw") == (17.53, 20.27)
    assert pub.log("expclip-b16", "ensemble10", "raf-db") == (50.82, 58.87)


def _cells(line: str) -> list[tuple[float, float]]:
    return [(float(a), float(b)) for a, b in re.findall(r"([+-]?\d+\.\d+) / ([+-]?\d+\.\d+)", line)]


def test_reproduce_end_to_end_on_rafdb_and_dfew_trees(
    tmp_path: Path, config_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    n_images = rafdb_release(data)
    fold_sizes = dfew_release(data)
    out = tmp_path / "repro"
    argv = ["reproduce", "-c", str(config_path), "-q", "--set", f"engine.cache_dir={cache_dir}"]
    assert main([*argv, "--data", str(data), "--out", str(out), "--paper-row", "expclip-l14"]) == 0
    text = capsys.readouterr().out
    assert "prompts a_photo_of_a_face" in text and "paper = Exp-CLIP L/14 in Table 2" in text

    head_table = text.split("plain CLIP")[0]
    raf = next(line for line in head_table.splitlines() if line.startswith("RAF-DB"))
    dfew = next(line for line in head_table.splitlines() if line.startswith("DFEW"))
    an7 = next(line for line in head_table.splitlines() if line.startswith("AffectNet-7"))
    assert raf.split()[1] == str(n_images) and dfew.split()[1] == str(sum(fold_sizes))
    ours, paper, d_paper, logged, d_log = _cells(raf)
    assert paper == (58.70, 65.37) and logged == (57.93, 65.94)  # Table 2 and ExpCLIP_L14.txt
    assert d_paper == pytest.approx((ours[0] - 58.70, ours[1] - 65.37), abs=0.011)
    assert d_log == pytest.approx((ours[0] - 57.93, ours[1] - 65.94), abs=0.011)
    assert _cells(dfew)[1:4:2] == [(40.16, 47.09), (40.73, 47.09)]
    assert "absent" in an7 and _cells(an7) == [(44.27, 44.27), (44.47, 44.47)]  # published, not zero
    assert "CLIP L/14" in text and "absent: MAFW (looked for" in text

    summary = json.loads((out / "reproduce.json").read_text())
    by_key = {r["benchmark"]: r for r in summary["results"]}
    assert [k for k, r in by_key.items() if r["status"] == "done"] == ["raf-db", "dfew"]
    assert summary["prompts"] == "a_photo_of_a_face" and summary["paper_row"] == "expclip-l14"
    folds = [json.loads((out / "dfew" / f"fold-{k}" / "report.json").read_text()) for k in range(1, 6)]
    assert [f["samples"] for f in folds] == fold_sizes and all(f["kind"] == "videos" for f in folds)
    for engine in ("head", "clip"):  # DFEW = mean over its five folds, as the reference did
        mean = np.mean([[f["models"][engine]["uar"], f["models"][engine]["war"]] for f in folds], axis=0)
        np.testing.assert_allclose(by_key["dfew"]["ours"][engine], mean)
    raf_report = json.loads((out / "raf-db" / "report.json").read_text())
    assert raf_report["classes"] == BASIC7 and raf_report["resize"] == "pil"
    assert ours == pytest.approx((raf_report["models"]["head"]["uar"], raf_report["models"]["head"]["war"]), abs=0.006)
