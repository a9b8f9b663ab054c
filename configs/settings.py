"""The settings root: one pydantic model for a whole ExpStream config file.

Every command (``streamer run``, ``streamer bench``, ``streamer build-engine``, every
``trainer`` command) loads the same file the same way with ``load_settings``, so one file
drives serving and training alike; each command reads the sections it needs.

Example:
    >>> s = load_settings("offline", ["trainer.fit.epochs=2"])
    >>> s.engine.model.name, s.detector.name, s.trainer.fit.epochs
    ('ExpStream-Tiny', 'retinaface', 2)
"""

from __future__ import annotations

from collections.abc import Sequence

from configs.analytics import AbstainSettings, EpisodeSettings
from configs.base import StrictSettings
from configs.cluster import ClusterSettings
from configs.engine import EngineSettings
from configs.loader import ConfigSource, dump, load
from configs.service import ControlSettings, SnapshotSettings
from configs.sources import SourceSettings
from configs.streamer import (
    CropSettings,
    DetectorSettings,
    MetricsSettings,
    PipelineSettings,
    PreviewSettings,
    PublisherSettings,
    SchedulerSettings,
    SecuritySettings,
    StatsSettings,
    TrackerSettings,
)
from configs.trainer import TrainerSettings
from configs.web import WebSettings


class Settings(StrictSettings):
    """A whole ExpStream configuration."""

    engine: EngineSettings = EngineSettings()
    """Expression engine: CLIP image tower + Exp-CLIP head scored against cached prompts."""
    sources: SourceSettings = SourceSettings()
    """Video sources (files, RTSP, HTTP/HLS, V4L2), one decode thread each."""
    detector: DetectorSettings = DetectorSettings()
    """Face detection on every frame (batched across streams); also harvests faces for training."""
    tracker: TrackerSettings = TrackerSettings()
    """A face tracker per stream (``name``): stable ids through short misses; track started/ended events."""
    crops: CropSettings = CropSettings()
    """Face crops handed to the engine (and saved when harvesting faces for training)."""
    scheduler: SchedulerSettings = SchedulerSettings()
    """Expression re-scoring rate per track."""
    abstain: AbstainSettings = AbstainSettings()
    """Faces too small, blurred or turned away: published without a label, not scored."""
    episodes: EpisodeSettings = EpisodeSettings()
    """Expression episodes per track: started / ended events with onset, peak and duration."""
    publisher: PublisherSettings = PublisherSettings()
    """ZeroMQ PUB output: topics faces.<stream_id> and events.<stream_id> (or a JSON-lines file)."""
    snapshot: SnapshotSettings = SnapshotSettings()
    """State for late joiners: every active stream and track, consistent with a seq per topic."""
    control: ControlSettings = ControlSettings()
    """Live changes while running: prompts, head, sources."""
    security: SecuritySettings = SecuritySettings()
    """CurveZMQ encryption and client authentication of the output (docs/operations.md)."""
    metrics: MetricsSettings = MetricsSettings()
    """Prometheus metrics and health endpoints (off by default)."""
    pipeline: PipelineSettings = PipelineSettings()
    """Threads and queues."""
    preview: PreviewSettings = PreviewSettings()
    """Annotated preview video (also --preview OUT.mp4)."""
    web: WebSettings = WebSettings()
    """The live view in a browser (also --web [HOST:]PORT; off by default)."""
    stats: StatsSettings = StatsSettings()
    """Periodic statistics line on stderr."""
    cluster: ClusterSettings = ClusterSettings()
    """``streamer cluster``: one pipeline per worker actor on a Ray cluster, one endpoint (docs/deployment.md)."""
    trainer: TrainerSettings = TrainerSettings()
    """The trainer: LLM teacher, feature extraction, the head's fit, zero-shot evaluation."""


def load_settings(config: ConfigSource = None, overrides: Sequence[str] = ()) -> Settings:
    """Defaults -> ``config`` (file, packaged name or mapping) -> ``overrides`` -> validation.

    Raises:
        ConfigError: naming each bad dotted key, its value and what is allowed.

    Example:
        >>> load_settings(None, ["scheduler.max_hz=4"]).scheduler.max_hz
        4.0
    """
    return load(Settings, config, overrides)


def dump_settings(settings: Settings) -> str:
    """The resolved configuration as YAML."""
    return dump(settings)
