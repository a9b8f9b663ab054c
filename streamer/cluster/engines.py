"""The cluster's engine as one versioned setting: the driver keeps ``(version, engine
settings)`` (version 1 at start, + 1 per ``set_prompts``/``set_head``), and no pipeline
instance of any stream starts on an older version than the driver's.

- Every assignment (a new stream, a move) carries the current version and its settings
  (``order``); the worker first brings its engine up to that version, then starts the
  instance (``StreamWorker.assign``). A move that is on its way while the version changes
  starts on the new engine, or on an even newer one.
- A worker that answers with an older version than the driver's (a replacement started
  before the change, a lost worker rejoining) is brought up to date before it takes any
  stream (``Supervisor``: it becomes ready only then).
- A change (``EngineChanger.change``): tried on one ready worker (a refusal there changes
  nothing; a worker that dies meanwhile passes the try to the next), then committed (the new
  version is the driver's: new workers start with it, assignments carry it), then applied on
  every other ready worker; a worker that cannot follow is retired (its streams move, onto
  the new version). Then the forwarder's engine fence (``enginefence``) takes the new version
  as the floor: from the reply on (precisely: after the reply's ``seq``, per topic the last
  message before the floor), no faces message of the old engine reaches a subscriber.
  Automatic rebalancing waits while a change runs (a stream moved off the worker trying the
  new engine would go back to the old one). One change at a time; the driver's lock is held
  only around bookkeeping, never while engines are built.

Example:
    >>> from configs.engine import EngineSettings
    >>> v = EngineVersion(1, EngineSettings())
    >>> v.version, v.order()[0], behind({"engine_version": 1}, v), behind({}, EngineVersion(2, v.settings))
    (1, 1, False, True)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from configs.core.errors import ConfigError, ExpStreamError
from configs.engine import EngineSettings
from streamer.cluster.enginefence import EngineFence
from streamer.cluster.workers import WorkerSlot, error_text

log = logging.getLogger("streamer.cluster")

CHANGE_TIMEOUT_S = 300.0
"""How long one worker may take to build and swap in a new engine."""

Order = tuple[int, dict[str, Any]]
"""``(version, engine settings as JSON)``: what an assignment or a catch-up carries."""


@dataclass(frozen=True)
class EngineVersion:
    """One version of the cluster's engine settings, with its fingerprint and classes once a
    worker has built it."""

    version: int
    settings: EngineSettings
    fingerprint: str | None = None
    classes: list[str] | None = None

    def order(self) -> Order:
        return self.version, self.settings.model_dump(mode="json")


def behind(status: dict[str, Any], current: EngineVersion) -> bool:
    """A worker's answer (heartbeat, sync, engine change) shows an older engine than the driver's."""
    return int(status.get("engine_version", 1)) < current.version


class Host(Protocol):
    """What a change needs of the driver's ``Supervisor``."""

    lock: threading.RLock

    def ready_workers(self) -> list[WorkerSlot]: ...

    def committed(self, version: EngineVersion) -> None:
        """New workers start with ``version`` (called with the lock held)."""
        ...

    def retire(self, worker_id: str, cause: str) -> None:
        """The worker cannot follow: it goes, its streams move (called with the lock held)."""
        ...


class EngineChanger:
    """The driver's current engine version, and changes of it rolled out to the workers."""

    def __init__(self, settings: EngineSettings) -> None:
        self.current = EngineVersion(1, settings)
        self.changing = False
        """A change is running (rebalancing waits)."""
        self.fence: Callable[[Callable[[EngineFence], Any]], Any] = lambda fn: None
        """Runs a function on the forwarder's engine fence, on the forwarder's thread (the driver sets it)."""
        self._one = threading.Lock()

    def heard(self, status: dict[str, Any]) -> None:
        """A worker's answer: the first one at version 1 gives version 1 its fingerprint and
        classes (the driver's lock held)."""
        cur, fp = self.current, status.get("engine")
        if cur.fingerprint is None and fp and int(status.get("engine_version", 1)) == cur.version:
            self.current = EngineVersion(cur.version, cur.settings, fp, status.get("classes"))
            self.fence(lambda f: f.learn(fp, cur.version))

    def change(self, settings: EngineSettings, host: Host) -> dict[str, Any]:
        """Try, commit and roll out ``settings`` (the module's docstring); the reply."""
        import ray

        with self._one:
            self.changing = True
            try:
                order = (self.current.version + 1, settings.model_dump(mode="json"))
                first, got = self._try(order, host)
                version = EngineVersion(order[0], settings, got["engine"], got["classes"])
                with host.lock:
                    self.current = version
                    self.fence(lambda f: f.learn(version.fingerprint or "", version.version))
                    host.committed(version)
                    rest = [w for w in host.ready_workers() if w.id != first]
                    refs = {w.id: w.actor.set_engine.remote(*order) for w in rest}
                failed: dict[str, str] = {}
                for wid, ref in refs.items():
                    try:
                        res = ray.get(ref, timeout=CHANGE_TIMEOUT_S)
                        if res.get("engine") != version.fingerprint:
                            failed[wid] = f"engine {res.get('engine')} instead of {version.fingerprint}"
                    except (ExpStreamError, ray.exceptions.RayError) as e:
                        failed[wid] = error_text(e)
                with host.lock:
                    for wid, err in failed.items():
                        host.retire(wid, f"engine change failed: {err}")
                seq = self.fence(lambda f: f.raise_floor(version.version)) or {}
            finally:
                self.changing = False
        log.info(
            "cluster: engine version %d (%s) on %d worker(s)",
            version.version,
            version.fingerprint,
            len(rest) + 1 - len(failed),
        )
        return {
            "engine": version.fingerprint,
            "classes": version.classes,
            "engine_version": version.version,
            "workers_failed": failed,
            "seq": seq,
        }

    def _try(self, order: Order, host: Host) -> tuple[str, dict[str, Any]]:
        """Apply ``order`` on one ready worker: ``(its id, its answer)``. A refusal raises
        ConfigError (nothing changed anywhere); a worker that dies or does not answer in time
        is retired and the next ready one tries."""
        import ray

        tried: set[str] = set()
        while True:
            with host.lock:
                workers = [w for w in host.ready_workers() if w.id not in tried]
            if not workers:
                raise ConfigError("no worker is ready to change its engine")
            w = workers[0]
            tried.add(w.id)
            try:
                return w.id, ray.get(w.actor.set_engine.remote(*order), timeout=CHANGE_TIMEOUT_S)
            except ExpStreamError as e:  # the worker refused: nothing changed anywhere
                raise ConfigError(error_text(e)) from e
            except ray.exceptions.RayError as e:
                if isinstance(getattr(e, "cause", None), ExpStreamError):
                    raise ConfigError(error_text(e)) from e
                log.warning("worker %s: engine change not tried: %s; trying another worker", w.id, error_text(e))
                with host.lock:
                    host.retire(w.id, f"engine change failed: {error_text(e)}")
