"""Head files: the authors' format loads and scores; bad files are refused clearly."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from engine import ExpressionEngine, HeadFormatError
from engine.head import RELEASED_HEADS, ReleasedHead, export_expclip, load_head, save_head
from tests.engine.conftest import TINY_DIM


class _Touch:
    """Unpickling this would create a file: the stand-in for 'a pickle carrying code'."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_authors_format_loads_and_scores(offline, expclip_head_file, crops):
    path, weight = expclip_head_file
    eng = ExpressionEngine(offline(f"engine.head={path}"))
    assert eng.head_info.format == "expclip"
    torch.testing.assert_close(eng.head.mlp.weight.cpu(), weight)
    assert eng.score(crops).features.shape == (len(crops), 4096)


def test_dataparallel_prefix_is_accepted(tmp_path):
    p = tmp_path / "dp.pth"
    torch.save({"module.mlp.weight": torch.zeros(4096, TINY_DIM)}, p)
    head, info = load_head(str(p), "ExpStream-Tiny", TINY_DIM, tmp_path)
    assert head.out_dim == 4096 and info.format == "expclip"


@pytest.mark.parametrize(
    "content, expected",
    [
        ({"mlp.weight": torch.zeros(4096, 768)}, r"shape \[4096, 768\].*expected mlp.weight of shape \[4096, 64\]"),
        ({"mlp.weight": torch.zeros(2048, TINY_DIM)}, r"shape \[2048, 64\]"),
        ({"mlp.weight": torch.zeros(4096)}, "not a matrix"),
        ({"fc.weight": torch.zeros(4096, TINY_DIM)}, "not a projection head"),
        ({"mlp.weight": torch.zeros(4096, TINY_DIM), "mlp.bias": torch.zeros(4096)}, "not a projection head"),
        ([1, 2, 3], "not a state_dict"),
    ],
)
def test_wrong_content_is_refused_naming_expected_shape(tmp_path, content, expected):
    p = tmp_path / "bad.pth"
    torch.save(content, p)
    with pytest.raises(HeadFormatError, match=expected):
        load_head(str(p), "ExpStream-Tiny", TINY_DIM, tmp_path)


def test_non_checkpoint_file_is_refused(tmp_path):
    p = tmp_path / "notes.pth"
    p.write_text("this is not a checkpoint\n")
    with pytest.raises(HeadFormatError, match=r"not a PyTorch checkpoint.*expected mlp\.weight of shape"):
        load_head(str(p), "ExpStream-Tiny", TINY_DIM, tmp_path)


def test_pickle_carrying_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pth"
    torch.save({"mlp.weight": torch.zeros(4096, TINY_DIM), "x": _Touch(marker)}, p)
    with pytest.raises(HeadFormatError, match="refused: the file is a pickle that needs code"):
        load_head(str(p), "ExpStream-Tiny", TINY_DIM, tmp_path)
    assert not marker.exists()
    plain = tmp_path / "evil2.pth"
    plain.write_bytes(pickle.dumps(_Touch(marker)))
    with pytest.raises(HeadFormatError):
        load_head(str(plain), "ExpStream-Tiny", TINY_DIM, tmp_path)
    assert not marker.exists()


def test_expstream_format_round_trip_with_metadata(tmp_path, offline, crops):
    head, _ = load_head("random", "ExpStream-Tiny", TINY_DIM, tmp_path, seed=3)
    meta = {"backbone": "ExpStream-Tiny", "pretrained": None, "preprocess": "clip", "teacher": "tiny"}
    p = save_head(tmp_path / "head.safetensors", head, meta)
    loaded, info = load_head(str(p), "ExpStream-Tiny", TINY_DIM, tmp_path)
    torch.testing.assert_close(loaded.mlp.weight, head.mlp.weight)
    assert info.format == "expstream" and info.metadata["teacher"] == "tiny"
    eng = ExpressionEngine(offline(f"engine.head={p}", "engine.preprocess=auto"))
    assert eng.preprocess_mode == "clip", "auto preprocessing follows the head's training metadata"
    exported = export_expclip(tmp_path / "ExpCLIP_x_model.pth", loaded)
    again, info2 = load_head(str(exported), "ExpStream-Tiny", TINY_DIM, tmp_path)
    torch.testing.assert_close(again.mlp.weight, head.mlp.weight)
    assert info2.format == "expclip"


def test_safetensors_for_another_backbone_is_refused(tmp_path):
    head, _ = load_head("random", "ExpStream-Tiny", TINY_DIM, tmp_path)
    p = save_head(tmp_path / "h.safetensors", head, {"backbone": "ViT-B-16"})
    with pytest.raises(HeadFormatError, match="trained for backbone ViT-B-16"):
        load_head(str(p), "ExpStream-Tiny", TINY_DIM, tmp_path)


def test_released_head_for_other_backbone_is_refused(tmp_path):
    with pytest.raises(HeadFormatError, match="belongs to backbone ViT-L-14"):
        load_head("expclip-l14", "ViT-B-32", 512, tmp_path)


def test_released_head_is_fetched_once_then_cached(tmp_path, monkeypatch, expclip_head_file):
    src, weight = expclip_head_file
    monkeypatch.setitem(RELEASED_HEADS, "expclip-tiny", ReleasedHead("ExpStream-Tiny", "none", src.as_uri()))
    calls = []
    real = torch.hub.download_url_to_file
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: calls.append(a) or real(*a, **k))
    for _ in range(2):
        head, info = load_head("expclip-tiny", "ExpStream-Tiny", TINY_DIM, tmp_path / "c")
        torch.testing.assert_close(head.mlp.weight, weight)
    assert len(calls) == 1
    assert info.source.startswith(str(tmp_path / "c" / "heads"))


def test_released_head_offline_error_says_where_to_place_it(tmp_path, monkeypatch):
    missing = (tmp_path / "nowhere" / "ExpCLIP_L14_model.pth").as_uri()
    monkeypatch.setitem(RELEASED_HEADS, "expclip-l14", ReleasedHead("ViT-L-14", "openai", missing))
    with pytest.raises(HeadFormatError, match=r"place it at .*heads/ExpCLIP_L14_model.pth"):
        load_head("expclip-l14", "ViT-L-14", 768, tmp_path)


def test_head_none_runs_plain_clip_with_warning(offline, crops, caplog):
    eng = ExpressionEngine(offline("engine.head=none"))
    assert "plain CLIP zero-shot" in caplog.text
    out = eng.score(crops)
    assert eng.head is None and out.features.shape == (len(crops), TINY_DIM)
    assert eng.preprocess_mode == "expclip"  # offline.yaml asks for it explicitly
    assert json.dumps(eng.describe())
    assert np.isfinite(out.logits).all()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_non_finite_weights_are_refused_at_load(tmp_path, bad, suffix):
    from safetensors.torch import save_file

    weight = torch.zeros(4096, TINY_DIM)
    weight[7, 3] = bad
    p = tmp_path / f"broken{suffix}"
    if suffix == ".pth":
        torch.save({"mlp.weight": weight}, p)
    else:
        save_file({"mlp.weight": weight}, str(p))
    with pytest.raises(HeadFormatError, match=r"1 non-finite value\(s\) \(NaN or Infinity\); refused"):
        load_head(str(p), "ExpStream-Tiny", TINY_DIM, tmp_path)


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [("{not json", "metadata is not valid JSON"), ("[1, 2]", "must be a JSON object, got list"), ("7", "got int")],
)
def test_safetensors_metadata_that_is_not_a_json_object_is_refused(tmp_path, metadata, expected):
    from safetensors.torch import save_file

    p = tmp_path / "meta.safetensors"
    save_file({"mlp.weight": torch.zeros(4096, TINY_DIM)}, str(p), metadata={"expstream": metadata})
    with pytest.raises(HeadFormatError, match=expected):
        load_head(str(p), "ExpStream-Tiny", TINY_DIM, tmp_path)


def test_a_broken_head_file_is_a_model_error_exit_without_traceback(tmp_path, capsys):
    from safetensors.torch import save_file

    from configs.core.errors import ExitCode
    from streamer.cli import main

    p = tmp_path / "meta.safetensors"
    save_file({"mlp.weight": torch.zeros(4096, TINY_DIM)}, str(p), metadata={"expstream": "{oops"})
    argv = ["run", "x.mp4", "-c", "offline", "--set", f"engine.head={p}", "--set", f"engine.cache_dir={tmp_path}"]
    assert main([*argv, "--set", "publisher.endpoint=tcp://127.0.0.1:*"]) == ExitCode.MODEL
    err = capsys.readouterr().err
    assert "not valid JSON" in err and "Traceback" not in err


@pytest.mark.parametrize(("name", "writer", "fmt"), [
    ("x.Safetensors", "safetensors", "expstream"),
    ("x.SAFETENSORS", "safetensors", "expstream"),
    ("x.PTH", "expclip", "expclip"),
    ("renamed.safetensors", "expclip", "expclip"),
])  # fmt: skip
def test_head_format_is_told_by_content_not_by_suffix(tmp_path, name, writer, fmt):
    head, _ = load_head("random", "ExpStream-Tiny", TINY_DIM, tmp_path, seed=5)
    p = tmp_path / name
    if writer == "safetensors":
        save_head(p, head, {"backbone": "ExpStream-Tiny"})
    else:
        export_expclip(p, head)
    loaded, info = load_head(str(p), "ExpStream-Tiny", TINY_DIM, tmp_path)
    assert info.format == fmt
    torch.testing.assert_close(loaded.mlp.weight, head.mlp.weight)
