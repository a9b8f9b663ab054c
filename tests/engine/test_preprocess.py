"""Preprocessing: order, shapes, ranges, and closeness to the reference's PIL pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from engine.preprocess import PreprocessSpec, preprocess

MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def smooth_face_like(h, w, seed=0):
    """A smooth image (natural-image-like spectrum), where resamplers agree closely."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))


def test_list_of_mixed_sizes_keeps_input_order():
    spec = PreprocessSpec("expclip", 224, MEAN, STD)
    crops = [smooth_face_like(100, 80, 1), smooth_face_like(224, 224, 2), smooth_face_like(100, 80, 3)]
    batch = preprocess(crops, spec)
    assert batch.shape == (3, 3, 224, 224) and batch.dtype == torch.float32
    for i, c in enumerate(crops):
        np.testing.assert_allclose(batch[i].numpy(), preprocess([c], spec)[0].numpy())


def test_expclip_is_unnormalised_unit_range_and_224_passthrough():
    spec = PreprocessSpec("expclip", 224, MEAN, STD)
    crop = smooth_face_like(224, 224)
    x = preprocess(crop[None], spec)[0]
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy(), crop / 255.0, atol=1e-7)


def test_expclip_matches_reference_pil_pipeline_closely():
    """Reference: transforms.Resize((224, 224)) on a PIL image, then ToTensor()."""
    crop = smooth_face_like(137, 111)
    ref = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor()])(Image.fromarray(crop))
    ours = preprocess([crop], PreprocessSpec("expclip", 224, MEAN, STD))[0]
    diff = (ours - ref).abs() * 255
    assert diff.mean() < 0.5 and diff.max() <= 3


def test_clip_mode_matches_open_clip_transform_closely():
    import open_clip

    crop = smooth_face_like(180, 140)
    ref = open_clip.image_transform(224, is_train=False, mean=MEAN, std=STD)(Image.fromarray(crop))
    ours = preprocess([crop], PreprocessSpec("clip", 224, MEAN, STD))[0]
    std = torch.tensor(STD).view(3, 1, 1)
    diff = ((ours - ref) * std).abs() * 255
    assert diff.mean() < 0.5 and diff.max() <= 4


@pytest.mark.parametrize(
    "crops, error",
    [
        ([np.zeros((10, 10), np.uint8)], r"crop 0: expected a uint8 RGB array"),
        ([np.zeros((10, 10, 3), np.float32)], r"crop 0: expected a uint8 RGB array"),
        ([np.zeros((1, 10, 3), np.uint8)], "too small"),
        (np.zeros((2, 10, 10, 4), np.uint8), r"expected uint8 \[N, H, W, 3\]"),
    ],
)
def test_bad_crops_are_refused(crops, error):
    with pytest.raises(ValueError, match=error):
        preprocess(crops, PreprocessSpec("expclip", 224, MEAN, STD))


def test_empty_score_returns_empty_output(offline):
    from engine import ExpressionEngine

    out = ExpressionEngine(offline()).score([])
    assert out.probs.shape == (0, 7) and out.labels == [] and len(out) == 0
