"""The engine's settings: what the server passes in to build an engine (plain values, no torch)."""

from __future__ import annotations

from dataclasses import dataclass

DTYPES = ("auto", "float32", "tf32", "bf16", "bfloat16")
MAX_SENTENCE_IDS = 256
"""Longest id sequence one sentence stage takes: on a 2-core CPU with one thread, 256 ids of the bundled
voice cost about 0.1 s, as long as the engine's other steps (windows, chunks of flow); the stage grows more
than linearly past that."""


@dataclass(frozen=True)
class EngineConfig:
    voices: tuple[str, ...] = ("joe",)
    """Voices to load: "joe" (bundled), a Piper .onnx path, or a local transformers VitsModel directory.
    The first is the default voice."""
    device: str = "auto"
    """auto (CUDA when available, else the CPU), cpu, cuda or cuda:N."""
    dtype: str = "auto"
    """auto (tf32 on CUDA, float32 on a CPU); float32 (IEEE, on every device); tf32 (CUDA only: float32
    weights, convolutions and matrix products on TF32 tensor cores); or bf16 (the window decoder in bfloat16;
    the sentence stage stays float32)."""
    workers: int = 0
    """Compute threads drawing from the one scheduler; 0: one per CPU core on a CPU, one on a GPU."""
    threads: int = 0
    """torch intra-op threads of each worker; 0: the cores left after one for the event loop, shared out
    among the workers (at least one each)."""
    max_batch: int = 0
    """Most windows (and sentences) in one batch; 0: 256 windows and 64 sentences on a GPU, 1 on a CPU."""
    max_ahead_s: float = 2.0
    """How far a stream's audio may run ahead of its playback clock before others go first."""
    allow_raw_phonemes: bool = False
    """Let ``[[ phonemes ]]`` in text reach the voice as phonemes (Piper voices)."""
    max_sentence_ids: int = MAX_SENTENCE_IDS
    """Longest phoneme sequence one sentence stage takes (:meth:`voxwire.engine.voice.Voice.phonemize`)."""
    max_asap_streams: int = 8
    """Most ``asap`` streams (made as fast as spare capacity allows) open at once."""
    admission_headroom: float = 0.8
    """Admit realtime streams up to this fraction of the measured capacity (0 < headroom <= 1)."""
    cuda_graphs: bool = True
    """On CUDA, run the sentence stage and the window decoder as CUDA graphs (one launch where the sentence
    stage made about a thousand: it was launch-bound, docs/benchmarks.md). Ignored on a CPU."""

    def __post_init__(self) -> None:
        if not self.voices:
            raise ValueError("the engine needs at least one voice")
        if self.device not in {"auto", "cpu", "cuda"} and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.max_batch < 0 or self.threads < 0 or self.workers < 0:
            raise ValueError("max_batch, workers and threads must be 0 (auto) or more")
        if self.max_asap_streams < 0:
            raise ValueError(f"max_asap_streams must be 0 or more, got {self.max_asap_streams}")
        if not 0 < self.admission_headroom <= 1:
            raise ValueError(f"admission_headroom must be in (0, 1], got {self.admission_headroom}")
        if self.max_sentence_ids < 16:
            raise ValueError(f"max_sentence_ids must be at least 16, got {self.max_sentence_ids}")
