"""A stand-in for SCRFD's cost where its weights cannot be had (the GPU machines have no
network): a random convolutional network of SCRFD-10G's size (~9 GFLOP at 640 x 640) with
SCRFD's nine outputs (scores, boxes, 5 points at strides 8, 16, 32; two anchors), exported
to ONNX so it runs through the real torch SCRFD path (onnx2torch, batched, decoding on the
device). Its score head is biased to report no face: pair it with ``--faces-from
truth+detector`` so the faces come from the workload's ground truth and the detector's time
is still paid.

Example (plain text: exports a network)::

    path = export_standin("/tmp/scrfd-standin.onnx")
    streamer bench --faces-from truth+detector --set detector.runtime=torch --set detector.model=/tmp/scrfd-standin.onnx
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ScrfdStandIn(nn.Module):
    """SCRFD's input/output layout with a backbone of about SCRFD-10G's cost."""

    def __init__(self, width: int = 1) -> None:
        super().__init__()
        c = [32 * width, 64 * width, 128 * width, 256 * width]
        self.stem = nn.Sequential(_conv(3, c[0], 2), _conv(c[0], c[1], 2))
        self.s8 = nn.Sequential(_conv(c[1], c[2], 2), _conv(c[2], c[2]))
        self.s16 = nn.Sequential(_conv(c[2], c[3], 2), _conv(c[3], c[3]))
        self.s32 = nn.Sequential(_conv(c[3], c[3], 2), _conv(c[3], c[3]))
        self.heads = nn.ModuleList(
            nn.Sequential(_conv(ch, ch), nn.Conv2d(ch, 2 * (1 + 4 + 10), 1)) for ch in (c[2], c[3], c[3])
        )
        for head in self.heads:
            last = head[1]
            assert isinstance(last, nn.Conv2d)
            nn.init.uniform_(last.bias, -0.1, 0.1)  # distinct values: ONNX export merges equal initialisers
            last.bias.data[0] -= 30.0  # scores (channels 0 and 15): sigmoid ~ 0, no face reported
            last.bias.data[15] -= 30.0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f8 = self.s8(self.stem(x))
        f16 = self.s16(f8)
        f32 = self.s32(f16)
        scores, boxes, kps = [], [], []
        for feat, head in zip((f8, f16, f32), self.heads, strict=True):
            y = head(feat)  # [B, 30, h, w]
            b = y.shape[0]
            y = y.permute(0, 2, 3, 1).reshape(b, -1, 2, 15)  # [B, cells, anchors, 1 + 4 + 10]
            scores.append(torch.sigmoid(y[..., 0:1]).reshape(b, -1, 1))
            boxes.append(y[..., 1:5].reshape(b, -1, 4))
            kps.append(y[..., 5:15].reshape(b, -1, 10))
        return (*scores, *boxes, *kps)


def export_standin(path: str | Path, input_size: int = 640, seed: int = 0) -> Path:
    """Write the stand-in as ONNX (dynamic batch) and return its path."""
    torch.manual_seed(seed)
    model = ScrfdStandIn().eval()
    path = Path(path)
    names = [f"{k}_{s}" for k in ("score", "bbox", "kps") for s in (8, 16, 32)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            torch.zeros(1, 3, input_size, input_size),
            str(path),
            input_names=["input.1"],
            output_names=names,
            dynamic_axes={"input.1": {0: "batch"}, **{n: {0: "batch"} for n in names}},
            opset_version=17,
            dynamo=False,
        )
    return path


if __name__ == "__main__":
    import sys

    print(export_standin(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 640))
