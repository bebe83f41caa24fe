"""Winograd convs compute what direct convs compute, to float32 rounding, at any length, dilation, batch and
input layout; a voice with them speaks as the direct voice does (same durations, and audio that differs by
less than rounding it to int16 does)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.engine_fixtures import SPEECH, as_float, poked_audio, rel_l2
from voxwire.engine.channels_last import Conv1d, convert_convs, time_major
from voxwire.engine.latent import SynthesisParams
from voxwire.engine.loader import load_voice
from voxwire.engine.voice import Voice
from voxwire.engine.windows import WindowSpec, plan_windows
from voxwire.engine.winograd import WinogradConv1d, use_winograd, winograd_matrices

NO_NOISE = SynthesisParams(0.0, 0.0, 1.0)
CONV_BOUND = 1e-5
"""Relative L2 error of a Winograd conv against float64 (measured 2e-7 to 2e-6: larger kernels and
dilations read from more points; direct float32 convs measure 2e-7)."""
AUDIO_BOUND = 2e-4
"""Relative L2 difference of a Winograd voice's int16 audio from the direct voice's: measured 5e-5 to 1e-4
(the float audio differs by about 3e-5, and 2 % of samples round to a neighbouring int16 value); rounding the
float audio to int16 alone is 2.8e-4 of it."""


@pytest.mark.parametrize(("outputs", "kernel"), [(2, 3), (4, 3), (4, 5), (4, 7)])
def test_the_transforms_make_a_correlation_exactly(outputs: int, kernel: int) -> None:
    a_t, g, b_t = winograd_matrices(outputs, kernel)
    generator = torch.Generator().manual_seed(kernel)
    for _ in range(5):
        tile = torch.randn(outputs + kernel - 1, dtype=torch.float64, generator=generator)
        weights = torch.randn(kernel, dtype=torch.float64, generator=generator)
        expected = torch.stack([weights @ tile[i : i + kernel] for i in range(outputs)])
        assert torch.allclose(a_t @ ((g @ weights) * (b_t @ tile)), expected, rtol=0, atol=1e-12)


def _pair(
    channels: int, out: int, kernel: int, padding: int, dilation: int, bias: bool = True
) -> tuple[nn.Conv1d, WinogradConv1d]:
    torch.manual_seed(kernel * 100 + dilation * 10 + padding)
    reference = nn.Conv1d(channels, out, kernel, padding=padding, dilation=dilation, bias=bias)
    conv = Conv1d(channels, out, kernel, padding=padding, dilation=dilation, bias=bias)
    conv.load_state_dict(reference.state_dict())
    return reference.double(), WinogradConv1d(conv)


@pytest.mark.parametrize(
    ("kernel", "padding", "dilation"),
    [(3, 1, 1), (3, 2, 2), (5, 2, 1), (5, 12, 6), (7, 3, 1), (7, 36, 12), (5, 0, 1), (3, 4, 1)],
)
@pytest.mark.parametrize("length", [1, 3, 4, 17, 64, 301])
def test_winograd_conv_equals_the_direct_conv(kernel: int, padding: int, dilation: int, length: int) -> None:
    if length + 2 * padding < (kernel - 1) * dilation + 1:
        pytest.skip("no output at this length")
    reference, ours = _pair(12, 10, kernel, padding, dilation)
    x = torch.randn(3, 12, length, generator=torch.Generator().manual_seed(length))
    with torch.inference_mode():
        got = ours(time_major(x))
        expected = reference(x.double())
    assert got.shape == expected.shape
    assert got.stride()[1] == 1  # time-major out, as the channels-last convs give
    assert rel_l2(got.double().numpy(), expected.numpy()) < CONV_BOUND


@pytest.mark.parametrize("layout", ["contiguous", "a channel slice"])
def test_any_input_layout(layout: str) -> None:
    reference, ours = _pair(8, 6, 5, 2, 1, bias=False)
    x = torch.randn(2, 16, 40)
    x = {"contiguous": x[:, :8].contiguous(), "a channel slice": time_major(x)[:, 8:]}[layout]
    with torch.inference_mode():
        assert rel_l2(ours(x).double().numpy(), reference(x.double()).numpy()) < CONV_BOUND


def test_a_trace_of_a_winograd_conv_holds_at_other_lengths() -> None:
    """The forward takes its sizes from the input, with no branch on them: one trace serves every length
    (the sentence stage runs as a trace, engine/traced.py)."""
    _, ours = _pair(8, 8, 5, 4, 2)
    with torch.inference_mode():
        trace = torch.jit.trace(ours, time_major(torch.randn(1, 8, 33)), check_trace=False)
        for length in (5, 64, 257):
            x = time_major(torch.randn(2, 8, length))
            assert torch.equal(trace(x), ours(x))


def test_use_winograd_converts_the_wide_convs_only() -> None:
    model = convert_convs(
        nn.Sequential(
            nn.Conv1d(128, 256, 5, padding=2),  # wide: converted
            nn.Conv1d(256, 128, 3, padding=2, dilation=2),  # wide: converted
            nn.Conv1d(128, 64, 5, padding=2),  # 64 out: direct
            nn.Conv1d(128, 128, 1),  # a matmul: direct
            nn.Conv1d(128, 128, 9, padding=4),  # no transform for 9
            nn.Conv1d(128, 128, 3, stride=2, padding=1),  # strided
            nn.Conv1d(128, 128, 3, padding=1, groups=128),  # depthwise
        )
    )
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    assert use_winograd(model) == 2
    converted = [type(layer) is WinogradConv1d for layer in model]
    assert converted == [True, True, False, False, False, False, False]
    after = model.state_dict()
    assert after.keys() == before.keys()  # the transforms are not saved: state dicts stay the conv's
    assert all(torch.equal(after[name], before[name]) for name in before)
    assert use_winograd(model) == 0  # converted convs stay as they are


@pytest.fixture(scope="module")
def voices() -> tuple[Voice, Voice]:
    return load_voice("joe", device="cpu"), load_voice("joe", device="cpu", winograd=False)


def test_the_bundled_cpu_voice_uses_winograd_in_its_trace(voices: tuple[Voice, Voice]) -> None:
    winograd, direct = voices
    assert winograd.winograd_convs > 0 and direct.winograd_convs == 0
    assert winograd.stage.traced  # the trace was checked against the eager stage at other shapes


def test_a_winograd_voice_speaks_as_the_direct_voice(voices: tuple[Voice, Voice], record_property) -> None:
    """Same durations (the sentence stage's rounding is not moved), and audio, windowed as a stream's is,
    within ``AUDIO_BOUND`` of the direct voice's."""
    winograd, direct = voices
    errors = []
    for text in SPEECH:
        ids = winograd.phonemize(text).sentences
        latents = [voice.encode(ids, [NO_NOISE] * len(ids)) for voice in (winograd, direct)]
        for ours, theirs in zip(*latents, strict=True):
            assert torch.equal(ours.durations, theirs.durations)
            audio = []
            for voice, latent in ((winograd, ours), (direct, theirs)):
                windows = plan_windows(latent.frames)
                windows[0] = WindowSpec(windows[0].start, windows[0].end, urgent=True)
                pcm = [voice.decode_windows([(latent, window)])[0] for window in windows]
                audio.append(as_float(np.concatenate(pcm)))
            errors.append(rel_l2(*audio))
    record_property("winograd_rel_l2", max(errors))
    assert max(errors) < AUDIO_BOUND


def test_rounding_reaches_past_the_receptive_field_only_at_rounding_level(
    voices: tuple[Voice, Voice],
) -> None:
    """A Winograd tile mixes its inputs, so a change to one latent frame moves audio beyond the decoder's
    receptive field, by rounding only: four orders of magnitude below the change inside it."""
    context, hop, poked = voices[0].context_frames, voices[0].hop_length, 40
    a, b = poked_audio(voices[0], poked=poked)
    change = (a - b).abs()
    inside = slice((poked - context) * hop, (poked + context + 1) * hop)
    outside = torch.cat([change[: inside.start], change[inside.stop :]])
    assert float(outside.max()) < 1e-4 * float(change[inside].max())
