"""Cluster tests in a network namespace of their own, so that Ray, the driver, the workers,
the subscribers and any RTSP server they start can reach nothing but loopback.

A local Ray binds the machine's network address whatever ``--node-ip-address`` says; in a
namespace whose only interface is ``lo`` it finds 127.0.0.1 and uses it. A test module marked
``@pytest.mark.netns`` is therefore run, once, by a second pytest inside
``unshare -n`` (after ``ip link set lo up``), and each of its tests is reported here with
the outcome it had there (a failure with that run's report and its output's tail). Everything
a test starts inherits the namespace. The namespace's output comes with the module's first
test (``-rP`` shows it for passing tests).
Where ``unshare`` is not permitted (no root, no user namespaces) the tests are skipped,
with the reason.

``tests/streamer/conftest.py`` imports the hook. Inside, ``EXPSTREAM_NETNS=1`` is set.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ENV = "EXPSTREAM_NETNS"
OUTPUT = "\0output"
"""The key of a module's whole output among its tests' results."""
LOOPBACK_ONLY = 'ip link set lo up && exec "$@"'
TAIL_CHARS = 6000


def inside() -> bool:
    """True in the namespace a marked module runs in."""
    return os.environ.get(ENV) == "1"


@functools.cache
def unshare_prefix() -> tuple[list[str] | None, str]:
    """The command prefix that runs a command in a new network namespace with ``lo`` up, or
    None and why not."""
    errors = []
    for flags in (["-n"], ["-rn"]):  # as root; else in a user namespace of our own
        cmd = ["unshare", *flags, "--", "sh", "-c", LOOPBACK_ONLY, "sh"]
        try:
            done = subprocess.run([*cmd, "true"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            errors.append(f"unshare {' '.join(flags)}: {e}")
            continue
        if done.returncode == 0:
            return cmd, ""
        errors.append(f"unshare {' '.join(flags)}: {done.stderr.strip() or done.returncode}")
    return None, "no network namespace of its own can be made here (" + "; ".join(errors) + ")"


def _run_module(item: pytest.Item, timeout_s: float) -> dict[str, tuple[str, str]]:
    """Run the marked tests of ``item``'s module in a namespace; name -> (outcome, text)."""
    prefix, why = unshare_prefix()
    names = [i for i in item.session.items if i.path == item.path and i.get_closest_marker("netns")]
    if prefix is None:
        return {i.name: ("skipped", why) for i in names}
    root = item.config.rootpath
    with tempfile.TemporaryDirectory(prefix="netns-") as tmp:
        junit = Path(tmp) / "report.xml"
        cmd = [
            *prefix,
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-s",
            f"--junitxml={junit}",
            *[i.nodeid for i in names],
        ]
        path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, ENV: "1", "PYTHONPATH": path}
        try:
            done = subprocess.run(
                cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout_s
            )
            output = done.stdout
        except subprocess.TimeoutExpired as e:
            output = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            output += f"\n(the namespace's pytest ran past {timeout_s:g} s and was killed)"
        results = _parse_junit(junit) if junit.exists() else {}
    tail = output[-TAIL_CHARS:]
    out = {OUTPUT: ("", output)}
    for i in names:
        outcome, text = results.get(i.name, ("failed", "no result from the namespace's pytest"))
        out[i.name] = outcome, f"{text}\n--- the namespace's pytest, its output's tail ---\n{tail}"
    return out


def _parse_junit(path: Path) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, text = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome, text = "failed", f"{child.get('message', '')}\n{child.text or ''}"
            elif child.tag == "skipped":
                outcome, text = "skipped", child.get("message", "")
        out[case.get("name", "")] = outcome, text
    return out


def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """Run a ``netns`` module's tests in their namespace (once, at its first test); report each."""
    if item.get_closest_marker("netns") is None or inside():
        return None
    cache: dict[Path, dict[str, tuple[str, str]]] = item.config.stash.setdefault(_RESULTS, {})
    if item.path not in cache:
        marker = item.get_closest_marker("timeout")
        timeout_s = float(marker.args[0]) if marker and marker.args else 1800.0
        cache[item.path] = _run_module(item, timeout_s - 30)
    outcome, text = cache[item.path].get(item.name, ("failed", "not run in the namespace"))
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    longrepr: object = None
    if outcome == "skipped":
        longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {text}")
    elif outcome == "failed":
        longrepr = text
    output = cache[item.path].pop(OUTPUT, ("", ""))[1]  # the module's output, with its first test's report
    sections = [("Captured stdout call (in its network namespace)", output)] if output else []
    report = pytest.TestReport(item.nodeid, item.location, {}, outcome, longrepr, "call", sections)
    ihook.pytest_runtest_logreport(report=report)
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


_RESULTS = pytest.StashKey[dict]()
