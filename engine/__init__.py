"""voxwire's engine: the voice model in torch, and one worker per device that batches every session's work."""

from engine.latent import Latent, SynthesisParams
from engine.loader import BUNDLED_VOICE, load_voice
from engine.voice import Voice, VoiceInfo
from engine.windows import WindowSpec, plan_windows

__all__ = [
    "BUNDLED_VOICE",
    "Latent",
    "SynthesisParams",
    "Voice",
    "VoiceInfo",
    "WindowSpec",
    "load_voice",
    "plan_windows",
]
