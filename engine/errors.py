"""What the engine raises to its callers on the asyncio side.

::

    Exception
    ├── EngineError: synthesis failed for one stream; other streams are unaffected
    │   ├── UnknownVoice: ``open_stream`` named a voice this engine does not have
    │   └── Overloaded: ``open_stream`` found the engine at capacity (or stopped)
    └── EngineBroken: raised on the engine thread when the device fails everything; the thread stops
"""


class EngineError(Exception):
    """Synthesis failed for one stream; other streams are unaffected."""


class UnknownVoice(EngineError):
    """A stream asked for a voice this engine does not have."""


class Overloaded(EngineError):
    """The engine cannot take another stream in real time right now."""


class EngineBroken(Exception):
    """The engine fails every step, a known-good one included (a broken device): it stops."""
