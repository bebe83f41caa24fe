"""voxwire's engine: the voice model in torch, and one worker per device that batches every session's work.

Build one from settings with :func:`voxwire.engine.build.build_engine`; the pieces live in submodules
(``scheduler``, ``worker``, ``handle``, ``voice``, ``loader``).
"""

import os

# piper-tts (for its config and espeak-ng phonemes) imports onnxruntime, which we never run; onnxruntime
# 1.32 opens a device-id database under ~/.cache/Microsoft at import unless this is set. Set before any
# piper import (every engine module imports this package first); an operator's own value wins.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
