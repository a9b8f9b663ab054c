"""What a new user meets first: ``streamer run --demo -c offline`` finds every face of the
demo clip, follows each with one track for the whole clip, fits its settings to the machine
and says so, and ends with a summary that tells how many frames were processed.

The clip runs unpaced here (``sources.realtime=false``): whether a 2-core machine keeps real
time is a benchmark (docs/BENCHMARKS.md), not something a test on a busy machine can assert.
"""

from __future__ import annotations

import json
import logging
from collections import Counter

from streamer.cli import main


def test_demo_follows_every_face_with_one_track(tmp_path, caplog):
    out = tmp_path / "demo.jsonl"
    args = ["run", "--demo", "-c", "offline", "--set", "sources.realtime=false"]
    args += ["--set", f"engine.cache_dir={tmp_path / 'cache'}", "--set", "publisher.kind=jsonl"]
    args += ["--set", f"publisher.path={out}"]
    with caplog.at_level(logging.INFO):
        assert main(args) == 0
    msgs = [json.loads(line) for line in out.read_text().splitlines()]
    faces = [m for m in msgs if m["type"] == "faces"]
    assert [m["frame_index"] for m in faces] == list(range(300))

    per_frame = [{f["track_id"] for f in m["faces"]} for m in faces]
    counts = Counter(t for ids in per_frame for t in ids)
    assert len(counts) == 6, counts  # the group photo's six faces, nothing else
    # The clip pans there and back: five faces stay in view, the sixth comes in and goes out
    # again. Each face is one track: present in one unbroken run of frames, never replaced.
    runs = {t: [i for i, ids in enumerate(per_frame) if t in ids] for t in counts}
    for t, seen in runs.items():
        assert seen == list(range(seen[0], seen[-1] + 1)), f"track {t} was lost and found again"
    whole = [t for t, seen in runs.items() if seen[0] <= 2 and seen[-1] == 299]
    assert len(whole) == 5, runs
    tracks = [m for m in msgs if m["type"] == "event" and m["scope"] == "track"]
    assert Counter(e["kind"] for e in tracks) == {"started": 6, "ended": 6}

    text = caplog.text
    assert "automatic settings for" in text and "detector.full_frame_every=" in text
    assert "demo: 300 of 300 decoded frames processed" in text
