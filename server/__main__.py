"""``python -m voxwire.server [flags]``: the same as ``voxwire serve [flags]``."""

import sys

from voxwire.server.cli import main

sys.exit(main(["serve", *sys.argv[1:]]))
