"""The deployment files (``deploy/``, docs/deployment.md) parse, and every command they run
exists with the options they give it: ``ray start``/``ray status`` as Ray's own command line
parses them, ``streamer cluster`` as ours does, with the site configuration and sources they
mount; the names that tie the pieces together (the head's service, its ports, the Dockerfile's
extra) agree. Nothing is built or started: there is no Docker or Kubernetes here."""

from __future__ import annotations

import shlex
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from configs import load_settings
from streamer.cli import build_parser
from streamer.cluster.sourcelist import load_sources
from tests.streamer.helpers import ROOT

DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
KUBERAY = DEPLOY / "kuberay" / "raycluster.yaml"
SEPARATORS = {";", "&&", "||", "&", "|"}
SHELL_WORDS = {"exec", "until", "while", "do", "done", "if", "then", "fi"}


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a ``sh -c`` script (keywords, ``exec`` and redirections dropped)."""
    lex = shlex.shlex(script, posix=True, punctuation_chars=";&|<>")
    lex.whitespace_split = True
    tokens, out, cur = list(lex), [], []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in SEPARATORS:
            out.append(cur)
            cur = []
        elif tok[:1] in "<>":  # a redirection and its target (and the fd number before it)
            if cur and cur[-1].isdigit():
                cur.pop()
            i += 1
        else:
            cur.append(tok)
        i += 1
    out.append(cur)
    cleaned = []
    for cmd in out:
        while cmd and cmd[0] in SHELL_WORDS:
            cmd = cmd[1:]
        if cmd:
            cleaned.append(cmd)
    return cleaned


def check_command(argv: list[str], mounts: dict[str, Path]) -> None:
    """``argv`` names a command that exists and accepts these arguments."""
    name, args = argv[0], argv[1:]
    if name == "ray":
        from ray.scripts.scripts import cli

        sub = cli.get_command(None, args[0])  # type: ignore[arg-type]
        assert sub is not None, f"ray has no command {args[0]!r}"
        sub.make_context(f"ray {args[0]}", args[1:])  # click: unknown or malformed options raise
    elif name == "streamer":
        try:
            parsed = build_parser().parse_args(args)
        except SystemExit as e:
            raise AssertionError(f"streamer refuses {args}") from e
        assert parsed.command == "cluster" and parsed.action == "run", parsed
        site = _local(parsed.config, mounts)
        settings = load_settings(str(site), list(parsed.overrides or []))
        assert settings.publisher.kind == "zmq" and settings.publisher.bind
        assert load_sources(str(_local(parsed.sources, mounts)))
    else:
        assert shutil.which(name) or name in ("tini",), f"{name}: no such command"


def _local(path: str, mounts: dict[str, Path]) -> Path:
    for inside, outside in mounts.items():
        if path.startswith(inside + "/"):
            return outside / path[len(inside) + 1 :]
    raise AssertionError(f"{path} is on no mounted volume ({', '.join(mounts)})")


def container_argv(entrypoint: list[str], command: list[str]) -> list[list[str]]:
    argv = [*entrypoint, *command]
    if argv[:2] == ["tini", "--"]:
        argv = argv[2:]
    if argv[:2] == ["sh", "-c"]:
        return shell_commands(" ".join(argv[2:]))
    return [argv]


def test_the_compose_file_runs_commands_that_exist():
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    assert set(services) == {"head", "worker"}
    mounts = {"/etc/expstream": COMPOSE.parent / "site"}
    for name, svc in services.items():
        assert {v.split(":")[1] for v in svc["volumes"] if v.startswith("./")} == {"/etc/expstream"}, name
        for argv in container_argv(svc["entrypoint"], svc["command"]):
            check_command(argv, mounts)
    # What ties the pieces together.
    head = shell_commands(services["head"]["command"][0])
    worker = services["worker"]["command"]
    assert "--port=6379" in head[0] and "--address=head:6379" in worker
    site = load_settings(str(COMPOSE.parent / "site" / "site.yaml"), [])
    assert site.cluster.advertise_host == "head" and site.cluster.address == "auto"
    published = {p.split(":")[-1] for p in services["head"]["ports"]}
    endpoints = (site.publisher.endpoint, site.snapshot.endpoint, site.control.endpoint)
    assert {e.rsplit(":", 1)[1] for e in endpoints if e} == published
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    extra = services["head"]["build"]["args"]["EXTRAS"]
    assert any(d.startswith("ray") for d in extras[extra]), f"the image's extra {extra!r} brings Ray"
    dockerfile = (ROOT / services["head"]["build"]["context"].replace("../..", str(ROOT)) / "Dockerfile").read_text()
    assert "tini" in dockerfile and 'ENTRYPOINT ["tini"' in dockerfile


def test_the_kuberay_manifest_runs_the_driver_beside_the_ray_head():
    docs = list(yaml.safe_load_all(KUBERAY.read_text()))
    cluster = next(d for d in docs if d["kind"] == "RayCluster")
    service = next(d for d in docs if d["kind"] == "Service")
    assert cluster["apiVersion"] == "ray.io/v1"
    head = {c["name"]: c for c in cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"]}
    assert set(head) == {"ray-head", "driver"}
    driver = head["driver"]
    shared = {m["mountPath"] for m in head["ray-head"]["volumeMounts"]} & {
        m["mountPath"] for m in driver["volumeMounts"]
    }
    assert "/tmp/ray" in shared, "the driver finds the head's raylet through the shared /tmp/ray"
    commands = container_argv(driver["command"], driver["args"])
    mounts = {"/etc/expstream": COMPOSE.parent / "site"}  # the configmap's files: the same site here
    for argv in commands:
        check_command(argv, mounts)
    streamer = next(c for c in commands if c[0] == "streamer")
    assert f"cluster.advertise_host={service['metadata']['name']}" in streamer
    assert {p["port"] for p in service["spec"]["ports"]} >= {5560, 5556}
    (group,) = cluster["spec"]["workerGroupSpecs"]
    (worker,) = group["template"]["spec"]["containers"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("a --x && exec b y", [["a", "--x"], ["b", "y"]]),
        ("until c s >/dev/null 2>&1; do sleep 2; done; exec d", [["c", "s"], ["sleep", "2"], ["d"]]),
    ],
)
def test_shell_commands(script: str, expected: list[list[str]]):
    assert shell_commands(script) == expected
