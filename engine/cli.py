"""What every ExpStream command line shares: ``-c/--config`` and ``--set KEY=VALUE``,
shorthand flags for single settings, and the one wrapper that runs a subcommand and maps
the error family to the documented exit codes (``engine.errors.ExitCode``). Every log line,
traceback and error message it prints has URL passwords redacted (``redact_secrets``).

Example (plain text)::

    parser = argparse.ArgumentParser(prog="trainer")
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit")
    add_config_args(fit, "trainer.fit.epochs=2")
    shorthand(fit, "--epochs", key="trainer.fit.epochs", type=int)
    sys.exit(run_cli("trainer", parser, argv, {"fit": fit_command}))
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.errors import ExitCode, ExpStreamError

log = logging.getLogger(__name__)

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


def add_config_args(parser: argparse.ArgumentParser, example_key: str) -> None:
    """``-c/--config FILE|NAME`` and repeatable ``--set KEY=VALUE`` (into ``args.overrides``)."""
    parser.add_argument(
        "-c",
        "--config",
        default=None,
        metavar="FILE|NAME",
        help="YAML config, or a packaged config's name (default, offline); defaults fill missing keys",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override one setting, e.g. --set {example_key} (repeatable; later wins)",
    )


class _SetAction(argparse.Action):
    """Appends ``key=value`` to ``args.overrides``, in command-line order with ``--set``."""

    def __init__(
        self, option_strings: Sequence[str], dest: str, key: str, also: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        self.key = key
        self.also = dict(also or {})
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option_string: str | None = None):
        value = self.const if self.nargs == 0 else values
        items = list(getattr(namespace, "overrides", None) or [])
        items += [f"{k}={json.dumps(v)}" for k, v in self.also.items()]
        items.append(f"{self.key}={json.dumps(value)}")
        namespace.overrides = items


def shorthand(
    parser: argparse.ArgumentParser | Any,
    *flags: str,
    key: str,
    type: Callable[[str], Any] = str,
    const: Any = None,
    help: str | None = None,
    metavar: str | None = None,
    also: Mapping[str, Any] | None = None,
) -> None:
    """A flag that stands for ``--set key=VALUE`` (or ``--set key=const`` when ``const`` is
    given and the flag takes no value); ``also`` sets more keys to constants with it."""
    sets = [f"--set {k}={json.dumps(v)}" for k, v in (also or {}).items()]
    text = "same as " + " ".join([*sets, f"--set {key}=" + ("VALUE" if const is None else json.dumps(const))])
    kwargs: dict[str, Any] = {"nargs": 0, "const": const} if const is not None else {"type": type, "metavar": metavar}
    parser.add_argument(
        *flags,
        dest="overrides",
        action=_SetAction,
        key=key,
        also=also,
        default=argparse.SUPPRESS,
        help=f"{help} ({text})" if help else text,
        **kwargs,
    )


def run_cli(
    prog: str,
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    handlers: Mapping[str, Callable[[argparse.Namespace], int]],
    *,
    sigterm_interrupts: bool = False,
    hints: Mapping[type[BaseException], str] | None = None,
) -> int:
    """Parse ``argv``, run ``handlers[args.command]`` and return its exit code.

    An ``ExpStreamError`` prints one line (plus a hint for its kind) and returns its
    ``exit_code``; Ctrl-C (and SIGTERM with ``sigterm_interrupts``) returns 130; any other
    exception is a bug: its traceback is logged and the code is 70. Usage errors exit 2
    through argparse.
    """
    args = parser.parse_args(argv)
    level = getattr(args, "log_level", "INFO")
    logging.basicConfig(level=getattr(logging, str(level).upper(), logging.INFO), format=LOG_FORMAT, stream=sys.stderr)
    install_log_redaction()
    previous = None
    if sigterm_interrupts and threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return int(handlers[args.command](args))
    except ExpStreamError as e:
        print(redact_secrets(f"{prog}: error: {e}"), file=sys.stderr)
        for kind, hint in (hints or {}).items():
            if isinstance(e, kind):
                print(f"{prog}: {hint}", file=sys.stderr)
        return int(e.exit_code)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except Exception:
        log.exception("%s %s: internal error (a bug: please report this traceback)", prog, args.command)
        return int(ExitCode.INTERNAL)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
