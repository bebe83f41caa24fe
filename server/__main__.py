"""``python -m server [flags]``: the same as ``voxwire serve [flags]``."""

import sys

from server.cli import main

sys.exit(main(["serve", *sys.argv[1:]]))
