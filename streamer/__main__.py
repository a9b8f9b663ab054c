"""``python -m streamer``: the ``streamer`` command."""

from streamer.cli import console

if __name__ == "__main__":
    console()
