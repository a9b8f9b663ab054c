"""The evaluation's reference path feeds the model exactly the reference's pixels: images as
torchvision ``Resize((224, 224))`` + ``ToTensor()`` of a PIL image, video frames as the
reference video loader's PIL bilinear resize + stack + /255 (0 grey levels apart), on natural
images of several sizes. The engine's tensor path is measurably, but only slightly, apart."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from engine.preprocess import PreprocessSpec, preprocess
from tests.media import group_photo_bgr, make_face_clip
from trainer.evaluate.datasets import VideoClip, segment_indices
from trainer.evaluate.zeroshot import predict_images, predict_videos

S = 224
MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
SIZES_HW = [(48, 40), (100, 100), (137, 111), (224, 224), (300, 260), (512, 384)]


class RecordingEngine:
    """Stands in for ``ExpressionEngine``: keeps the model input it would have computed."""

    classes = ("happiness", "sadness")
    prompts = SimpleNamespace(name="stub")
    head = None
    device = torch.device("cpu")
    logit_scale = 100.0

    def __init__(self, mode: str = "expclip") -> None:
        self.preprocess_mode = mode
        self.preprocess_spec = PreprocessSpec(mode, S, MEAN, STD)
        self.class_embeddings = torch.eye(2, 4)
        self.pixels: list[torch.Tensor] = []

    def _see(self, crops: list[np.ndarray]) -> int:
        self.pixels.append(preprocess(crops, self.preprocess_spec))
        return len(crops)

    def score(self, crops: list[np.ndarray]) -> SimpleNamespace:
        return SimpleNamespace(logits=np.zeros((self._see(crops), 2), np.float32))

    def clip_image_features(self, crops: list[np.ndarray]) -> np.ndarray:
        return np.ones((self._see(crops), 4), np.float32)


def natural_crops() -> list[np.ndarray]:
    """Regions of a real photograph (insightface's group photo) at native resolution."""
    photo = np.ascontiguousarray(group_photo_bgr()[..., ::-1])
    out = []
    for k, (h, w) in enumerate(SIZES_HW):
        y, x = (37 * k) % (photo.shape[0] - h), (53 * k) % (photo.shape[1] - w)
        out.append(np.ascontiguousarray(photo[y : y + h, x : x + w]))
    return out


def _grey_levels(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a - b).abs() * 255).round()


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_images_reach_the_model_as_torchvision_resize_of_pil(tmp_path: Path, suffix: str) -> None:
    paths = []
    for (h, w), crop in zip(SIZES_HW, natural_crops(), strict=True):
        p = tmp_path / f"face-{h}x{w}.{suffix}"
        Image.fromarray(crop).save(p, quality=90)
        paths.append(p)
    reference = transforms.Compose([transforms.Resize((S, S)), transforms.ToTensor()])

    engine = RecordingEngine()
    predict_images({"head": engine}, paths, batch=4, resize="pil")
    ours = torch.cat(engine.pixels)
    with_pil = torch.stack([reference(Image.open(p).convert("RGB")) for p in paths])
    assert ours.shape == (len(paths), 3, S, S)
    assert _grey_levels(ours, with_pil).max() == 0  # bit for bit

    tensor = RecordingEngine()
    predict_images({"head": tensor}, paths, batch=4, resize="tensor")
    apart = _grey_levels(torch.cat(tensor.pixels), with_pil)
    resized = [i for i, hw in enumerate(SIZES_HW) if hw != (S, S)]
    assert apart[resized].max() >= 1  # the engine's own resize is another resampler ...
    assert apart.max() <= 3 and apart.mean() < 0.5  # ... a few grey levels apart at most
    assert apart[SIZES_HW.index((S, S))].max() == 0  # no resize, no difference


def test_clip_preprocessing_engines_get_the_decoded_image(tmp_path: Path) -> None:
    p = tmp_path / "face.png"
    Image.fromarray(natural_crops()[2]).save(p)
    engine = RecordingEngine("clip")
    predict_images({"clip": engine}, [p], batch=1, resize="pil")
    want = preprocess([np.asarray(Image.open(p).convert("RGB"))], engine.preprocess_spec)
    torch.testing.assert_close(engine.pixels[0], want, rtol=0, atol=0)


def _reference_video_frames(folder: Path, num_frames: int) -> torch.Tensor:
    """The reference's test loader (video_dataloader + video_transform): sorted frame files,
    segment centres, ``Image.open(...).convert('RGB')``, ``img.resize((224, 224), BILINEAR)``,
    stacked along channels, then ``float / 255``, reshaped to [16, 3, 224, 224]."""
    files = sorted(folder.iterdir())
    imgs = [Image.open(files[i]).convert("RGB").resize((S, S), Image.BILINEAR) for i in segment_indices(num_frames)]
    stacked = np.concatenate(imgs, axis=2)
    return torch.from_numpy(stacked).permute(2, 0, 1).contiguous().to(torch.float32).div(255).reshape(-1, 3, S, S)


def test_video_frames_reach_the_model_as_the_reference_loader_gives_them(tmp_path: Path) -> None:
    photo = np.ascontiguousarray(group_photo_bgr()[..., ::-1])
    folder = tmp_path / "clip0"
    folder.mkdir()
    for i in range(40):  # a face-sized window panning across the photo, stored as JPEG frames
        Image.fromarray(photo[20 + i : 20 + i + 150, 60 + 2 * i : 60 + 2 * i + 130]).save(folder / f"{i:05d}.jpg")
    engine = RecordingEngine()
    predict_videos({"head": engine}, [VideoClip(folder, 40, 1)], num_segments=16, batch_clips=1, resize="pil")
    assert _grey_levels(engine.pixels[0], _reference_video_frames(folder, 40)).max() == 0


def test_video_file_frames_are_pil_resized_after_decoding(tmp_path: Path) -> None:
    import av

    clip = make_face_clip(tmp_path / "clip.mp4", seconds=1.0, fps=20, size_wh=(160, 96))
    engine = RecordingEngine()
    predict_videos({"head": engine}, [VideoClip(clip, 20, 0)], num_segments=16, batch_clips=1, resize="pil")
    with av.open(str(clip)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    want = [Image.fromarray(frames[i]).resize((S, S), Image.BILINEAR) for i in segment_indices(20)]
    want_t = torch.stack([transforms.functional.pil_to_tensor(w) for w in want]).float() / 255
    assert _grey_levels(engine.pixels[0], want_t).max() == 0
