"""CurveZMQ for every socket the service serves, and for its clients (docs/operations.md).

The output is data about people's faces. With ``security.server_secret_key`` set, every
server socket (the publisher, and any other endpoint the service opens) encrypts its
traffic with CurveZMQ and authenticates each client's key through pyzmq's ZAP
authenticator: only keys in the ``security.authorized_clients`` directory receive anything
(refusals are logged), unless ``security.allow_any_client`` (encryption only). Without keys
the sockets are plain TCP: binding one to a non-loopback address logs a warning.

Server side, one ``ServerSecurity`` per ZeroMQ context (the authenticator is per context)::

    ctx = zmq.Context()
    security = ServerSecurity(settings.security, ctx)     # starts the authenticator if keys are set
    sock = ctx.socket(zmq.ROUTER)
    security.secure(sock)                                 # before bind/connect; no-op without keys
    security.warn_if_exposed("snapshot.endpoint", endpoint)
    sock.bind(endpoint)
    ...
    security.close()                                      # after the sockets are closed

Client side (light: imports neither the settings nor the engine)::

    sock = zmq.Context().socket(zmq.SUB)
    secure_client(sock, "keys/server.key", "keys/alice.key_secret")
    sock.connect("tcp://10.0.0.2:5556")

Key pairs: ``write_key_pair(directory, name)`` (``streamer keys``) writes ``NAME.key`` (public,
give it away) and ``NAME.key_secret`` (secret, mode 0600).

Example:
    >>> is_loopback("tcp://127.0.0.1:5556"), is_loopback("tcp://0.0.0.0:5556"), is_loopback("ipc:///tmp/s")
    (True, False, True)
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from configs.core.errors import ConfigError

if TYPE_CHECKING:
    from configs.streamer import SecuritySettings

log = logging.getLogger(__name__)

ZAP_DOMAIN = "expstream"
REFUSAL_LOG_INTERVAL_S = 60.0
"""A refused key is logged at most once per this many seconds (clients retry every ~0.1 s)."""
_LOOPBACK_HOSTS = ("localhost", "[::1]", "::1")


def is_loopback(endpoint: str) -> bool:
    """Whether only this machine can reach ``endpoint`` (``ipc://`` and ``inproc://`` too)."""
    scheme, _, rest = endpoint.partition("://")
    if scheme != "tcp":
        return True
    host = rest.rpartition(":")[0].split(";")[-1]  # "tcp://src;host:port" names a source address first
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


def load_key_pair(path: str | Path, what: str) -> tuple[bytes, bytes]:
    """(public, secret) from a ``NAME.key_secret`` file; ConfigError naming ``what`` otherwise."""
    public, secret = _load(path, what)
    if secret is None:
        raise ConfigError(f"{what}: {path} holds only a public key; give the secret key file (NAME.key_secret)")
    return public, secret


def load_public_key(path: str | Path, what: str) -> bytes:
    """The public key of a ``NAME.key`` (or ``NAME.key_secret``) file."""
    return _load(path, what)[0]


def _load(path: str | Path, what: str) -> tuple[bytes, bytes | None]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"{what}: key file {p} not found (make one with: streamer keys DIR NAME)")
    try:
        public, secret = zmq.auth.load_certificate(p)
    except (ValueError, OSError) as e:
        raise ConfigError(f"{what}: {p} is not a ZeroMQ certificate ({e})") from e
    return public, secret


def write_key_pair(directory: str | Path, name: str, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``NAME.key`` (public) and ``NAME.key_secret`` (secret, 0600) into ``directory``."""
    folder = Path(directory).expanduser()
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    if not overwrite and (public.exists() or secret.exists()):
        raise ConfigError(f"{public} or {secret} exists already (--force replaces it)")
    folder.mkdir(parents=True, exist_ok=True)
    old = os.umask(0o077)  # the secret file is never readable by others, not even briefly
    try:
        made_public, made_secret = zmq.auth.create_certificates(str(folder), name)
    finally:
        os.umask(old)
    Path(made_public).chmod(0o644)
    return Path(made_public), Path(made_secret)


def secure_client(sock: zmq.Socket, server_key: str | Path, client_key: str | Path) -> None:
    """Make ``sock`` a CurveZMQ client of the server whose public key is in ``server_key``,
    authenticating with the key pair in ``client_key`` (a ``NAME.key_secret`` file). Call it
    before ``connect``."""
    sock.curve_serverkey = load_public_key(server_key, "server key")
    sock.curve_publickey, sock.curve_secretkey = load_key_pair(client_key, "client key")


def client_securer(settings: SecuritySettings) -> Callable[[zmq.Socket], None] | None:
    """What makes a socket a CurveZMQ client with ``security.client_secret_key`` and
    ``security.server_public_key`` (None when they are not set: plain TCP)."""
    server_key, client_key = settings.server_public_key, settings.client_secret_key
    if server_key is None or client_key is None:
        return None
    load_public_key(server_key, "security.server_public_key")  # fail at start, not at connect
    load_key_pair(client_key, "security.client_secret_key")
    return lambda sock: secure_client(sock, server_key, client_key)


class _AllowList:
    """The public keys in a directory (``*.key``), re-read when any of its files changes, so
    a client key added, removed or replaced in place (``cp new.key clients/alice.key``) takes
    effect for the next connection without a restart. Every file is stat-ed on each
    handshake (inode, size, modification and change times: any write or replacement changes
    its change time); a changed file is read again and what changed is logged by file name:
    added, removed or replaced. A file that is not a public key is logged and allows no one."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._stamps: dict[str, tuple[int, int, int, int]] | None = None
        self._files: dict[str, bytes | None] = {}
        self._keys: set[bytes] = set()
        self._refused: dict[bytes, float] = {}
        self._lock = threading.Lock()
        self.refusals = 0
        """Connections refused so far."""
        self.peer = ""
        """The peer address of the request being checked (set by ``_Authenticator``)."""
        self._reload()

    def _stat_files(self) -> dict[str, tuple[int, int, int, int]]:
        stamps = {}
        try:
            for path in self.directory.glob("*.key"):
                try:
                    st = path.stat()
                except FileNotFoundError:  # removed while listing
                    continue
                stamps[path.name] = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        except OSError as e:
            raise ConfigError(f"security.authorized_clients: cannot read {self.directory} ({e})") from e
        return stamps

    def _read_key(self, name: str) -> bytes | None:
        try:
            return zmq.auth.load_certificate(self.directory / name)[0]
        except (ValueError, OSError) as e:
            log.error("security: %s is not a readable public key (%s); it allows no client", self.directory / name, e)
            return None

    def _reload(self) -> None:
        stamps = self._stat_files()
        if stamps == self._stamps:
            return
        old, first = self._files, self._stamps is None
        files = {
            n: (old[n] if n in old and self._stamps.get(n) == stamp else self._read_key(n))
            for n, stamp in stamps.items()
        }
        self._stamps, self._files = stamps, files
        self._keys = {k for k in files.values() if k is not None}
        if first:
            log.info("security: %d authorized client key(s) in %s", len(self._keys), self.directory)
            return
        for name in sorted(old.keys() | files.keys()):
            if name not in files:
                log.warning("security: client key %s removed: %s is no longer allowed", name, _z85(old[name]))
            elif name not in old:
                log.info("security: client key %s added: %s is allowed", name, _z85(files[name]))
            elif old[name] != files[name]:
                log.warning(
                    "security: client key %s replaced: %s is no longer allowed, %s is",
                    name,
                    _z85(old[name]),
                    _z85(files[name]),
                )
        log.info("security: %d authorized client key(s) in %s", len(self._keys), self.directory)

    def callback(self, domain: str, key: bytes) -> bool:
        """ZAP credentials provider (pyzmq calls it on its authenticator thread)."""
        with self._lock:
            try:
                self._reload()
            except ConfigError as e:
                log.error("%s; refusing every client until it is readable", e)
                self._stamps, self._files, self._keys = None, {}, set()
            if key in self._keys:
                return True
            self.refusals += 1
            now = time.monotonic()
            if now - self._refused.get(key, -REFUSAL_LOG_INTERVAL_S) >= REFUSAL_LOG_INTERVAL_S:
                if len(self._refused) >= 1024:  # many distinct keys (a scan): forget, stay bounded
                    self._refused.clear()
                self._refused[key] = now
                log.warning(
                    "security: refused a CurveZMQ client from %s with key %s: not in %s (%d refusal(s) so far)",
                    self.peer or "an unknown address",
                    key.decode(),
                    self.directory,
                    self.refusals,
                )
            return False


def _z85(key: bytes | None) -> str:
    return "(no valid key)" if key is None else key.decode()


class _Authenticator(ThreadAuthenticator):
    """pyzmq's ZAP authenticator, telling the allow-list which peer address each request
    comes from (the credentials callback is given only the key; requests are handled one at a
    time on the authenticator's thread)."""

    def __init__(self, context: zmq.Context, allow_list: _AllowList | None) -> None:
        super().__init__(context, log=logging.getLogger("zmq.auth"))
        self._allow_list = allow_list

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        if self._allow_list is not None:  # ZAP request frames: version, id, domain, address, ...
            self._allow_list.peer = msg[3].decode("utf-8", "replace") if len(msg) > 3 else ""
        await super().handle_zap_message(msg)


class ServerSecurity:
    """CurveZMQ server role for every server socket of one ZeroMQ context."""

    def __init__(self, settings: SecuritySettings, context: zmq.Context) -> None:
        self.settings = settings
        self.context = context
        self.enabled = settings.server_secret_key is not None
        self.allow_list: _AllowList | None = None
        self._auth: ThreadAuthenticator | None = None
        self._keys: tuple[bytes, bytes] | None = None
        if not self.enabled:
            return
        self._keys = load_key_pair(settings.server_secret_key, "security.server_secret_key")
        if not settings.allow_any_client:
            assert settings.authorized_clients is not None  # SecuritySettings checks this
            folder = Path(settings.authorized_clients).expanduser()
            if not folder.is_dir():
                raise ConfigError(f"security.authorized_clients: {folder} is not a directory")
            self.allow_list = _AllowList(folder)
        self._auth = _Authenticator(context, self.allow_list)
        self._auth.start()
        if self.allow_list is None:
            self._auth.configure_curve(domain=ZAP_DOMAIN, location=zmq.auth.CURVE_ALLOW_ANY)
            log.warning("security: CurveZMQ encrypts the output, but any client key is accepted (allow_any_client)")
        else:
            self._auth.configure_curve_callback(domain=ZAP_DOMAIN, credentials_provider=self.allow_list)

    @property
    def public_key(self) -> str | None:
        """The server's public key (Z85), which clients need; None without keys."""
        return None if self._keys is None else self._keys[0].decode()

    def secure(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CurveZMQ server (before bind/connect); nothing without keys."""
        if self._keys is None:
            return
        sock.curve_publickey, sock.curve_secretkey = self._keys
        sock.curve_server = True
        sock.zap_domain = ZAP_DOMAIN.encode()

    def warn_if_exposed(self, what: str, endpoint: str) -> None:
        """Warn when ``endpoint`` is reachable from other machines without encryption."""
        if not self.enabled and not is_loopback(endpoint):
            log.warning(
                "%s %s is reachable from other machines, and without security.server_secret_key its "
                "output (data about people's faces) is neither encrypted nor authenticated (docs/operations.md)",
                what,
                endpoint,
            )

    def close(self) -> None:
        """Stop the authenticator (after the sockets it serves are closed). Idempotent."""
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
