"""voxwire's WebSocket hub: a Starlette app run by uvicorn (see ``voxwire.server.app`` and ``.run``)."""
