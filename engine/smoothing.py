"""Per-track temporal smoothing of expression scores, chosen by name.

State is keyed by ``(stream_id, track_id)``, freed when a track or stream ends, and capped:
past ``max_tracks`` the least recently updated track is evicted (counted in ``evictions``).
A smoother is owned by one thread (the scoring thread) and takes no locks.

Example:
    >>> sm = make_smoother("ema", alpha=0.5)
    >>> sm.update([("cam0", 1)], np.array([[1.0, 0.0]])).tolist()
    [[1.0, 0.0]]
    >>> sm.update([("cam0", 1)], np.array([[0.0, 1.0]])).tolist()
    [[0.5, 0.5]]
    >>> sm.end_stream("cam0"), len(sm)
    (1, 0)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Sequence

import numpy as np

from configs.engine import SmoothingSettings

TrackKey = tuple[str, int]
"""``(stream_id, track_id)``: the key of every piece of per-track state in ExpStream."""


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Smoother(ABC):
    """Keeps per-track state and turns raw per-frame scores into smoothed probabilities."""

    name: str = "base"
    needs_features: bool = False
    """True when ``update`` needs the projected features (not only the probabilities)."""

    def __init__(self, max_tracks: int = 4096) -> None:
        if max_tracks < 1:
            raise ValueError(f"max_tracks must be >= 1, got {max_tracks}")
        self.max_tracks = max_tracks
        self.evictions = 0
        self._state: OrderedDict[TrackKey, object] = OrderedDict()

    def __len__(self) -> int:
        return len(self._state)

    def __contains__(self, key: TrackKey) -> bool:
        return key in self._state

    def update(self, keys: Sequence[TrackKey], probs: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """Feed one observation per key; return smoothed probabilities [N, C] (float32)."""
        probs = np.asarray(probs, dtype=np.float32)
        if probs.ndim != 2 or len(keys) != probs.shape[0]:
            raise ValueError(f"update: {len(keys)} keys but probs of shape {probs.shape}")
        if features is not None and features.shape[0] != len(keys):
            raise ValueError(f"update: {len(keys)} keys but features of shape {features.shape}")
        out = np.empty_like(probs)
        for i, key in enumerate(keys):
            state = self._state.pop(key, None)
            feat = None if features is None else features[i]
            state, out[i] = self._step(state, probs[i], feat)
            self._state[key] = state
        while len(self._state) > self.max_tracks:
            self._state.popitem(last=False)
            self.evictions += 1
        return out

    @abstractmethod
    def _step(self, state: object, probs: np.ndarray, feature: np.ndarray | None) -> tuple[object, np.ndarray]:
        """One track's update: (old state or None, new observation) -> (new state, smoothed)."""

    def end_track(self, key: TrackKey) -> None:
        """Free a finished track's state."""
        self._state.pop(key, None)

    def take_state(self, key: TrackKey) -> object | None:
        """Remove and return a track's state (to hand it to another key)."""
        return self._state.pop(key, None)

    def put_state(self, key: TrackKey, state: object) -> None:
        """Give ``key`` a state taken from another track (it continues from there)."""
        self._state[key] = state

    def end_stream(self, stream_id: Hashable) -> int:
        """Free every track of a finished stream; return how many were freed."""
        gone = [k for k in self._state if k[0] == stream_id]
        for k in gone:
            del self._state[k]
        return len(gone)


class NoSmoother(Smoother):
    """Passes the raw probabilities through."""

    name = "none"

    def _step(self, state, probs, feature):
        return None, probs


class EmaSmoother(Smoother):
    """Exponential moving average of probabilities: ``s = a * p + (1 - a) * s``."""

    name = "ema"

    def __init__(self, alpha: float = 0.3, max_tracks: int = 4096) -> None:
        super().__init__(max_tracks)
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"ema alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha

    def _step(self, state, probs, feature):
        s = probs.copy() if state is None else self.alpha * probs + (1.0 - self.alpha) * state
        return s, s


class WindowSmoother(Smoother):
    """The paper's video protocol: mean of the last ``window`` projected features (the head's
    output before normalisation: ``EngineOutput.projected_features()``), L2-normalised, scored
    against the class embeddings."""

    name = "window"
    needs_features = True

    def __init__(
        self, class_embeddings: np.ndarray, logit_scale: float, window: int = 16, max_tracks: int = 4096
    ) -> None:
        super().__init__(max_tracks)
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self.class_embeddings = np.asarray(class_embeddings, dtype=np.float32)
        self.logit_scale = float(logit_scale)

    def _step(self, state, probs, feature):
        if feature is None:
            raise ValueError("window smoothing needs the projected features")
        buf = deque(maxlen=self.window) if state is None else state
        buf.append(np.asarray(feature, dtype=np.float32))
        mean = np.mean(buf, axis=0)
        mean /= max(float(np.linalg.norm(mean)), 1e-12)
        logits = self.logit_scale * self.class_embeddings @ mean
        return buf, softmax(logits).astype(np.float32)


def _window(class_embeddings: np.ndarray | None, logit_scale: float, alpha: float, window: int, max_tracks: int):
    if class_embeddings is None:
        raise ValueError("window smoothing needs class_embeddings")
    return WindowSmoother(class_embeddings, logit_scale, window, max_tracks)


SMOOTHERS: dict[str, Callable[..., Smoother]] = {
    "ema": lambda class_embeddings, logit_scale, alpha, window, max_tracks: EmaSmoother(alpha, max_tracks),
    "window": _window,
    "none": lambda class_embeddings, logit_scale, alpha, window, max_tracks: NoSmoother(max_tracks),
}
"""Smoothers by name (``engine.smoothing.method``)."""


def make_smoother(
    name: str,
    *,
    class_embeddings: np.ndarray | None = None,
    logit_scale: float = 100.0,
    alpha: float = 0.3,
    window: int = 16,
    max_tracks: int = 4096,
) -> Smoother:
    """Create a smoother by name (``ema``, ``window``, ``none``)."""
    factory = SMOOTHERS.get(name)
    if factory is None:
        raise ValueError(f"unknown smoother {name!r}; allowed: {', '.join(SMOOTHERS)}")
    return factory(class_embeddings, logit_scale, alpha, window, max_tracks)


def smoother_for(settings: SmoothingSettings, class_embeddings: np.ndarray, logit_scale: float) -> Smoother:
    """A fresh per-track smoother as ``engine.smoothing`` configures it, for an engine's
    class embeddings [C, F] (host array) and logit scale."""
    return make_smoother(
        settings.method,
        class_embeddings=class_embeddings,
        logit_scale=logit_scale,
        alpha=settings.ema_alpha,
        window=settings.window,
        max_tracks=settings.max_tracks,
    )
