"""Face crops: 5-point alignment from a face region equals alignment on the whole frame;
square box crops clip at the border; every crop is the engine's input size."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from streamer.frames import FrameImage
from streamer.stages.align import crop_faces, similarity_transform, source_box


def yuv_frame(w=320, h=240, seed=0):
    rng = np.random.default_rng(seed)
    # smooth random picture (so interpolation differences stay small)
    small = rng.integers(0, 256, (h // 8, w // 8, 3), np.uint8)
    rgb = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    av_frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    full = cv2.cvtColor(av_frame.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2RGB_I420)
    return FrameImage.from_av(av_frame), full


KPS = np.array([[131.3, 101.7], [171.1, 99.9], [151.5, 123.2], [135.9, 145.1], [167.3, 144.0]], np.float32)


@pytest.mark.parametrize("size", [224, 112, 160])
def test_aligned_crop_from_region_equals_whole_frame_alignment(size):
    img, full = yuv_frame()
    crops = crop_faces(img, np.array([[120, 80, 185, 160]], np.float32), KPS[None], size)
    assert crops.shape == (1, size, size, 3) and crops.dtype == np.uint8
    m = similarity_transform(KPS, size)
    expected = cv2.warpAffine(full, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
    diff = np.abs(crops[0].astype(int) - expected.astype(int))
    assert diff.max() <= 1, diff.max()


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_template_scales_insightface_norm_crop():
    from insightface.utils.face_align import estimate_norm, norm_crop

    img, full = yuv_frame(seed=1)
    np.testing.assert_allclose(similarity_transform(KPS, 224), estimate_norm(KPS, 224), atol=1e-3)
    ours = crop_faces(img, np.zeros((1, 4), np.float32), KPS[None], 224)[0]
    theirs = norm_crop(full, KPS, image_size=224)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_alignment_is_insightface_estimate_norm_for_any_face():
    """Our template and solver (scikit-image, without importing insightface) give insightface's
    matrix for faces anywhere, at any scale and rotation."""
    from insightface.utils.face_align import arcface_dst, estimate_norm

    from streamer.stages.align import ARCFACE_TEMPLATE

    np.testing.assert_array_equal(ARCFACE_TEMPLATE.astype(np.float32), arcface_dst)
    rng = np.random.default_rng(0)
    for _ in range(50):
        angle, scale = rng.uniform(-1.2, 1.2), rng.uniform(0.2, 6)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        kps = (arcface_dst @ rot.T * scale + rng.uniform(-50, 1900, 2) + rng.normal(0, 2, (5, 2))).astype(np.float32)
        ours, theirs = similarity_transform(kps, 112), estimate_norm(kps, 112)
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-3 * max(1.0, np.abs(theirs).max()))


def test_source_box_covers_the_crop():
    m = similarity_transform(KPS, 224)
    x0, y0, x1, y1 = source_box(m, 224)
    inv = cv2.invertAffineTransform(m)
    for cx, cy in [(0, 0), (224, 0), (0, 224), (224, 224)]:
        x, y = inv @ np.array([cx, cy, 1.0])
        assert x0 <= x <= x1 and y0 <= y <= y1


def test_face_at_the_border_is_aligned_with_black_outside():
    img, _ = yuv_frame()
    kps = KPS - np.array([125, 0], np.float32)  # left eye at x ~ 6
    crop = crop_faces(img, np.zeros((1, 4), np.float32), kps[None], 112)[0]
    assert crop.shape == (112, 112, 3)
    assert crop[:, :5].max() == 0 and crop[:, 60:].mean() > 10


def test_box_crop_is_square_and_clipped():
    img, full = yuv_frame()
    boxes = np.array([[100, 60, 160, 140], [-30, -20, 40, 50]], np.float32)
    crops = crop_faces(img, boxes, None, 96, expand=1.25)
    assert crops.shape == (2, 96, 96, 3)
    # box 0: square side 100 centred at (130, 100) -> [80, 50, 180, 150]
    expected = cv2.resize(full[50:150, 80:180], (96, 96), interpolation=cv2.INTER_AREA)
    assert np.abs(crops[0].astype(int) - expected.astype(int)).max() <= 2
    # box 1: square [-39, -29, 49, 59] reaches outside the frame: only [0, 0, 49, 59] is used
    # (widened to even coordinates for 4:2:0 chroma: [0, 0, 50, 60])
    expected1 = cv2.resize(full[0:60, 0:50], (96, 96), interpolation=cv2.INTER_LINEAR)
    assert np.abs(crops[1].astype(int) - expected1.astype(int)).max() <= 2


def test_align_box_mode_ignores_keypoints():
    img, _ = yuv_frame()
    boxes = np.array([[120, 80, 185, 160]], np.float32)
    a = crop_faces(img, boxes, KPS[None], 64, align="box")
    b = crop_faces(img, boxes, None, 64)
    np.testing.assert_array_equal(a, b)


def test_face_outside_the_picture_raises():
    img, _ = yuv_frame()
    with pytest.raises(ValueError, match="empty region"):
        crop_faces(img, np.array([[400, 300, 450, 350]], np.float32), None, 64)
