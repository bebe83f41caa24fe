"""A voxwire server whose voices fail on cue, for the fault tests: ``python -m tests.fault_server [flags]``.

It is ``voxwire serve`` with every voice wrapped in :class:`FaultyVoice` (a test double around the real voice,
never a production flag). A text segment holding one of these markers makes the engine:

- ``VOXWIRE_TEST_FAULT``: fail on that stream's item (a RuntimeError);
- ``VOXWIRE_TEST_OOM``: run out of memory on that stream's item (``torch.OutOfMemoryError``);
- ``VOXWIRE_TEST_STICKY``: break for good, as a device does after a sticky CUDA error: this step and every
  later one fails, a known-good sentence included;
- ``VOXWIRE_TEST_CRASH``: kill the engine thread (an exception no step failure handler catches).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np
import torch

from voxwire.engine.build import load_configured_voice
from voxwire.engine.config import EngineConfig
from voxwire.engine.latent import Latent, SynthesisParams
from voxwire.engine.phonemes import Phonemized
from voxwire.engine.voice import Voice
from voxwire.engine.windows import WindowSpec
from voxwire.engine.work import Piece
from voxwire.server.run import serve
from voxwire.server.settings import add_arguments, build_settings

FAULT = "VOXWIRE_TEST_FAULT"
OOM = "VOXWIRE_TEST_OOM"
STICKY = "VOXWIRE_TEST_STICKY"
CRASH = "VOXWIRE_TEST_CRASH"


class EngineCrash(BaseException):
    """Not an ``Exception``: it passes every per-step failure handler and ends the engine thread."""


class FaultyVoice(Voice):
    broken = False

    def phonemize(self, text: str) -> Phonemized:
        self._inject(text)
        return super().phonemize(text)

    def pieces(self, text: str, offset: int = 0) -> tuple[list[Piece], frozenset[str]]:
        self._inject(text)
        return super().pieces(text, offset)

    def _inject(self, text: str) -> None:
        self._check()
        if CRASH in text:
            raise EngineCrash("injected crash of the engine thread")
        if STICKY in text:
            FaultyVoice.broken = True
            self._check()
        if OOM in text:
            raise torch.OutOfMemoryError("injected out of memory")
        if FAULT in text:
            raise RuntimeError("injected engine fault")

    def encode(
        self,
        ids: Sequence[Sequence[int]],
        params: Sequence[SynthesisParams],
        generator: torch.Generator | None = None,
    ) -> list[Latent]:
        self._check()
        return super().encode(ids, params, generator)

    def decode_windows(self, jobs: Sequence[tuple[Latent, WindowSpec]]) -> list[np.ndarray]:
        self._check()
        return super().decode_windows(jobs)

    def _check(self) -> None:
        if FaultyVoice.broken:
            raise RuntimeError("CUDA error: an illegal memory access was encountered (injected)")


def load_faulty_voice(spec: str, config: EngineConfig) -> Voice:
    voice = load_configured_voice(spec, config)
    voice.__class__ = FaultyVoice  # the same object, its methods wrapped
    return voice


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fault_server")
    add_arguments(parser)
    return serve(build_settings(parser.parse_args(argv)), load=load_faulty_voice)


if __name__ == "__main__":
    sys.exit(main())
