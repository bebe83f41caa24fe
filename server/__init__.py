"""voxwire's WebSocket hub: a Starlette app run by uvicorn (see ``server.app`` and ``server.run``)."""

__version__ = "0.1.0"
