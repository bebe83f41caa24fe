"""A voxwire text-to-speech service for Pipecat (`pip install "voxwire[pipecat]"`): see docs/pipecat.md."""

try:
    import pipecat  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError('voxwire.pipecat needs pipecat-ai: pip install "voxwire[pipecat]"') from e

from voxwire.pipecat.tts import VoxwireTTSService

__all__ = ["VoxwireTTSService"]
