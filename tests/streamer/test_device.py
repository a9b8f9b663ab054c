"""The device frame path on the CPU (device is a parameter): YUV planes -> conversion ->
crops equal the host path's crops (``streamer.stages.align``) within 2 grey levels, the detector's
picture is close to swscale's, and device tensors flow through the torch SCRFD and the engine."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest
import torch

from configs import load_settings
from configs.streamer import DetectorSettings
from streamer.base import FaceDetector
from streamer.benchmark.workload import Workload, make_workload
from streamer.detect.frames import detect_frames
from streamer.device.colour import Planes, region_rgb
from streamer.device.crops import crop_faces_on
from streamer.device.device_path import DeviceFramePath
from streamer.device.path import frame_path_for
from streamer.device.picture import detector_picture
from streamer.device.planes import PlaneUploader
from streamer.frames import Frame, FrameImage
from streamer.stages.align import crop_faces
from streamer.values import Detections
from tests.streamer.helpers import OFFLINE

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def workload_frames(tmp_path_factory):
    """Decoded frames of a 1280x720 H.264 workload with 4 faces, and each frame's truth."""
    clip = make_workload(Workload(1280, 720, seconds=1, faces=4), tmp_path_factory.mktemp("wl"))
    with av.open(str(clip.path)) as c:
        frames = [f for i, f in enumerate(c.decode(video=0)) if i % 6 == 0]
    return [(FrameImage.from_av(f), clip.truth.frames[i * 6]) for i, f in enumerate(frames)]


def _faces(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return truth[:, :4].copy(), truth[:, 4:].reshape(-1, 5, 2).copy()


@pytest.mark.parametrize("size", [224, 64])
@pytest.mark.parametrize("aligned", [False, True])
def test_device_crops_equal_host_crops_within_two_grey_levels(workload_frames, size, aligned):
    uploader = PlaneUploader(CPU)
    checked = 0
    for image, truth in workload_frames:
        if not len(truth):
            continue
        boxes, kps = _faces(truth)
        host = crop_faces(image, boxes, kps if aligned else None, size)
        dev = crop_faces_on(uploader.planes(image), boxes, kps if aligned else None, size)
        assert dev.dtype == torch.uint8 and tuple(dev.shape) == host.shape
        diff = np.abs(dev.numpy().astype(np.int16) - host.astype(np.int16))
        assert diff.max() <= 2, (size, aligned, diff.max())
        checked += len(boxes)
    assert checked >= 8  # faces at the borders (entering/leaving) among them


def test_box_crops_at_the_border_and_odd_offsets_equal_host(workload_frames):
    image, _ = workload_frames[0]
    w, h = image.size_wh
    boxes = np.array([[-30, -20, 90, 110], [w - 61, h - 91, w + 15, h + 3], [101, 57, 333, 301]], np.float32)
    host = crop_faces(image, boxes, None, 224)
    dev = crop_faces_on(PlaneUploader(CPU).planes(image), boxes, None, 224).numpy()
    assert np.abs(dev.astype(np.int16) - host.astype(np.int16)).max() <= 2


def test_nv12_and_i420_conversion_is_opencvs_to_the_bit():
    rng = np.random.default_rng(0)
    packed = rng.integers(0, 256, (90, 80), dtype=np.uint8)  # an 80x60 picture
    for fmt, code in (("i420", cv2.COLOR_YUV2RGB_I420), ("nv12", cv2.COLOR_YUV2RGB_NV12)):
        got = region_rgb(Planes.from_packed(fmt, torch.from_numpy(packed)), 0, 0, 80, 60).numpy()
        np.testing.assert_array_equal(got, cv2.cvtColor(packed, code))


def test_detector_picture_on_the_device_is_close_to_swscale(workload_frames):
    image, _ = workload_frames[1]
    ref = image.to_bgr((640, 360)).astype(np.int16)
    got = detector_picture(PlaneUploader(CPU).planes(image), (640, 360)).numpy().astype(np.int16)
    assert got.shape == ref.shape and np.abs(got - ref).mean() < 3.0


def test_frame_path_device_prepares_planes_and_engine_scores_device_crops(workload_frames):
    from engine import ExpressionEngine

    engine = ExpressionEngine(load_settings(OFFLINE).engine)
    path = DeviceFramePath((640, 640), CPU)
    image, truth = next((im, t) for im, t in workload_frames if len(t))
    path.prepare(Frame("cam0", 0, 0.0, 0.0, image))
    assert image.prepared(("planes", "cpu")) is not None and image.prepared(("bgr", 640, 360)) is not None
    boxes, kps = _faces(truth)
    crops = path.crop(image, boxes, kps, engine.crop_size, "auto", 1.25)
    assert isinstance(crops, torch.Tensor)
    on_device = engine.score(crops)
    on_host = engine.score(crop_faces(image, boxes, kps, engine.crop_size))
    np.testing.assert_allclose(on_device.probs, on_host.probs, atol=0.02)


class RecordingDetector(FaceDetector):
    """Finds no faces; records the type of every picture it is given."""

    def __init__(self, tensor_device: str | None) -> None:
        self.tensor_device = tensor_device
        self.input_size_wh = (640, 640)
        self.seen: list[type] = []

    def detect(self, image_bgr):
        self.seen.append(type(image_bgr))
        return Detections.empty()


@pytest.mark.parametrize(
    ("mode", "tensor_device", "picture"),
    [
        ("device", "cpu", torch.Tensor),  # the detector takes tensors on the frame path's device
        ("device", None, np.ndarray),  # a numpy-only detector on the device path
        ("host", "cpu", np.ndarray),  # no device pictures on the host path
    ],
)
def test_a_detector_gets_device_pictures_only_when_it_declares_that_device(mode, tensor_device, picture):
    det = RecordingDetector(tensor_device)
    path = frame_path_for(mode, "cpu", det)
    assert path.mode == mode
    yuv = av.VideoFrame.from_ndarray(np.zeros((360, 640, 3), np.uint8), format="bgr24").reformat(format="yuv420p")
    frame = Frame("cam0", 0, 0.0, 0.0, FrameImage.from_av(yuv))
    path.prepare(frame)
    (found,) = detect_frames(det, [frame.image], DetectorSettings())
    assert len(found) == 0 and det.seen == [picture]


def test_torch_scrfd_takes_device_pictures(tmp_path):
    from streamer.detect import create_detector
    from tests.streamer.test_detect import build_tiny_scrfd

    onnx = build_tiny_scrfd(tmp_path / "tiny.onnx")
    det = create_detector(DetectorSettings(name="insightface", runtime="torch", model=str(onnx), device="cpu"))
    assert det.tensor_device == "cpu"
    pic = np.zeros((360, 640, 3), np.uint8)  # the tiny test model holds one picture per batch
    (a,) = det.detect_batch([pic])
    (b,) = det.detect_batch([torch.from_numpy(pic)])
    assert len(a) == len(b) == 1
    np.testing.assert_allclose(a.bbox_xyxy, b.bbox_xyxy)
    np.testing.assert_allclose(a.kps, b.kps)
