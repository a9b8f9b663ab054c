"""ExpStream's log format and the redaction of URL passwords from everything it prints.

Every command installs its handlers through ``configure_logging``, so every log line,
traceback and error message has the password of any URL in it replaced by ``***``.
"""

from __future__ import annotations

import logging
import re
import sys

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# scheme:// (or scheme:/ once a path resolver has eaten a slash), a user, ":", the password
# up to the LAST "@" of the token (passwords may hold "@" or "/"; over-redacting a path that
# holds "@" is the safe side).
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*:/{1,3}[^\s:/?#@'\"]*):[^\s'\"]*@")


def redact_secrets(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``.

    Example:
        >>> redact_secrets("cannot open 'rtsp://admin:s3cret@10.0.0.5/live': refused")
        "cannot open 'rtsp://admin:***@10.0.0.5/live': refused"
        >>> redact_secrets("a=rtsp://u:p@ss/w@cam/x b=/data/a@b.mp4")
        'a=rtsp://u:***@cam/x b=/data/a@b.mp4'
    """
    if "@" not in text:
        return text
    return _URL_PASSWORD.sub(r"\g<head>:***@", text)


class RedactSecrets(logging.Filter):
    """A handler filter that redacts URL passwords in every record: its message, its
    arguments and its traceback (exception texts from FFmpeg carry the URL they failed on)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_secrets(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_secrets(record.stack_info)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add ``RedactSecrets`` to every handler of ``logger`` (the root logger by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())


def configure_logging(level: str = "INFO", *, once: bool = False) -> None:
    """Log to stderr in ``LOG_FORMAT`` at ``level``, with URL passwords redacted. ``once``:
    add ExpStream's handler only if it is not there yet (a process whose root logger someone
    else set up, like a Ray worker)."""
    root = logging.getLogger()
    lvl = getattr(logging, level.upper(), logging.INFO)
    if once:
        root.setLevel(lvl)
        if not any(getattr(h, "_expstream", False) for h in root.handlers):
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter(LOG_FORMAT))
            handler._expstream = True  # type: ignore[attr-defined]
            root.addHandler(handler)
    else:
        logging.basicConfig(level=lvl, format=LOG_FORMAT, stream=sys.stderr)
    install_log_redaction()
