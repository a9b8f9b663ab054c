"""Face-detection benchmark: recall and false faces per condition for each detector, on the
pictures of ``streamer.benchmark.detection_set``; with ``--speed``, RetinaFace's time per
batch at a few input sizes and thread counts (onnxruntime or torch, CPU or GPU).

A detection finds a face when their boxes overlap by IoU >= 0.4 (each face and each
detection matched once, best score first; the detectors' box conventions differ, Haar's
boxes are squares around eyes and mouth). Every other detection is a false face. Pictures go
through ``detect_frames`` as frames do in the pipeline (scaled to fit ``--input-size``), with
``min_face_px`` 1 so the detector itself is measured.

Example (plain text)::

    python -m streamer.benchmark.detection --detectors haar,retinaface,insightface --json out/det.json
    python -m streamer.benchmark.detection --speed --sizes 320,640 --threads 1,2 --batch 1,4
    python -m streamer.benchmark.detection --speed --runtime torch --device cuda --batch 32 --sizes 640 --tensors
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from configs.streamer import DetectorSettings
from streamer.base import FaceDetector
from streamer.benchmark.detection_set import Picture, conditions, photos
from streamer.values import Detections

MATCH_IOU = 0.4


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` [N, 4] with every box of ``b`` [M, 4]: [N, M].

    Example:
        >>> round(float(iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]]))[0, 0]), 3)
        0.333
    """
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def match(found: Detections, faces: np.ndarray, min_iou: float = MATCH_IOU) -> tuple[int, int]:
    """(faces found, false detections): greedy one-to-one, highest score first.

    Example:
        >>> d = Detections(np.array([[0, 0, 10, 10], [50, 50, 60, 60]], np.float32), np.ones(2, np.float32))
        >>> match(d, np.array([[1, 1, 11, 11]], np.float32))
        (1, 1)
    """
    if len(found) == 0 or len(faces) == 0:
        return 0, len(found)
    overlap = iou(found.bbox_xyxy, faces)
    taken = np.zeros(len(faces), bool)
    hits = 0
    for i in np.argsort(-found.scores, kind="stable"):
        candidates = np.where(taken, -1.0, overlap[i])
        j = int(np.argmax(candidates))
        if candidates[j] >= min_iou:
            taken[j] = True
            hits += 1
    return hits, len(found) - hits


def build(name: str, input_size: int, score_threshold: float) -> tuple[FaceDetector | None, str]:
    """The detector ``name`` at ``input_size`` on the CPU, or None and why it cannot run here
    (SCRFD only from a pack already on disk: a benchmark downloads nothing)."""
    from streamer.detect import create_detector

    settings = DetectorSettings(name=name, input_size=input_size, score_threshold=score_threshold, device="cpu")
    if name == "insightface":
        from streamer.detect.scrfd import scrfd_source

        source, why = scrfd_source(settings, timeout_s=0)
        if source != "local":
            return None, f"not run: {why}"
    return create_detector(settings), ""


def accuracy(detectors: list[str], input_size: int, score_threshold: float) -> dict[str, Any]:
    """Per condition and detector: pictures, faces, found, false; what was skipped."""
    from streamer.detect import detect_frames
    from streamer.frames import FrameImage

    faces, no_faces, skipped = photos()
    pictures: list[Picture] = faces + no_faces + conditions(faces, no_faces)
    rows: dict[str, dict[str, Any]] = defaultdict(lambda: {"pictures": 0, "faces": 0})
    for p in pictures:
        rows[p.condition]["pictures"] += 1
        rows[p.condition]["faces"] += len(p.faces)
    not_run = {}
    for name in detectors:
        det, why = build(name, input_size, score_threshold)
        if det is None:
            not_run[name] = why
            continue
        settings = DetectorSettings(min_face_px=1)
        for p in pictures:
            (found,) = detect_frames(det, [FrameImage.from_bgr(p.image)], settings)
            assert isinstance(found, Detections), found
            hit, false = match(found, p.faces)
            row = rows[p.condition].setdefault(name, {"found": 0, "false": 0})
            row["found"] += hit
            row["false"] += false
    return {"rows": dict(rows), "not_run": not_run, "skipped": skipped, "match_iou": MATCH_IOU}


def accuracy_table(report: dict[str, Any], detectors: list[str]) -> str:
    ran = [d for d in detectors if d not in report["not_run"]]
    head = "| condition | pictures | faces | " + " | ".join(f"{d} found | {d} false" for d in ran) + " |"
    lines = [head, "|" + "---|" * (3 + 2 * len(ran))]
    for cond, row in report["rows"].items():
        cells = []
        for d in ran:
            r = row.get(d, {"found": 0, "false": 0})
            share = f" ({r['found'] / row['faces']:.0%})" if row["faces"] else ""
            cells += [f"{r['found']}{share}", str(r["false"])]
        lines.append(f"| {cond} | {row['pictures']} | {row['faces']} | " + " | ".join(cells) + " |")
    for d, why in report["not_run"].items():
        lines.append(f"\n{d}: {why}")
    for s in report["skipped"]:
        lines.append(f"\nskipped {s}")
    return "\n".join(lines)


def _frame(size: int) -> tuple[np.ndarray, str]:
    """A 16:9 frame scaled to fit ``size`` as the frame paths hand it to the detector: the
    group photo (else the astronaut, else a random texture) on grey; and which it is."""
    import cv2

    from streamer.detect import fit_size

    faces, _, _ = photos()
    found = {p.name: p.image for p in faces}
    name = next((n for n in ("t1", "astronaut") if n in found), "random texture")
    rng = np.random.default_rng(0)
    photo = found.get(name, rng.integers(0, 255, (720, 720, 3), dtype=np.uint8))
    h = 720
    w = min(1280, round(photo.shape[1] * h / photo.shape[0]))
    canvas = np.full((720, 1280, 3), 40, np.uint8)
    x0 = (1280 - w) // 2
    canvas[:, x0 : x0 + w] = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
    return cv2.resize(canvas, fit_size((1280, 720), (size, size)), interpolation=cv2.INTER_AREA), name


def speed(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Median time of ``detect_batch`` per size x threads x batch."""
    import torch

    from streamer.detect import create_detector

    rows = []
    for size in args.sizes:
        frame, picture_name = _frame(size)
        for threads in args.threads:
            if args.runtime == "torch" and args.device == "cpu":
                torch.set_num_threads(threads)
            settings = DetectorSettings(
                name="retinaface", input_size=size, runtime=args.runtime, device=args.device, threads=threads
            )
            det = create_detector(settings)
            picture: Any = frame
            if args.tensors:
                picture = torch.from_numpy(frame).to(getattr(det, "device", "cpu"))
            for batch in args.batch:
                pictures = [picture] * batch
                for _ in range(args.warmup):
                    found = det.detect_batch(pictures)
                times, start = [], time.perf_counter()
                while len(times) < args.iters and time.perf_counter() - start < args.max_seconds:
                    t0 = time.perf_counter()
                    det.detect_batch(pictures)  # its faces come back to the host: synchronised
                    times.append(time.perf_counter() - t0)
                ms = statistics.median(times) * 1e3
                row = {
                    "runtime": args.runtime,
                    "device": str(getattr(det, "device", "cpu" if args.device == "cpu" else args.device)),
                    "input_wh": [frame.shape[1], frame.shape[0]],
                    "picture": picture_name,
                    "threads": threads,
                    "batch": batch,
                    "tensors": bool(args.tensors),
                    "ms_per_batch": round(ms, 2),
                    "ms_per_picture": round(ms / batch, 2),
                    "pictures_per_s": round(batch * 1e3 / ms, 1),
                    "iters": len(times),
                    "faces_per_picture": len(found[0]),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def speed_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| runtime | device | input | threads | batch | ms / batch | ms / picture | pictures/s |"]
    lines.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        w, h = r["input_wh"]
        lines.append(
            f"| {r['runtime']} | {r['device']}{' (tensors)' if r['tensors'] else ''} | {w}x{h} | {r['threads']} "
            f"| {r['batch']} | {r['ms_per_batch']} | {r['ms_per_picture']} | {r['pictures_per_s']} |"
        )
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m streamer.benchmark.detection", description=__doc__.split("\n")[0])
    p.add_argument("--detectors", default="haar,retinaface,insightface", help="comma-separated detector names")
    p.add_argument("--input-size", type=int, default=640)
    p.add_argument("--score-threshold", type=float, default=0.5)
    p.add_argument("--json", type=Path, help="also write the report here")
    s = p.add_argument_group("--speed: RetinaFace's time per batch")
    s.add_argument("--speed", action="store_true")
    s.add_argument("--runtime", choices=["onnxruntime", "torch"], default="onnxruntime")
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    s.add_argument("--sizes", type=_ints, default=[320, 640], help="input sizes (16:9 frames fit inside)")
    s.add_argument("--threads", type=_ints, default=[1, 2], help="onnxruntime (or torch CPU) threads")
    s.add_argument("--batch", type=_ints, default=[1, 4])
    s.add_argument("--tensors", action="store_true", help="torch: pictures as uint8 tensors on the device")
    s.add_argument("--warmup", type=int, default=3)
    s.add_argument("--iters", type=int, default=20)
    s.add_argument("--max-seconds", type=float, default=10.0, help="time cap per measurement")
    args = p.parse_args(argv)
    from streamer.benchmark.report import machine, versions

    used = list(sys.argv[1:] if argv is None else argv)
    command = shlex.join(["python", "-m", "streamer.benchmark.detection", *used])
    report: dict[str, Any] = {"command": command, "machine": machine(), "versions": versions()}
    if args.speed:
        report["speed"] = speed(args)
        print(speed_table(report["speed"]))
    else:
        detectors = [d.strip() for d in args.detectors.split(",") if d.strip()]
        report["accuracy"] = accuracy(detectors, args.input_size, args.score_threshold)
        print(accuracy_table(report["accuracy"], detectors))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
