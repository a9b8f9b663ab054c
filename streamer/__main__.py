"""``python -m streamer``: the ``streamer`` command."""

import sys

from streamer.cli import main

if __name__ == "__main__":
    sys.exit(main())
