"""Face detectors: the offline detector (RetinaFace) and OpenCV Haar on real faces, the
insightface SCRFD glue proven with a tiny ONNX model this test builds in SCRFD's
input/output layout (its real weights are not available offline, so SCRFD's detection
QUALITY is not checked here, only the plumbing), and how ``detector.name: auto`` chooses.
RetinaFace itself: test_retinaface.py."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

from configs import load_settings
from configs.core.errors import ModelError
from configs.streamer import DetectorSettings
from streamer.base import FaceDetector
from streamer.benchmark.workload import GROUP_FACES
from streamer.detect import create_detector, fit_size, scale_detections
from streamer.detect.frames import detect_frames
from streamer.detect.roi import detect_in_regions, regions
from streamer.frames import FrameImage
from streamer.pipeline.detection_thread import StreamState, search_boxes
from streamer.sources.demo import group_photo_bgr
from streamer.values import Detections
from tests.streamer.helpers import OFFLINE

# The one face the tiny SCRFD model "sees": stride 16, cell (x=10, y=12), in 640x640 input pixels.
STRIDE, CELL_X, CELL_Y, SIZE = 16, 10, 12, 640
CX, CY = CELL_X * STRIDE, CELL_Y * STRIDE
DIST = np.array([2.0, 2.0, 2.5, 3.0], np.float32)
EXPECTED_BOX = np.array([CX - 2 * 16, CY - 2 * 16, CX + 2.5 * 16, CY + 3 * 16], np.float32)
KPS_OFF = np.array([[-1, -1], [1, -1], [0, 0.3], [-0.8, 1.2], [0.8, 1.2]], np.float32)
EXPECTED_KPS = np.array([CX, CY], np.float32) + KPS_OFF * STRIDE


def build_tiny_scrfd(path):
    """An ONNX with SCRFD's 9 outputs (score/bbox/kps x strides 8/16/32, 2 anchors) that
    reports exactly one face."""
    torch = pytest.importorskip("torch")

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for s in (8, 16, 32):
                n = (SIZE // s) ** 2 * 2
                score = torch.zeros(n, 1)
                bbox = torch.zeros(n, 4)
                kps = torch.zeros(n, 10)
                if s == STRIDE:
                    row = 2 * (CELL_Y * (SIZE // s) + CELL_X)
                    score[row, 0] = 0.9
                    bbox[row] = torch.from_numpy(DIST)
                    kps[row] = torch.from_numpy(KPS_OFF.reshape(-1))
                self.register_buffer(f"score{s}", score)
                self.register_buffer(f"bbox{s}", bbox)
                self.register_buffer(f"kps{s}", kps)

        def forward(self, x):
            z = x.mean() * 0.0  # the outputs must depend on the input to be graph outputs
            outs = [getattr(self, f"{k}{s}") + z for k in ("score", "bbox", "kps") for s in (8, 16, 32)]
            return tuple(outs)

    names = [f"{k}_{s}" for k in ("score", "bbox", "kps") for s in (8, 16, 32)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # dynamo=False: no onnxscript needed
        torch.onnx.export(
            Tiny().eval(),
            torch.zeros(1, 3, SIZE, SIZE),
            str(path),
            input_names=["input.1"],
            output_names=names,
            opset_version=17,
            dynamo=False,
        )
    return path


@pytest.fixture(scope="module")
def tiny_scrfd(tmp_path_factory):
    return build_tiny_scrfd(tmp_path_factory.mktemp("scrfd") / "det_tiny.onnx")


def test_scrfd_onnx_loads_through_insightface_and_decodes_box_and_keypoints(tiny_scrfd):
    det = create_detector(DetectorSettings(name="insightface", model=str(tiny_scrfd), device="cpu"))
    assert det.name == "insightface" and det.input_size_wh == (SIZE, SIZE)
    from insightface.model_zoo.scrfd import SCRFD

    assert isinstance(det.model, SCRFD)  # insightface's own loader picked its SCRFD class
    frame_wh = (1280, 720)
    small_wh = fit_size(frame_wh, det.input_size_wh)
    assert small_wh == (640, 360)
    found = det.detect(np.zeros((small_wh[1], small_wh[0], 3), np.uint8))
    assert len(found) == 1 and found.kps is not None
    np.testing.assert_allclose(found.bbox_xyxy[0], EXPECTED_BOX, atol=1e-3)
    np.testing.assert_allclose(found.kps[0], EXPECTED_KPS, atol=1e-3)
    assert found.scores[0] == pytest.approx(0.9)
    full = scale_detections(found, frame_wh[0] / small_wh[0], frame_wh[1] / small_wh[1])
    np.testing.assert_allclose(full.bbox_xyxy[0], EXPECTED_BOX * 2, atol=1e-2)
    np.testing.assert_allclose(full.kps[0], EXPECTED_KPS * 2, atol=1e-2)


def test_scrfd_score_threshold_is_applied(tiny_scrfd):
    det = create_detector(DetectorSettings(model=str(tiny_scrfd), device="cpu", score_threshold=0.95))
    assert len(det.detect(np.zeros((360, 640, 3), np.uint8))) == 0


def test_pack_loads_offline_from_root(tiny_scrfd, tmp_path):
    pack = tmp_path / "models" / "buffalo_s"
    pack.mkdir(parents=True)
    (pack / "det_500m.onnx").write_bytes(tiny_scrfd.read_bytes())
    det = create_detector(DetectorSettings(model="buffalo_s", root=str(tmp_path), device="cpu"))
    assert len(det.detect(np.zeros((360, 640, 3), np.uint8))) == 1


def test_missing_onnx_file_says_where(tmp_path):
    with pytest.raises(ModelError, match="no SCRFD ONNX file"):
        create_detector(DetectorSettings(model=str(tmp_path / "none.onnx"), device="cpu"))


def group_photo_640():
    """The group photo scaled as ``detect_frames`` scales it for a 640 input, and its six
    hand-marked faces in that picture."""
    import cv2

    photo = group_photo_bgr()
    wh = fit_size((photo.shape[1], photo.shape[0]), (640, 640))
    k = wh[0] / photo.shape[1]
    return cv2.resize(photo, wh, interpolation=cv2.INTER_AREA), np.asarray(GROUP_FACES, np.float32) * k


def test_offline_detector_finds_the_six_group_photo_faces():
    small, truth = group_photo_640()
    det = create_detector(load_settings(OFFLINE).detector.replace(device="cpu"))
    found = det.detect(small)
    assert det.name == "retinaface" and found.kps is not None
    assert len(found) == 6
    assert sorted(_best_iou(t, found.bbox_xyxy) > 0.5 for t in truth) == [True] * 6  # each face once
    for box, pts in zip(found.bbox_xyxy, found.kps, strict=True):
        assert (pts >= box[:2]).all() and (pts <= box[2:]).all(), (box, pts)
    # Searching only around the faces found gives the same six faces back.
    again = detect_in_regions(det, small, found.bbox_xyxy, expand=2.0, max_side_px=96)
    assert len(again) == 6
    assert min(_best_iou(b, again.bbox_xyxy) for b in found.bbox_xyxy) > 0.7


def test_haar_stays_an_explicit_weak_choice():
    """Haar runs (no keypoints, scores 1.0) but finds only some of the six faces: three at
    640, plus a false one, with OpenCV 4.x (docs/BENCHMARKS.md, "Face detection")."""
    small, truth = group_photo_640()
    det = create_detector(DetectorSettings(name="haar"))
    found = det.detect(small)
    assert found.kps is None and found.bbox_xyxy.dtype == np.float32 and set(found.scores.tolist()) <= {1.0}
    assert sum(_best_iou(t, found.bbox_xyxy) > 0.5 for t in truth) >= 3


def _best_iou(box, boxes):
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return float((inter / (area(box) + area(boxes) - inter)).max()) if len(boxes) else 0.0


def test_fit_size_keeps_aspect_never_upscales_and_is_even():
    assert fit_size((1920, 1080), (640, 640)) == (640, 360)
    assert fit_size((320, 240), (640, 640)) == (320, 240)
    w, h = fit_size((1001, 999), (640, 640))
    assert w % 2 == 0 and h % 2 == 0 and max(w, h) <= 640


def test_scale_detections_and_min_face():
    d = Detections(np.array([[10, 10, 20, 20], [0, 0, 50, 40]], np.float32), np.array([0.9, 0.8], np.float32))
    out = scale_detections(d, 2.0, 3.0, min_face_px=40)
    assert len(out) == 1
    np.testing.assert_allclose(out.bbox_xyxy[0], [0, 0, 100, 120])


def test_regions_are_clipped_squares():
    r = regions(np.array([[0, 0, 10, 20], [90, 40, 100, 50]], np.float32), 2.0, (100, 60))
    assert r.tolist() == [[0, 0, 25, 30], [85, 35, 100, 55]]


class CountingDetector(FaceDetector):
    """One face in the middle of every picture it is given; counts what it was asked."""

    name = "counting"
    input_size_wh = (640, 640)

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []
        self.batches = 0

    def detect(self, image_bgr: np.ndarray) -> Detections:
        h, w = image_bgr.shape[:2]
        self.sizes.append((w, h))
        box = np.array([[w * 0.4, h * 0.4, w * 0.6, h * 0.6]], np.float32)
        return Detections(box, np.ones(1, np.float32))

    def detect_batch(self, images_bgr):
        self.batches += 1
        return [self.detect(i) for i in images_bgr]


def test_detect_frames_full_regions_and_empty_scene():
    """Full pictures go to one batched call, a picture's regions around its boxes to another,
    and a picture with no boxes to look around (empty scene between full passes) costs nothing."""
    det = CountingDetector()
    images = [FrameImage.from_bgr(np.zeros((720, 1280, 3), np.uint8)) for _ in range(4)]
    track = np.array([[600, 300, 680, 420]], np.float32)
    empty = np.zeros((0, 4), np.float32)
    found = detect_frames(det, images, DetectorSettings(), [None, track, empty, None])
    assert det.batches == 2  # the full pictures together; the one region picture's
    assert det.sizes.count((640, 360)) == 2  # the two full pictures, scaled to fit 640x640
    assert len(det.sizes) == 3  # plus one region; nothing for the empty scene
    assert [len(f) for f in found] == [1, 1, 0, 1]
    # full-frame results come back in frame pixels
    np.testing.assert_allclose(found[0].bbox_xyxy[0], [512, 288, 768, 432], atol=2)
    # the region's face lies inside the searched square, in frame pixels
    x0, y0, x1, y1 = found[1].bbox_xyxy[0]
    assert 500 <= x0 < x1 <= 780 and 240 <= y0 < y1 <= 480


def test_every_region_of_a_picture_goes_to_one_batched_call():
    det = CountingDetector()
    tracks = np.array([[100, 100, 160, 180], [600, 300, 680, 420], [1000, 200, 1040, 250]], np.float32)
    found = detect_in_regions(det, np.zeros((720, 1280, 3), np.uint8), tracks, expand=2.0, max_side_px=96)
    assert det.batches == 1 and len(det.sizes) == 3
    assert all(max(wh) <= 96 for wh in det.sizes)  # scaled down to roi_max_px
    # each region's face comes back inside its own square, in frame pixels
    centres = (found.bbox_xyxy[:, :2] + found.bbox_xyxy[:, 2:]) / 2
    np.testing.assert_allclose(sorted(centres[:, 0]), [130, 640, 1020], atol=2)


def test_empty_scene_keeps_the_full_frame_cadence():
    """With no tracks, only every N-th frame is scanned whole (not every frame)."""

    class NoTracks:
        def predicted_boxes(self):
            return np.zeros((0, 4), np.float32)

    st = StreamState("cam", source=None, tracker=NoTracks())
    plan = [search_boxes(st, 10) for _ in range(30)]
    full = [i for i, b in enumerate(plan) if b is None]
    assert full == [0, 10, 20]
    assert all(len(b) == 0 for b in plan if b is not None)
    assert all(search_boxes(st, 1) is None for _ in range(3))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"bbox_xyxy": np.zeros((2, 3), np.float32), "scores": np.zeros(2, np.float32)}, "bbox_xyxy"),
        ({"bbox_xyxy": np.zeros((2, 4), np.float64), "scores": np.zeros(2, np.float32)}, "float32"),
        ({"bbox_xyxy": np.zeros((2, 4), np.float32), "scores": np.zeros(3, np.float32)}, "scores"),
        (
            {
                "bbox_xyxy": np.zeros((1, 4), np.float32),
                "scores": np.zeros(1, np.float32),
                "kps": np.zeros((1, 4, 2), np.float32),
            },
            "kps",
        ),
    ],
)
def test_detections_check_their_shapes(kwargs, error):
    with pytest.raises(ValueError, match=error):
        Detections(**kwargs)


# ---- SCRFD in torch (onnx2torch): same glue, batched -------------------------------------------


def build_tiny_batched_scrfd(path, batch_dim=True):
    """Like ``build_tiny_scrfd`` but with outputs [B, n, k]: one face per picture in the batch."""
    torch = pytest.importorskip("torch")

    class Batched(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for s in (8, 16, 32):
                n = (SIZE // s) ** 2 * 2
                score, bbox, kps = torch.zeros(n, 1), torch.zeros(n, 4), torch.zeros(n, 10)
                if s == STRIDE:
                    row = 2 * (CELL_Y * (SIZE // s) + CELL_X)
                    score[row, 0] = 0.9
                    bbox[row] = torch.from_numpy(DIST)
                    kps[row] = torch.from_numpy(KPS_OFF.reshape(-1))
                for k, v in (("score", score), ("bbox", bbox), ("kps", kps)):
                    self.register_buffer(f"{k}{s}", v)

        def forward(self, x):
            b = x.shape[0]
            z = x.mean(dim=(1, 2, 3)).reshape(b, 1, 1) * 0.0
            return tuple(
                getattr(self, f"{k}{s}").unsqueeze(0) + z for k in ("score", "bbox", "kps") for s in (8, 16, 32)
            )

    names = [f"{k}_{s}" for k in ("score", "bbox", "kps") for s in (8, 16, 32)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            Batched().eval(),
            torch.zeros(2, 3, SIZE, SIZE),
            str(path),
            input_names=["input.1"],
            output_names=names,
            dynamic_axes={"input.1": {0: "b"}, **{n: {0: "b"} for n in names}},
            opset_version=17,
            dynamo=False,
        )
    return path


def test_torch_scrfd_equals_insightface_decoding(tiny_scrfd):
    pytest.importorskip("onnx2torch")
    ref = create_detector(DetectorSettings(model=str(tiny_scrfd), device="cpu"))
    det = create_detector(DetectorSettings(model=str(tiny_scrfd), device="cpu", runtime="torch"))
    assert type(det).__name__ == "TorchScrfdDetector" and det.use_kps and det.strides == (8, 16, 32)
    for h, w in [(360, 640), (640, 640), (600, 300)]:
        img = np.zeros((h, w, 3), np.uint8)
        a, b = ref.detect(img), det.detect(img)
        assert len(a) == len(b) == 1
        np.testing.assert_allclose(b.bbox_xyxy, a.bbox_xyxy, atol=1e-3)
        np.testing.assert_allclose(b.kps, a.kps, atol=1e-3)
        np.testing.assert_allclose(b.scores, a.scores, atol=1e-6)


def test_torch_scrfd_batches_pictures_of_different_sizes(tmp_path):
    pytest.importorskip("onnx2torch")
    path = build_tiny_batched_scrfd(tmp_path / "det_batched.onnx")
    det = create_detector(DetectorSettings(model=str(path), device="cpu", runtime="torch"))
    imgs = [np.zeros((360, 640, 3), np.uint8), np.zeros((320, 320, 3), np.uint8), np.zeros((720, 1280, 3), np.uint8)]
    batch = det.detect_batch(imgs)
    assert [len(d) for d in batch] == [1, 1, 1]
    for img, got in zip(imgs, batch, strict=True):
        one = det.detect(img)
        np.testing.assert_allclose(got.bbox_xyxy, one.bbox_xyxy, atol=1e-4)
        scale = min(SIZE / img.shape[1], SIZE / img.shape[0])
        np.testing.assert_allclose(got.bbox_xyxy[0], EXPECTED_BOX / scale, rtol=1e-2)
    assert det.detect_batch([]) == []


def test_torch_scrfd_threshold_and_bad_model(tiny_scrfd, tmp_path):
    pytest.importorskip("onnx2torch")
    det = create_detector(DetectorSettings(model=str(tiny_scrfd), device="cpu", runtime="torch", score_threshold=0.95))
    assert len(det.detect(np.zeros((360, 640, 3), np.uint8))) == 0
    with pytest.raises(ModelError, match="no SCRFD ONNX file"):
        create_detector(DetectorSettings(model=str(tmp_path / "nope.onnx"), runtime="torch"))


# ---- detector.name: auto -------------------------------------------------------------------------


@pytest.fixture
def offline(monkeypatch):
    """No network: insightface's download host never answers (and is never contacted)."""
    import streamer.detect.scrfd as scrfd

    monkeypatch.setattr(scrfd, "reachable", lambda host, timeout_s: False)


def test_auto_without_pack_or_network_is_retinaface_and_says_why(offline, tmp_path, caplog):
    caplog.set_level("INFO", logger="streamer.detect")
    det = create_detector(DetectorSettings(root=str(tmp_path), device="cpu"))
    assert DetectorSettings().name == "auto" and det.name == "retinaface"
    assert "RetinaFace, because pack buffalo_l is not in" in caplog.text and "did not answer" in caplog.text


def test_auto_with_the_pack_in_root_is_scrfd(offline, tiny_scrfd, tmp_path, caplog):
    caplog.set_level("INFO", logger="streamer.detect")
    pack = tmp_path / "models" / "buffalo_s"
    pack.mkdir(parents=True)
    (pack / "det_500m.onnx").write_bytes(tiny_scrfd.read_bytes())
    det = create_detector(DetectorSettings(model="buffalo_s", root=str(tmp_path), device="cpu"))
    assert det.name == "insightface" and len(det.detect(np.zeros((360, 640, 3), np.uint8))) == 1
    assert f"insightface SCRFD, because pack buffalo_s is in {pack}" in caplog.text


def test_auto_with_a_local_scrfd_file_is_scrfd_and_a_missing_file_is_an_error(offline, tiny_scrfd, tmp_path):
    assert create_detector(DetectorSettings(model=str(tiny_scrfd), device="cpu")).name == "insightface"
    with pytest.raises(ModelError, match="no SCRFD ONNX file"):
        create_detector(DetectorSettings(model=str(tmp_path / "typo.onnx"), device="cpu"))


def test_auto_falls_back_when_the_download_fails(tmp_path, monkeypatch, caplog):
    import streamer.detect.scrfd as scrfd

    monkeypatch.setattr(scrfd, "reachable", lambda host, timeout_s: True)

    def no_download(settings):
        raise ModelError("cannot load insightface pack 'buffalo_l': connection reset")

    monkeypatch.setattr(scrfd, "load_scrfd", no_download)
    caplog.set_level("INFO", logger="streamer.detect")
    det = create_detector(DetectorSettings(root=str(tmp_path), device="cpu"))
    assert det.name == "retinaface"
    assert "github.com answers, insightface downloads it" in caplog.text
    assert "SCRFD could not be downloaded (cannot load insightface pack 'buffalo_l': connection reset)" in caplog.text


def test_auto_without_insightface_is_retinaface(monkeypatch, tmp_path, caplog):
    monkeypatch.setitem(sys.modules, "insightface", None)  # find_spec -> None: not installed
    caplog.set_level("INFO", logger="streamer.detect")
    assert create_detector(DetectorSettings(root=str(tmp_path), device="cpu")).name == "retinaface"
    assert "RetinaFace, because insightface is not installed" in caplog.text


def test_reachable_gives_up_on_a_connection_that_hangs(monkeypatch):
    """A name lookup or connection that never answers is abandoned after the timeout (no
    traffic leaves the machine: the connection is a stand-in that blocks until released)."""
    import threading

    import streamer.detect.scrfd as scrfd

    release, asked = threading.Event(), []

    def hang(address, timeout=None):
        asked.append(address)
        release.wait()
        raise OSError("released")

    monkeypatch.setattr(scrfd.socket, "create_connection", hang)
    try:
        assert scrfd.reachable("example.org", 0.2) is False
        assert asked == [("example.org", 443)]
    finally:
        release.set()


def test_detection_benchmark_knows_where_its_composed_faces_are():
    """The benchmark's ground truth for composed pictures: at 64 px every face is where the
    offline detector finds it, and nothing else is found."""
    from streamer.benchmark.detection import match
    from streamer.benchmark.detection_set import compose, photos, sprites

    faces, no_faces, _ = photos()
    sp = sprites(faces)
    (pic,) = compose("64 px", sp, [p.image for p in no_faces], 64, seed=0)
    assert len(pic.faces) == len(sp) >= 2 * 6  # the group photo's six faces and their mirror images
    h, w = pic.image.shape[:2]
    assert (pic.faces >= 0).all() and (pic.faces[:, [2, 3]] <= [w, h]).all()
    det = create_detector(DetectorSettings(name="retinaface", device="cpu"))
    assert match(det.detect(pic.image), pic.faces) == (len(pic.faces), 0)
