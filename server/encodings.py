"""A chunk's audio bytes in the stream's ``encoding``: PCM16, ITU-T G.711 mu-law or A-law, or float32.

G.711 is done by table: every int16 sample value maps to its code through a 65,536-entry lookup built once
with numpy, bit-exact with the reference encoder (Sun's g711.c, as CPython's ``audioop`` runs it; tested on
the full 16-bit range). A chunk is then one fancy-index, about as cheap as a copy.
"""

from __future__ import annotations

import numpy as np

from voxwire.protocol import Encoding

_ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int32)
_ULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
_F32_SCALE = np.float32(1 / 32768)


def _mulaw_codes(samples: np.ndarray) -> np.ndarray:
    """G.711 mu-law of 16-bit samples (the 14 most significant bits are coded)."""
    value = samples >> 2
    mask = np.where(value < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(value), 8159) + 33  # clip, then add the bias
    segment = np.searchsorted(_ULAW_SEGMENT_ENDS, magnitude)  # first end >= magnitude
    code = (segment << 4) | ((magnitude >> (segment + 1)) & 0xF)
    return (np.where(segment >= 8, 0x7F, code) ^ mask).astype(np.uint8)


def _alaw_codes(samples: np.ndarray) -> np.ndarray:
    """G.711 A-law of 16-bit samples (the 13 most significant bits are coded)."""
    value = samples >> 3
    mask = np.where(value >= 0, 0xD5, 0x55)
    magnitude = np.where(value >= 0, value, -value - 1)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, magnitude)
    shift = np.where(segment < 2, 1, segment)
    code = (segment << 4) | ((magnitude >> shift) & 0xF)
    return (np.where(segment >= 8, 0x7F, code) ^ mask).astype(np.uint8)


_MULAW = _mulaw_codes(_ALL_SAMPLES)
_ALAW = _alaw_codes(_ALL_SAMPLES)


def encode_audio(pcm: np.ndarray, encoding: Encoding) -> bytes:
    """``pcm`` (int16 samples) as a chunk's ``audio`` bytes: little-endian, one to four bytes a sample."""
    match encoding:
        case Encoding.PCM16:
            return pcm.astype("<i2", copy=False).tobytes()
        case Encoding.MULAW:
            return _MULAW[pcm.astype(np.int32) + 32768].tobytes()
        case Encoding.ALAW:
            return _ALAW[pcm.astype(np.int32) + 32768].tobytes()
        case Encoding.F32:
            return (pcm.astype("<f4") * _F32_SCALE).tobytes()
