"""The torch-free start: a CPU onnxruntime engine leaves a compiled bundle, and the next start
with the same settings scores through it with onnxruntime alone, alike."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from configs.engine import EngineSettings
from engine import ExpressionEngine
from engine.bundle import load_bundle, warm_key
from engine.crops import PreprocessSpec, host_pixels
from engine.onnx_scorer import OnnxScorer, open_scorer
from engine.preprocess import preprocess

MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def smooth(h: int, w: int, seed: int) -> np.ndarray:
    small = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))


def test_the_next_start_scores_alike_from_the_bundle(offline, crops):
    settings = offline("engine.smoothing.method=window")
    full = open_scorer(settings)
    assert isinstance(full, ExpressionEngine) and full.backend.name == "onnxruntime"
    warm = open_scorer(settings)
    assert isinstance(warm, OnnxScorer)
    assert (warm.fingerprint, warm.classes, warm.crop_size) == (full.fingerprint, full.classes, full.crop_size)
    assert warm.describe() == full.describe()
    np.testing.assert_array_equal(warm.class_embeddings, full.class_embeddings.numpy())
    assert warm.logit_scale == full.logit_scale

    # the crops the streamer cuts (S x S): the same input to the same graph
    square = np.stack([c for c in crops if c.shape[:2] == (224, 224)])
    a, b = full.score(square), warm.score(square)
    np.testing.assert_allclose(b.logits, a.logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b.probs, a.probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.projected_features(), a.projected_features(), rtol=1e-5, atol=1e-5)
    assert b.labels == a.labels
    sa, sb = full.make_smoother(), warm.make_smoother()
    keys = [("s", 1), ("s", 2)]
    for _ in range(3):
        pa = sa.update(keys, a.probs, a.projected_features())
        pb = sb.update(keys, b.probs, b.projected_features())
    np.testing.assert_allclose(pb, pa, rtol=1e-5, atol=1e-6)
    # other sizes and an empty batch work too (their resampling: the next tests)
    assert warm.score(crops).probs.shape == (len(crops), 7)
    assert warm.score([]).probs.shape == (0, 7)


def test_host_preprocessing_is_the_reference_and_close_to_the_torch_path():
    crop = smooth(137, 111, 1)
    spec = PreprocessSpec("expclip", 224, MEAN, STD)
    ours = host_pixels([crop], spec)[0]
    # the reference: transforms.Resize((224, 224)) of the PIL image, then ToTensor()
    ref = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor()])(Image.fromarray(crop))
    np.testing.assert_allclose(ours, ref.numpy(), atol=1e-6)
    diff = np.abs(ours - preprocess([crop], spec)[0].numpy()) * 255
    assert diff.mean() < 0.5 and diff.max() <= 3

    import open_clip

    crop = smooth(180, 140, 2)
    clip = PreprocessSpec("clip", 224, MEAN, STD)
    ref = open_clip.image_transform(224, is_train=False, mean=MEAN, std=STD)(Image.fromarray(crop))
    np.testing.assert_allclose(host_pixels([crop], clip)[0], ref.numpy(), atol=1e-5)
    # S x S crops are not resampled: the torch path's input exactly
    square = smooth(224, 224, 3)
    for s in (spec, clip):
        np.testing.assert_allclose(host_pixels(square[None], s), preprocess(square[None], s).numpy(), atol=1e-6)


def test_a_start_from_the_bundle_never_imports_torch(offline, cache_dir):
    """Zero-shot classes from the command line included (their prompts are read without torch)."""
    from configs import load_settings
    from streamer.cli.classes import with_classes

    # the full engine writes the bundle
    open_scorer(
        load_settings("offline", with_classes("offline", [f"engine.cache_dir={cache_dir}"], ["calm", "tense"])).engine
    )
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from configs import load_settings
        from engine import open_scorer
        from streamer.cli.classes import with_classes
        over = with_classes("offline", ["engine.cache_dir={cache_dir}"], ["calm", "tense"])
        scorer = open_scorer(load_settings("offline", over).engine, threads=1)
        out = scorer.score(np.zeros((2, scorer.crop_size, scorer.crop_size, 3), np.uint8))
        print(type(scorer).__name__, "torch" in sys.modules, out.probs.shape)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[:4] == ["OnnxScorer", "False", "(2,", "2)"], res.stdout


def test_changed_settings_or_files_get_a_new_key(offline, expclip_head_file):
    head, _ = expclip_head_file
    base = offline(f"engine.head={head}")
    key = warm_key(base)
    assert key is not None and warm_key(base) == key
    assert warm_key(offline(f"engine.head={head}", "engine.prompts.classes=[calm,tense]")) != key
    assert warm_key(offline(f"engine.head={head}", "engine.max_batch=8")) == key  # does not change a score
    first = open_scorer(base)
    assert isinstance(open_scorer(base), OnnxScorer)
    gen = torch.Generator().manual_seed(8)
    torch.save({"mlp.weight": torch.randn(4096, 64, generator=gen)}, head)  # a new head, same path
    assert warm_key(base) != key
    again = open_scorer(base)
    assert isinstance(again, ExpressionEngine) and again.fingerprint != first.fingerprint
    assert warm_key(EngineSettings(device="cuda")) is None


def test_a_torn_bundle_builds_the_engine_and_is_written_again(offline, cache_dir, caplog):
    settings = offline()
    open_scorer(settings)
    key = warm_key(settings)
    manifest = cache_dir / "engines" / f"{key}.json"
    good = json.loads(manifest.read_text())
    manifest.write_text(manifest.read_text()[:40])
    assert load_bundle(cache_dir, key) is None and "unusable" in caplog.text
    assert isinstance(open_scorer(settings), ExpressionEngine)
    assert json.loads(manifest.read_text()) == good
    # a graph that is not the one the bundle names (another size): not used
    onnx = cache_dir / good["onnx"]
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    assert load_bundle(cache_dir, key) is None


@pytest.mark.parametrize("override", ["engine.backend=torch", "engine.device=cpu"])
def test_only_an_onnxruntime_engine_writes_one(offline, cache_dir, override):
    open_scorer(offline(override))
    written = list((cache_dir / "engines").glob("*.json")) if (cache_dir / "engines").exists() else []
    assert len(written) == (0 if "torch" in override else 1)


def test_processes_that_build_one_engine_at_once_each_finish_and_leave_one_bundle(offline, cache_dir):
    """A cluster's workers on one machine start together on an empty cache: each exports and
    writes under a name of its own, so no process reads another's half-written file."""
    code = textwrap.dedent(f"""
        import numpy as np
        from configs import load_settings
        from engine import open_scorer
        scorer = open_scorer(load_settings("offline", ["engine.cache_dir={cache_dir}"]).engine, threads=1)
        print(type(scorer).__name__, scorer.score(np.zeros((1, 224, 224, 3), np.uint8)).labels[0])
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert len({o.split()[1] for o in outs}) == 1, outs  # the same label from each
    assert load_bundle(cache_dir, warm_key(offline())) is not None
    assert not list(cache_dir.rglob("*.tmp")), "a temporary file left behind"


def test_a_live_engine_change_builds_the_new_engine_then_starts_it_from_its_bundle(offline):
    """set_prompts on a pipeline whose engine started from a bundle: new classes have none yet."""
    open_scorer(offline())
    warm = open_scorer(offline())
    assert isinstance(warm, OnnxScorer)
    calm = offline("engine.prompts.classes=[calm,tense]", "engine.prompts.templates=['a photo of a {} face.']")
    changed = warm.derive(calm)
    assert isinstance(changed, ExpressionEngine) and changed.classes == ["calm", "tense"]
    again = warm.derive(calm)
    assert isinstance(again, OnnxScorer) and again.fingerprint == changed.fingerprint != warm.fingerprint
    x = np.zeros((1, 224, 224, 3), np.uint8)
    np.testing.assert_allclose(again.score(x).probs, changed.score(x).probs, rtol=1e-5, atol=1e-6)
