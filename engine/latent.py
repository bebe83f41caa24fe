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

    @property
    def frames(self) -> int:
        return self.prior.shape[-1]
