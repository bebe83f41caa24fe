"""What the sentence stage takes per sentence (its scales) and gives back (the latent the decoder reads)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SynthesisParams:
    """Piper's three scales. ``noise_w`` is transformers' ``noise_scale_duration``; ``length_scale`` is
    ``1 / speaking_rate``."""

    noise_scale: float
    noise_w: float
    length_scale: float


@dataclass(frozen=True, slots=True)
class WordTiming:
    """A word of the stream's text (characters ``[start_char, end_char)`` of all its text) and when it is
    spoken: samples ``[start, end)`` at the voice's rate, from the start of its sentence's audio."""

    start_char: int
    end_char: int
    start: int
    end: int


@dataclass
class Latent:
    """One sentence's latent frames, and how many frames each input id got.

    ``prior`` is the flow's input; ``z``, the decoder's input, is computed from it in chunks as windows
    need it (:meth:`engine.voice.Voice.decode_windows`): only frames ``[0, ready)`` of ``z`` are final.
    """

    prior: torch.Tensor  # [flow_size, frames], on the voice's device
    z: torch.Tensor  # [flow_size, frames], on the voice's device; final up to `ready`
    durations: torch.Tensor  # [ids] int64 frames per input id, on the CPU
    ready: int = 0
    words: tuple[WordTiming, ...] = ()
    """The words this sentence speaks, in order (set by the engine once durations are known)."""

    @property
    def frames(self) -> int:
        return self.prior.shape[-1]
