"""The sections that turn raw scores into answers: ``episodes`` (when an expression starts and
ends on a track) and ``abstain`` (faces too small, blurred or turned away to judge).
docs/streamer.md explains the defaults.

Example:
    >>> EpisodeSettings().p_on, AbstainSettings().min_face_px
    (0.6, 32)
"""

from __future__ import annotations

from pydantic import Field, model_validator

from configs.base import StrictSettings


class EpisodeSettings(StrictSettings):
    """Expression episodes per track, with hysteresis on the smoothed top class."""

    enabled: bool = True
    """Publish ``episode`` started/ended events on ``events.<stream_id>``."""
    p_on: float = Field(0.6, gt=0.0, le=1.0)
    """An episode of class C opens once C is the smoothed top class at or above this for ``t_on_s``."""
    t_on_s: float = Field(0.5, ge=0.0, le=3600)
    """How long C must hold above ``p_on`` (media time) before its episode opens, at its onset."""
    p_off: float = Field(0.4, ge=0.0, le=1.0)
    """An open episode of C closes once C's smoothed probability stays below this for ``t_off_s``."""
    t_off_s: float = Field(0.5, ge=0.0, le=3600)
    """How long C must stay below ``p_off`` before its episode closes (at the time it dropped)."""
    ignore: list[str] = Field(default_factory=lambda: ["neutral"])
    """Classes that never open an episode (the resting state is not an event)."""

    @model_validator(mode="after")
    def _check_hysteresis(self) -> EpisodeSettings:
        if self.p_off > self.p_on:
            raise ValueError(f"p_off ({self.p_off}) must be <= p_on ({self.p_on})")
        return self


class AbstainSettings(StrictSettings):
    """Faces published without a label (and not scored) because they cannot be judged."""

    min_face_px: int = Field(32, ge=0, le=4096)
    """Shorter side of the face box (frame pixels) below which a face is ``too_small``; 0 = off."""
    min_sharpness: float = Field(0.0, ge=0.0)
    """Variance of the Laplacian of the grey face crop (engine size) below which a face is
    ``blurred``; 0 = off. Sharp faces measure in the hundreds, motion-blurred ones under ~30."""
    max_yaw: float = Field(0.6, ge=0.0, le=1.0)
    """Asymmetry of the nose between the eyes (0 frontal, 1 full profile, from the 5
    keypoints) above which a face is ``not_frontal``; 1 = off; needs a detector with keypoints."""
