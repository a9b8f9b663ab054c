"""The ground floor: what every ExpStream package may import, and which imports none of them.

- ``configs.core.errors``: the one error family (``ExpStreamError`` and its subclasses) and
  the documented exit codes (``ExitCode``).
- ``configs.core.logs``: the log format and the redaction of URL passwords.
- ``configs.core.cli``: what every command line shares (``-c``, ``--set``, shorthands,
  ``run_cli``, which maps the error family to the exit codes).

Layers run configs < engine < streamer < trainer; nothing here imports any of them, nor the
rest of ``configs`` (``tests/test_layers.py`` walks every import to prove it).
"""
