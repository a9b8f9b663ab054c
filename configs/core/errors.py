"""ExpStream's one error family and the exit codes the ``streamer`` and ``trainer`` commands
map it to (docs/design.md, "Errors and exit codes").

Users meet four kinds of failure, each a subclass of ``ExpStreamError``: a bad configuration
(``ConfigError``), a model, head or teacher that cannot be loaded (``ModelError``), an
inference backend that cannot run here (``BackendError``), and a video source that cannot be
opened or read (``SourceError``). Anything else that escapes is a bug and is reported as one.

This module imports nothing, so every layer (the settings loader included) can use it.

Example:
    >>> err = ConfigError("scheduler.max_hz: got 0; Input should be greater than 0")
    >>> isinstance(err, ExpStreamError), int(err.exit_code)
    (True, 2)
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a supervisor (systemd, Kubernetes, a shell script) learns from the exit status."""

    OK = 0
    """The command did its work; for ``streamer run``: every stream ended normally (or was stopped)."""
    STREAM_FAILED = 1
    """``streamer run``: at least one stream failed, at least one other ran."""
    CONFIG = 2
    """Bad command line or configuration (argparse uses 2 for usage errors too)."""
    MODEL = 3
    """A model, head, teacher or backend could not be loaded."""
    NO_STREAM = 4
    """``streamer run``: no stream could start (every source failed before its first frame)."""
    INTERNAL = 70
    """A bug: an unexpected exception (its traceback is logged)."""
    INTERRUPTED = 130
    """Interrupted by SIGINT/SIGTERM where that is not a normal stop (the trainer)."""


class ExpStreamError(Exception):
    """Base of every error ExpStream raises on purpose; carries the exit code it maps to."""

    exit_code: ExitCode = ExitCode.INTERNAL


class ConfigError(ExpStreamError):
    """A configuration value is missing, malformed or not allowed (names the dotted key)."""

    exit_code = ExitCode.CONFIG


class ModelError(ExpStreamError):
    """A model, projection head or teacher could not be found, downloaded or loaded."""

    exit_code = ExitCode.MODEL


class ModelLoadError(ModelError):
    """The CLIP backbone could not be created or its weights could not be loaded."""


class HeadFormatError(ModelError):
    """A head file is not a head, has the wrong shape or values, or is not safe to load."""


class BackendError(ExpStreamError):
    """An inference backend cannot run here (missing package, no GPU, build failure)."""

    exit_code = ExitCode.MODEL


class MissingDependency(ExpStreamError, ImportError):
    """An optional package is not installed; the message names the extra to install."""

    exit_code = ExitCode.CONFIG


class SourceError(ExpStreamError):
    """A video source cannot be opened or read. Inside ``streamer run`` it ends that stream
    only (with a ``failed`` event); raised to the caller only by direct use of a source."""

    exit_code = ExitCode.STREAM_FAILED


__all__ = [
    "BackendError",
    "ConfigError",
    "ExitCode",
    "ExpStreamError",
    "HeadFormatError",
    "MissingDependency",
    "ModelError",
    "ModelLoadError",
    "SourceError",
]
