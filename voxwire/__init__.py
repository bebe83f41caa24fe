"""voxwire: a WebSocket-only realtime voice server.

The subpackages live in the repository's top-level folders (setuptools maps them here):
``voxwire.protocol`` (the wire format, sans-I/O), ``voxwire.server`` (Starlette and uvicorn),
``voxwire.engine`` (the torch voice, scheduler and worker), ``voxwire.loadtest`` and ``voxwire.web``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("voxwire")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
