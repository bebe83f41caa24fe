"""Chunk audio encodings (``server/encodings.py``) against CPython's reference G.711 (``audioop``, from
the standard library up to Python 3.12 and from ``audioop-lts`` after), on every 16-bit sample value."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from voxwire.protocol import Encoding
from voxwire.server.encodings import encode_audio

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    audioop = pytest.importorskip("audioop")

EVERY_SAMPLE = np.arange(-32768, 32768, dtype=np.int16)


def test_mulaw_is_bit_exact_with_the_reference_on_the_whole_16_bit_range() -> None:
    assert encode_audio(EVERY_SAMPLE, Encoding.MULAW) == audioop.lin2ulaw(EVERY_SAMPLE.tobytes(), 2)


def test_alaw_is_bit_exact_with_the_reference_on_the_whole_16_bit_range() -> None:
    assert encode_audio(EVERY_SAMPLE, Encoding.ALAW) == audioop.lin2alaw(EVERY_SAMPLE.tobytes(), 2)


def test_g711_codes_decode_back_near_the_samples() -> None:
    for encode, decode in ((Encoding.MULAW, audioop.ulaw2lin), (Encoding.ALAW, audioop.alaw2lin)):
        back = np.frombuffer(decode(encode_audio(EVERY_SAMPLE, encode), 2), np.int16).astype(np.int32)
        samples = EVERY_SAMPLE.astype(np.int32)
        error = np.abs(back - samples)
        assert error.max() <= 1024  # the largest quantisation step of G.711 (its top segment)
        assert np.all(error[np.abs(samples) < 64] <= 8)  # fine steps near zero


def test_pcm16_and_f32_are_little_endian_and_exact() -> None:
    assert encode_audio(EVERY_SAMPLE, Encoding.PCM16) == EVERY_SAMPLE.astype("<i2").tobytes()
    floats = np.frombuffer(encode_audio(EVERY_SAMPLE, Encoding.F32), "<f4")
    np.testing.assert_array_equal(floats * 32768, EVERY_SAMPLE.astype(np.float32))
    assert floats.min() == -1.0 and floats.max() < 1.0


def test_bytes_per_sample_match_the_protocol() -> None:
    pcm = np.zeros(100, np.int16)
    for encoding in Encoding:
        assert len(encode_audio(pcm, encoding)) == 100 * encoding.sample_bytes
