"""One table of control requests, good and bad, run against both controllers: one process's
(``streamer.service.control.Controller`` on a fake pipeline) and the cluster's
(``streamer.cluster.control.ClusterController`` on a fake driver, no Ray). Both must give
the same answer, word for word, and hand the same checked values on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from configs.engine import EngineSettings
from configs.sources import SourceSettings
from streamer.cluster.control import ClusterController
from streamer.net.endpoints import answer
from streamer.pipeline.stats import PipelineStats
from streamer.service.control import Controller

GOOD = None


@dataclass
class _Engine:
    settings: EngineSettings
    fingerprint: str = "0123456789ab"
    classes: tuple[str, ...] = ("calm", "tense")


class FakePipeline:
    """What ``Controller`` calls on a ``Pipeline``; records what it was given."""

    def __init__(self) -> None:
        self.engine = _Engine(EngineSettings())
        self.settings = SimpleNamespace(sources=SourceSettings())
        self.stats = PipelineStats()
        self.calls: list[tuple[str, Any]] = []

    def running_streams(self) -> list[str]:
        return ["cam0"]

    def add_source(self, spec: Any) -> None:
        self.calls.append(("add_source", (spec.stream_id, spec.uri)))
        self.stats.stream(spec.stream_id).started = True  # its source opened

    def remove_source(self, sid: str) -> None:
        self.calls.append(("remove_source", sid))

    def change_engine(self, new: EngineSettings) -> _Engine:
        self.calls.append(("change_engine", new))
        return self.engine


class FakeCluster:
    """What ``ClusterController`` calls on the driver; records what it was given."""

    def __init__(self) -> None:
        self.engine_settings = EngineSettings()
        self.calls: list[tuple[str, Any]] = []

    def status(self) -> dict[str, Any]:
        return {"streams": ["cam0"], "engine": "0123456789ab", "classes": ["calm", "tense"], "workers": []}

    def add_source(self, stream_id: str, uri: str, weight: int) -> dict[str, Any]:
        self.calls.append(("add_source", (stream_id, uri)))
        return {"streams": ["cam0", stream_id]}

    def remove_source(self, stream_id: str) -> dict[str, Any]:
        self.calls.append(("remove_source", stream_id))
        return {"removing": stream_id}

    def change_engine(self, body: dict[str, Any], engine: EngineSettings) -> dict[str, Any]:
        assert body["op"] in ("set_prompts", "set_head")
        self.calls.append(("change_engine", engine))
        return {"engine": "0123456789ab", "classes": ["calm", "tense"], "workers_failed": {}}


ID_RULE = "use letters, digits, '_', '.' and '-', at most 64"
HEAD_TYPE = "head: expected a released head name, a file path or 'none'"
NEEDS_ID_URI = "add_source needs a non-empty 'id' and 'uri'"

CASES: list[tuple[str, Any, str | None]] = [
    # (name, request, expected error: None when accepted)
    ("status", {"op": "status"}, GOOD),
    ("add", {"op": "add_source", "id": "cam3", "uri": "rtsp://h/live"}, GOOD),
    ("add, longest id, weight", {"op": "add_source", "id": "c" * 64, "uri": "x.mp4", "weight": 2}, GOOD),
    ("remove", {"op": "remove_source", "id": "cam0"}, GOOD),
    ("prompts", {"op": "set_prompts", "prompts": {"custom": {"calm": ["a calm face."]}}}, GOOD),
    ("released head", {"op": "set_head", "head": "expclip-b16"}, GOOD),
    ("no head", {"op": "set_head", "head": "none"}, GOOD),
    ("head ./", {"op": "set_head", "head": "./heads/mine.pth"}, GOOD),
    ("head ../", {"op": "set_head", "head": "../mine.pt"}, GOOD),
    ("head ~", {"op": "set_head", "head": "~/heads/mine.safetensors"}, GOOD),
    ("head upper-case suffix", {"op": "set_head", "head": "heads/MINE.PTH"}, GOOD),
    ("not an object", ["op", "status"], "request must be a JSON object"),
    ("no op", {}, "op: got None; allowed: status, set_prompts, set_head, add_source, remove_source"),
    ("unknown op", {"op": "frobnicate"}, "op: got 'frobnicate'; allowed:"),
    ("op not a string", {"op": 7}, "op: got 7; allowed:"),
    ("head pickle", {"op": "set_head", "head": "heads/mine.pkl"}, "head: 'heads/mine.pkl' is not a head file"),
    ("head pickle upper", {"op": "set_head", "head": "./MINE.PKL"}, "is not a head file (.pth, .pt or .safetensors)"),
    ("head directory", {"op": "set_head", "head": "./heads/"}, "head: './heads/' is not a head file"),
    ("head directory .pth", {"op": "set_head", "head": "./stash.pth"}, "head: './stash.pth' is a directory"),
    ("head ~nobody", {"op": "set_head", "head": "~no_such_user_x/h.pth"}, "is not a usable path"),
    ("head with a space", {"op": "set_head", "head": "expclip l14"}, "is not a head file"),
    ("head empty", {"op": "set_head", "head": ""}, HEAD_TYPE),
    ("head missing", {"op": "set_head"}, HEAD_TYPE),
    ("head not a string", {"op": "set_head", "head": ["a.pth"]}, HEAD_TYPE),
    ("prompts null", {"op": "set_prompts", "prompts": None}, "prompts: got None; set_prompts needs a non-empty"),
    ("prompts missing", {"op": "set_prompts"}, "prompts: got None; set_prompts needs a non-empty 'prompts' object"),
    ("prompts empty", {"op": "set_prompts", "prompts": {}}, "prompts: got {}; set_prompts needs a non-empty"),
    # refused by the engine.prompts schema itself (configs/engine.py: PromptSettings checks class names)
    ("empty class name", {"op": "set_prompts", "prompts": {"classes": ["calm", ""]}}, "prompts"),
    ("prompts not a mapping", {"op": "set_prompts", "prompts": "calm"}, "invalid configuration (prompts)"),
    ("prompts unknown key", {"op": "set_prompts", "prompts": {"custon": {}}}, "custon: unknown key"),
    ("add without id", {"op": "add_source", "uri": "x.mp4"}, NEEDS_ID_URI),
    ("add id not a string", {"op": "add_source", "id": 5, "uri": "x.mp4"}, NEEDS_ID_URI),
    ("add empty uri", {"op": "add_source", "id": "cam0", "uri": ""}, NEEDS_ID_URI),
    ("add id newline", {"op": "add_source", "id": "cam0\n", "uri": "x.mp4"}, f"stream id 'cam0\\n': {ID_RULE}"),
    ("add id too long", {"op": "add_source", "id": "c" * 65, "uri": "x.mp4"}, ID_RULE),
    ("add id with a space", {"op": "add_source", "id": "cam 0", "uri": "x.mp4"}, ID_RULE),
    ("add weight 0", {"op": "add_source", "id": "cam0", "uri": "x", "weight": 0}, "weight: got 0; a whole number >= 1"),
    ("add weight text", {"op": "add_source", "id": "cam0", "uri": "x", "weight": "2"}, "weight: got '2'"),
    ("add weight bool", {"op": "add_source", "id": "cam0", "uri": "x", "weight": True}, "weight: got True"),
    ("remove without id", {"op": "remove_source"}, "remove_source needs the stream 'id'"),
    ("remove id not a string", {"op": "remove_source", "id": 3}, "remove_source needs the stream 'id'"),
    ("remove id newline", {"op": "remove_source", "id": "cam0\n"}, ID_RULE),
]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Relative head paths resolve here; ``stash.pth`` is a directory."""
    (tmp_path / "stash.pth").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("request_", "error"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_both_controllers_answer_alike(request_: Any, error: str | None) -> None:
    pipeline, cluster = FakePipeline(), FakeCluster()
    one = answer(Controller(pipeline), request_)  # type: ignore[arg-type]
    many = answer(ClusterController(cluster), request_)
    if error is None:
        assert one["ok"] and many["ok"], (one, many)
        assert pipeline.calls == cluster.calls, "both controllers hand on the same checked values"
        return
    assert one == many, "one process and the cluster refuse alike"
    assert one["ok"] is False and error in one["error"], one
    assert pipeline.calls == [] and cluster.calls == [], "a refused request changes nothing"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ("./heads/mine.pth", "heads/mine.pth"),
        ("../mine.pt", "../mine.pt"),
        ("heads/MINE.PTH", "heads/MINE.PTH"),
        ("~/heads/mine.safetensors", None),
        ("expclip-b16", None),
    ],
)
def test_head_paths_become_absolute_and_names_stay(in_tmp: Path, head: str, expected: str | None) -> None:
    """Every cluster node must find a head file: both controllers pass on an absolute path
    (``~`` expanded), relative ones against the working directory; a name stays a name."""
    cluster = FakeCluster()
    assert answer(ClusterController(cluster), {"op": "set_head", "head": head})["ok"]
    got = cluster.calls[0][1].head
    if head == "expclip-b16":
        assert got == head
    elif expected is None:
        assert got == str(Path(head).expanduser())
    else:
        assert got == str((in_tmp / expected).resolve())
