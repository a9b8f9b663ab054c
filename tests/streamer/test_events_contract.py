"""What subscribers in any language rely on: the schemas compile under Ajv's strict mode,
event times never run backwards along ``seq``, and no message holds NaN or Infinity."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess

import pytest

from configs import load_settings
from streamer.pipeline import Pipeline, StreamSpec
from tests.streamer.helpers import OFFLINE, SCHEMAS
from tests.streamer.test_pipeline import FakeEngine, ListPublisher


def _objects(node, where="#"):
    """Every JSON object in a schema, with its JSON pointer."""
    if isinstance(node, dict):
        yield where, node
        for k, v in node.items():
            yield from _objects(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _objects(v, f"{where}/{i}")


@pytest.mark.parametrize("name", ["events.v1.json", "faces.v1.json"])
def test_every_required_property_is_defined_beside_it(name):
    """Ajv's strictRequired: each name in ``required`` is in the same object's ``properties``
    (the events schema's ``then`` once required track_id without defining it there)."""
    schema = json.loads((SCHEMAS / name).read_text())
    for where, obj in _objects(schema):
        for prop in obj.get("required", []) if isinstance(obj.get("required"), list) else []:
            assert prop in obj.get("properties", {}), f"{name}{where}: required {prop!r} is not defined there"


def _node_with(*packages: str) -> tuple[str, dict[str, str]] | None:
    """node and an environment in which ``require`` finds ``packages`` (NODE_PATH, or
    EXPSTREAM_NODE_MODULES), or None."""
    node = shutil.which("node")
    if node is None:
        return None
    env = dict(os.environ)
    extra = os.environ.get("EXPSTREAM_NODE_MODULES")
    if extra:
        env["NODE_PATH"] = os.pathsep.join(p for p in (extra, env.get("NODE_PATH")) if p)
    probe = ";".join(f"require.resolve({p!r})" for p in packages)
    ok = subprocess.run([node, "-e", probe], env=env, capture_output=True, timeout=60).returncode == 0
    return (node, env) if ok else None


AJV_CHECK = r"""
const Ajv2020 = require("ajv/dist/2020");
const fs = require("fs");
const [faces, events, messages] = process.argv.slice(2).map((p) => fs.readFileSync(p, "utf8"));
const ajv = new Ajv2020({strict: true, allErrors: true});
const v = {faces: ajv.compile(JSON.parse(faces)), events: ajv.compile(JSON.parse(events))};
let n = 0;
for (const line of messages.split("\n").filter(Boolean)) {
  const [topic, payload] = JSON.parse(line);
  const msg = JSON.parse(payload);   // throws on NaN / Infinity
  const kind = topic.split(".")[0];
  if (!v[kind](msg)) { console.error(topic, JSON.stringify(v[kind].errors)); process.exit(1); }
  n++;
}
console.log(`ok ${n}`);
"""


def test_schemas_compile_under_ajv_strict_and_node_reads_every_message(face_clip, tmp_path):
    """Skips without node and the npm package ajv (``npm install ajv``; point
    EXPSTREAM_NODE_MODULES at its node_modules)."""
    found = _node_with("ajv/dist/2020")
    if found is None:
        pytest.skip("node with the npm package ajv not found (set EXPSTREAM_NODE_MODULES)")
    node, env = found
    settings = load_settings(OFFLINE, ["detector.name=haar", "stats.enabled=false", "scheduler.max_hz=1000"])
    pub = ListPublisher()
    Pipeline(settings, [StreamSpec("cam0", str(face_clip))], pub, engine=FakeEngine()).run()
    lines = tmp_path / "messages.jsonl"
    seqs: dict[str, int] = {}
    with lines.open("w") as f:
        for topic, msg in pub.messages:
            seqs[topic] = seqs.get(topic, -1) + 1
            f.write(json.dumps([topic, json.dumps({**msg, "seq": seqs[topic]}, allow_nan=False)]) + "\n")
    script = tmp_path / "check.js"
    script.write_text(AJV_CHECK)
    args = [str(SCHEMAS / "faces.v1.json"), str(SCHEMAS / "events.v1.json"), str(lines)]
    res = subprocess.run([node, str(script), *args], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip() == f"ok {len(pub.messages)}"


def test_event_times_never_run_backwards_along_seq(face_clip):
    """A stream's ``ended`` is observed by its source before the detection thread publishes
    the last frames' track ends; it is stamped when published, its source's own time rides
    in ``source_time_s``."""
    settings = load_settings(OFFLINE, ["detector.name=haar", "stats.enabled=false", "scheduler.max_hz=1000"])
    pub = ListPublisher()
    specs = [StreamSpec("a", str(face_clip)), StreamSpec("b", str(face_clip))]
    Pipeline(settings, specs, pub, engine=FakeEngine()).run()
    for sid in ("a", "b"):
        events = [m for t, m in pub.messages if t == f"events.{sid}"]
        assert any(e["scope"] == "track" for e in events), "the clip's faces make track events"
        times = [e["wall_time_s"] for e in events]
        assert all(b >= a for a, b in itertools.pairwise(times)), times
        last = events[-1]
        assert last["scope"] == "stream" and last["kind"] == "ended"
        assert last["source_time_s"] <= last["wall_time_s"]
        assert all("source_time_s" in e for e in events if e["scope"] == "stream")


def test_no_message_of_a_run_holds_a_non_finite_number(face_clip):
    settings = load_settings(OFFLINE, ["detector.name=haar", "stats.enabled=false", "scheduler.max_hz=1000"])
    pub = ListPublisher()
    Pipeline(settings, [StreamSpec("a", str(face_clip))], pub).run()  # the real offline engine
    for _topic, msg in pub.messages:
        json.dumps(msg, allow_nan=False)
    assert any(f["label"] for t, m in pub.messages if t.startswith("faces.") for f in m["faces"])
