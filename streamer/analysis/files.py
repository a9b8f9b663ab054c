"""Which videos to analyze, what each is called in the output folder, and the manifest that
lets a rerun skip what is done.

``expand_inputs`` takes files, folders (searched recursively for video files) and glob
patterns; what matches nothing is reported, never silently dropped. The manifest
(``DIR/manifest.json``, written atomically after each video) keys each video by its path, size
and modification time and by the analysis fingerprint (the engine's fingerprint plus a hash
of every setting that changes the results): a rerun skips a video only when all of them
match and its outputs are there, and redoes the rest.

Example:
    >>> video_names([Path("a/lobby.mp4"), Path("b/lobby.mp4"), Path("c/hall 1.mov")])[2]
    'hall_1'
    >>> m = Manifest({})
    >>> m.done("hall_1", {"path": "/v/hall 1.mov", "size": 9, "mtime_ns": 1}, "fp")
    False
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".mts")
"""What a folder's files must end with to be analyzed (a file named explicitly may be anything)."""
MANIFEST = "manifest.json"


def expand_inputs(items: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """(videos in the order given, each once; (input, reason) for inputs that name none)."""
    found: list[Path] = []
    bad: list[tuple[str, str]] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            videos = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            found += videos
            if not videos:
                bad.append((item, "folder holds no video file (" + ", ".join(VIDEO_SUFFIXES) + ")"))
        elif path.is_file():
            found.append(path)
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(item), recursive=True))
            found += [p for p in matches if p.is_file()]
            if not any(p.is_file() for p in matches):
                bad.append((item, "pattern matches no file"))
        else:
            bad.append((item, "no such file or folder"))
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return unique, bad


def video_names(paths: list[Path]) -> list[str]:
    """A folder name per video: its file name's stem (safe characters only); stems shared
    by several videos get a short hash of the full path, so names do not depend on order."""
    stems = [re.sub(r"[^A-Za-z0-9_.-]", "_", p.stem)[:48] or "video" for p in paths]
    return [
        f"{s}-{hashlib.sha1(str(p.resolve()).encode()).hexdigest()[:6]}" if stems.count(s) > 1 else s
        for s, p in zip(stems, paths, strict=True)
    ]


def file_key(path: Path) -> dict[str, Any]:
    """What identifies a video's content for the manifest: full path, size, modification time."""
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


class Manifest:
    """``DIR/manifest.json``: per video name, its key, the analysis fingerprint, and its
    outcome (``done`` with counts, or ``failed`` with the reason)."""

    def __init__(self, data: dict[str, Any], path: Path | None = None) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = dict(data.get("videos", {}))
        self.not_found: list[dict[str, str]] = []
        """This run's inputs that named no video, with the reason (written with the entries)."""

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError):
            data = {}  # unreadable: everything is redone, and the manifest rewritten
        return cls(data if isinstance(data, dict) else {}, path)

    def done(self, name: str, key: dict[str, Any], fingerprint: str) -> bool:
        """True when ``name`` was analyzed from the same file with the same fingerprint and
        its outputs are still there."""
        e = self.entries.get(name)
        if e is None or e.get("status") != "done" or e.get("key") != key or e.get("fingerprint") != fingerprint:
            return False
        return self.path is None or (self.path.parent / name / "faces.parquet").is_file()

    def record(self, name: str | None, entry: dict[str, Any] | None = None) -> None:
        """Set ``name``'s entry (None: only write) and write the manifest atomically (a
        temporary file renamed)."""
        if name is not None and entry is not None:
            self.entries[name] = entry
        if self.path is None:
            return
        data = {"version": 1, "videos": self.entries, "inputs_not_found": self.not_found}
        tmp = self.path.with_name(f".{MANIFEST}.{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.path)
