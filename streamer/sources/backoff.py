"""Reconnect delays: exponential, capped, with jitter."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, initial_s: float, max_s: float, jitter: float, u: float) -> float:
    """Delay before reconnect ``attempt`` (1-based): ``initial_s * 2**(attempt - 1)`` capped
    at ``max_s``, then spread by ``jitter`` using ``u`` drawn from [0, 1).

    Example:
        >>> backoff_delay(3, 0.5, 30.0, 0.0, 0.7)
        2.0
        >>> backoff_delay(3, 0.5, 30.0, 0.25, 0.0)  # u = 0 -> the low end, 2.0 * 0.75
        1.5
    """
    if attempt < 1:
        raise ValueError(f"attempt is 1-based, got {attempt}")
    # min() before the power would be nicer, but 2**1024 overflows a float: clamp the exponent.
    base = min(max_s, initial_s * 2.0 ** min(attempt - 1, 64))
    return base * (1.0 + jitter * (2.0 * u - 1.0))


class Backoff:
    """The delay schedule of one source.

    Example:
        >>> b = Backoff(0.5, 30.0, 0.25, rng=random.Random(0))
        >>> [round(b.delay(n), 3) for n in (1, 2, 3)]
        [0.586, 1.129, 1.921]
    """

    def __init__(self, initial_s: float, max_s: float, jitter: float, rng: random.Random | None = None) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.jitter = jitter
        self._rng = rng or random.Random()

    def delay(self, attempt: int) -> float:
        """Seconds to wait before reconnect ``attempt`` (1-based)."""
        return backoff_delay(attempt, self.initial_s, self.max_s, self.jitter, self._rng.random())
