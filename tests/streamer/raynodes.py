"""A Ray cluster of several nodes on this machine for the end-to-end cluster tests: a head
started with ``ray start --head`` and more nodes with ``ray start --address ...``, each a
raylet of its own with its own declared resources, as on separate hosts. Run it inside the
test's network namespace (``netns.py``) so that every node advertises 127.0.0.1.

Each process is tracked by this object (the session directory under its own temp dir names
them all), so ``kill_node`` kills exactly one node (its raylet and everything the raylet
started: the node's workers and agents) and ``stop`` kills what is left; ``ray stop`` is
never used, since it kills every Ray process of the machine, another test's included.

Usage::

    with RayNodes(tmp_path) as ray_nodes:
        address = ray_nodes.start_head(cpus=2, resources={"head_slot": 1})
        b = ray_nodes.add_node("b", cpus=2, gpus=1)
        ...                                  # streamer cluster --set cluster.address=<address>
        ray_nodes.kill_node(b)               # SIGKILL its raylet and its workers
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

START_TIMEOUT_S = 120.0
RAY = str(Path(sys.executable).with_name("ray"))
"""Ray's own command line, installed with the ``ray`` package next to this Python."""


@dataclass(frozen=True)
class RayNode:
    name: str
    raylet_pid: int
    resources: dict[str, float]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc."""
    out: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out.setdefault(ppid, []).append(int(entry.name))
    return out


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    tree, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(tree.get(p, []))
    return out


def _kill(pids: list[int]) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayNodes:
    """Nodes of one local Ray cluster, started and killed by a test (see the module's doc)."""

    def __init__(self, tmp: Path) -> None:
        # Ray's socket paths must fit AF_UNIX's 107 bytes: a short temp dir of its own, which is
        # also the marker in every process's command line
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rn-", dir="/tmp"))
        self.logs = tmp
        self.address = ""
        self.nodes: dict[str, RayNode] = {}
        self.roots: list[int] = []
        """Every process this object started (``ray start`` leaves its daemons behind)."""
        # A token left in ~/.ray by `ray get-auth-token --generate` makes a joining node
        # present a token the head never asked for; the nodes here use an empty home of their own.
        # Workers at nice 0, as docs/deployment.md tells real sites to start Ray (real-time streams).
        self.env = {
            **os.environ,
            "RAY_USAGE_STATS_ENABLED": "0",
            "HOME": str(tmp / "ray-home"),
            "RAY_worker_niceness": "0",
        }
        (tmp / "ray-home").mkdir(exist_ok=True)

    def _raylets(self) -> set[int]:
        marker = str(self.temp_dir)
        return {
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and "raylet/raylet" in (c := _cmdline(int(p.name))) and marker in c
        }

    def _start(self, name: str, args: list[str], resources: dict[str, float]) -> RayNode:
        before = self._raylets()
        log = self.logs / f"ray-start-{name}.log"
        with log.open("w") as out:
            done = subprocess.run(
                [RAY, "start", *args, "--disable-usage-stats"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=START_TIMEOUT_S,
            )
        if done.returncode != 0:
            raise RuntimeError(f"ray start ({name}) exited {done.returncode}:\n{log.read_text()[-3000:]}")
        new = self._raylets() - before
        if len(new) != 1:
            raise RuntimeError(f"ray start ({name}): expected one new raylet, found {sorted(new)}")
        node = RayNode(name, new.pop(), resources)
        self.nodes[name] = node
        return node

    def start_head(self, cpus: int, gpus: float = 0, resources: dict[str, float] | None = None) -> str:
        """Start the head node; its GCS address (``127.0.0.1:PORT``)."""
        port = free_port()
        res = dict(resources or {})
        self._start(
            "head",
            [
                "--head",
                f"--port={port}",
                "--node-ip-address=127.0.0.1",
                f"--num-cpus={cpus}",
                f"--num-gpus={gpus:g}",
                f"--resources={json.dumps(res)}",
                "--include-dashboard=false",
                f"--temp-dir={self.temp_dir}",
            ],
            res,
        )
        self.address = f"127.0.0.1:{port}"
        return self.address

    def add_node(self, name: str, cpus: int, gpus: float = 0, resources: dict[str, float] | None = None) -> RayNode:
        """Start one more node (a raylet of its own) that joins the head."""
        if not self.address:
            raise RuntimeError("start_head first")
        res = dict(resources or {})
        return self._start(
            name,
            [
                f"--address={self.address}",
                "--node-ip-address=127.0.0.1",
                f"--num-cpus={cpus}",
                f"--num-gpus={gpus:g}",
                f"--resources={json.dumps(res)}",
            ],
            res,
        )

    def kill_node(self, node: RayNode) -> list[int]:
        """SIGKILL the node's raylet and every process it started; the pids killed."""
        pids = descendants(node.raylet_pid)
        _kill(pids)
        del self.nodes[node.name]
        return pids

    def alive_nodes(self, timeout_s: float = 30.0) -> list[dict]:
        """``ray.nodes()`` as the head's GCS reports them (in a subprocess: this test process
        stays out of Ray)."""
        code = (
            "import json, ray; ray.init(address=%r, logging_level='ERROR'); print('NODES ' + json.dumps(ray.nodes()))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code % self.address],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-3000:])
        # Ray may print warnings of its own ("raylet has lagging heartbeats ...") around ours
        line = next(ln for ln in reversed(done.stdout.splitlines()) if ln.startswith("NODES "))
        return [n for n in json.loads(line.removeprefix("NODES ")) if n["Alive"]]

    def stop(self) -> None:
        """Kill every process of this cluster: each node's tree, then anything still naming
        its temp dir (the GCS and the head's daemons)."""
        marker = str(self.temp_dir)
        for _ in range(3):
            pids = [
                int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and marker in _cmdline(int(p.name))
            ]
            roots = pids + [n.raylet_pid for n in self.nodes.values()]
            everything = {d for r in roots for d in descendants(r)} - {os.getpid()}
            if not everything:
                break
            _kill(sorted(everything))
            time.sleep(0.2)
        self.nodes.clear()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> RayNodes:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
