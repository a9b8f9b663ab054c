"""The ``web`` section: the live view in a browser (``streamer run --web [HOST:]PORT``,
docs/web.md). Off by default; loopback unless told otherwise, and then only with a token.

Example:
    >>> w = WebSettings(listen="8080")
    >>> w.host, w.port, w.fps
    ('127.0.0.1', 8080, 2.0)
    >>> WebSettings(listen="0.0.0.0:8080", token="s3cret").token.get_secret_value()
    's3cret'
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator

from configs.base import ConfigPath, StrictSettings

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def split_listen(listen: str) -> tuple[str, int]:
    """``"8080"`` -> ``("127.0.0.1", 8080)``; ``"0.0.0.0:8080"``, ``"::1:8080"`` (the last
    colon separates the port; IPv6 without brackets)."""
    host, sep, port = listen.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"[HOST:]PORT with a port 0-65535, got {listen!r}")
    if sep and (not host or any(c.isspace() or c in "/[]" for c in host)):
        raise ValueError(f"a host name or an IP address before the port, got {listen!r}")
    return (host if sep else "127.0.0.1"), int(port)


class WebSettings(StrictSettings):
    """One page served from the package: a tile per stream with its live annotated picture,
    the tracks in view with their class bars, recent episodes and stream events, and each
    stream's health."""

    listen: str | None = None
    """``[HOST:]PORT`` to serve the page on (``--web``); null = off. HOST defaults to
    127.0.0.1; any other address needs ``token`` or ``token_file``. Port 0 = any free port
    (logged at start)."""
    token: SecretStr | None = None
    """The token a browser must give (``?token=...`` once, then a cookie; or an
    ``Authorization: Bearer`` header). Prefer ``token_file``: settings are logged (this key
    as ``**********``) and may end up in files others read."""
    token_file: Annotated[str | None, ConfigPath()] = None
    """A file whose first line is the token (instead of ``token``)."""
    tls_cert: Annotated[str | None, ConfigPath()] = None
    """PEM certificate chain: serve HTTPS (with ``tls_key``)."""
    tls_key: Annotated[str | None, ConfigPath()] = None
    """PEM private key of ``tls_cert``."""
    fps: float = Field(2.0, gt=0.0, le=5.0)
    """Pictures per second kept per stream for the page (at most 5); frames in between are
    never touched, and a picture is drawn and encoded only when a browser asks for it."""
    width: int = Field(640, ge=64, le=1920)
    """Largest picture width sent (pictures are scaled down to it, never up)."""
    jpeg_quality: int = Field(70, ge=10, le=95)
    """JPEG quality of the pictures."""
    events: int = Field(50, ge=1, le=1000)
    """Recent episodes and stream events listed on the page."""

    @field_validator("listen", mode="before")
    @classmethod
    def _check_listen(cls, v: object) -> object:
        if isinstance(v, int) and not isinstance(v, bool):
            v = str(v)
        if isinstance(v, str):
            split_listen(v)
        return v

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0] if self.listen else "127.0.0.1"

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1] if self.listen else 0

    @model_validator(mode="after")
    def _check_security(self) -> WebSettings:
        if self.token is not None and self.token_file is not None:
            raise ValueError("token and token_file exclude each other")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        public = self.listen and not (self.host in LOOPBACK_HOSTS or self.host.startswith("127."))
        if public and self.token is None and self.token_file is None:
            raise ValueError(f"listen {self.listen}: a non-loopback address needs token or token_file")
        return self
