"""voxwire's engine: the voice model in torch, and one worker per device that batches every session's work."""

import os

# piper-tts (for its config and espeak-ng phonemes) imports onnxruntime, which we never run; onnxruntime
# 1.32 opens a device-id database under ~/.cache/Microsoft at import unless this is set. Set before any
# piper import; an operator's own value wins.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from voxwire.engine.latent import Latent, SynthesisParams
from voxwire.engine.loader import BUNDLED_VOICE, load_voice
from voxwire.engine.voice import Voice, VoiceInfo
from voxwire.engine.windows import WindowSpec, plan_windows

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
