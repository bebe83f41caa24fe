"""``python -m voxwire ...``: the same as the ``voxwire`` command."""

import sys

from voxwire.server.cli import main

sys.exit(main())
