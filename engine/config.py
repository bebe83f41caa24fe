"""The engine's settings: what the server passes in to build an engine (plain values, no torch)."""

from __future__ import annotations

from dataclasses import dataclass

DTYPES = ("float32", "bf16", "bfloat16")


@dataclass(frozen=True)
class EngineConfig:
    voices: tuple[str, ...] = ("joe",)
    """Voices to load: "joe" (bundled), a Piper .onnx path, or a local transformers VitsModel directory.
    The first is the default voice."""
    device: str = "auto"
    """auto (CUDA when available, else the CPU), cpu, cuda or cuda:N."""
    dtype: str = "float32"
    """The decoder's dtype: float32, or bf16 (the sentence stage stays float32)."""
    threads: int = 0
    """torch intra-op threads; 0: one less than the CPU count (the event loop keeps a core)."""
    max_batch: int = 0
    """Most windows (or sentences) in one batch; 0: ``GPU_MAX_BATCH`` on a GPU, 1 on a CPU."""
    max_ahead_s: float = 2.0
    """How far a stream's audio may run ahead of its playback clock before others go first."""
    fault_marker: str | None = None
    """Test hook: a text segment containing this string makes the engine fail for that stream."""

    def __post_init__(self) -> None:
        if not self.voices:
            raise ValueError("the engine needs at least one voice")
        if self.device not in {"auto", "cpu", "cuda"} and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.max_batch < 0 or self.threads < 0:
            raise ValueError("max_batch and threads must be 0 (auto) or more")
