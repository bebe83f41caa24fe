"""What the engine raises to its callers on the asyncio side.

::

    Exception
    └── EngineError: synthesis failed for one stream; other streams are unaffected
        ├── UnknownVoice: ``open_stream`` named a voice this engine does not have
        └── Overloaded: ``open_stream`` found the engine at its measured real-time capacity
"""


class EngineError(Exception):
    """Synthesis failed for one stream; other streams are unaffected."""


class UnknownVoice(EngineError):
    """A stream asked for a voice this engine does not have."""


class Overloaded(EngineError):
    """The engine cannot take another stream in real time right now."""
