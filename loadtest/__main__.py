"""`python -m voxwire.loadtest`: the same as `voxwire loadtest`."""

from .cli import main

raise SystemExit(main())
