"""`python -m loadtest`: the same as `voxwire loadtest`."""

from .cli import main

raise SystemExit(main())
