"""The multi-node fixture itself (``raynodes.py``): two raylets join one head, each with its
own declared resources; killing one node leaves the other alive; stopping leaves nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.streamer.raynodes import RayNodes, _cmdline, descendants

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.timeout(600)]


def test_two_nodes_one_killed(tmp_path: Path) -> None:
    with RayNodes(tmp_path) as nodes:
        address = nodes.start_head(cpus=1, resources={"site_a": 1})
        assert address.startswith("127.0.0.1:")
        b = nodes.add_node("b", cpus=1, gpus=2, resources={"site_b": 1})
        alive = nodes.alive_nodes()
        assert len(alive) == 2
        assert {n["NodeManagerAddress"] for n in alive} == {"127.0.0.1"}
        by_site = {("site_a" in n["Resources"], n["Resources"].get("GPU", 0)) for n in alive}
        assert by_site == {(True, 0), (False, 2.0)}
        killed = nodes.kill_node(b)
        assert b.raylet_pid in killed
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(nodes.alive_nodes()) != 1:
            time.sleep(1)
        (left,) = nodes.alive_nodes()
        assert "site_a" in left["Resources"]
        head = next(iter(nodes.nodes.values()))
    marker = str(nodes.temp_dir)
    left_over = [p for p in descendants(head.raylet_pid) if marker in _cmdline(p)]
    assert not left_over
    assert not any(marker in _cmdline(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit())
