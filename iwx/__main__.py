"""``python -m iwx``: the ``iwx`` command (iwx/cli.py) where the console script is not
on the PATH, e.g. from a checkout that was never installed."""

import sys

from iwx.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m iwx"))
