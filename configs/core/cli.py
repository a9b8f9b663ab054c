"""What every ExpStream command line shares: ``-c/--config`` and ``--set KEY=VALUE``,
shorthand flags for single settings, and the one wrapper that runs a subcommand and maps
the error family to the documented exit codes (``configs.core.errors.ExitCode``). Every log line,
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
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from configs.core.errors import ExitCode, ExpStreamError
from configs.core.logs import configure_logging, redact_secrets

log = logging.getLogger(__name__)


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
    configure_logging(str(level))
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
