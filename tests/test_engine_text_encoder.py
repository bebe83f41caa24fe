"""The text encoder's banded attention and self-padding feed-forward equal transformers' layers."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import VitsConfig
from transformers.models.vits.modeling_vits import (
    VitsAttention,
    VitsFeedForward,
    VitsTextEncoder,
)

from voxwire.engine.channels_last import convert_convs
from voxwire.engine.text_encoder import BandedRelativeAttention, FeedForward, convert_text_encoder

CONFIG = VitsConfig(
    vocab_size=40,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    ffn_dim=48,
    ffn_kernel_size=3,
    window_size=4,
    flow_size=8,
)


def _randomized(module: torch.nn.Module) -> torch.nn.Module:
    """Weights drawn afresh, so that the relative embeddings and biases are not their initial zeros."""
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_(0, 0.3)
    return module.eval()


def _attention_bias(lengths: list[int], width: int) -> torch.Tensor:
    hidden = torch.arange(width)[None, :] >= torch.tensor(lengths)[:, None]
    bias = hidden[:, None, None, :].float() * torch.finfo(torch.float32).min
    return bias.expand(-1, 1, width, width)


# From one id (no neighbour) past the window's reach (2 * 4 + 1 ids) to many windows long.
@pytest.mark.parametrize("length", [1, 2, 4, 5, 6, 9, 10, 37])
def test_banded_attention_equals_transformers(length: int) -> None:
    attention = _randomized(VitsAttention(CONFIG))
    banded = BandedRelativeAttention(attention)
    hidden = torch.randn(2, length, CONFIG.hidden_size)
    mask = _attention_bias([length, max(length // 2, 1)], length)
    with torch.inference_mode():
        reference, _ = attention(hidden_states=hidden, attention_mask=mask)
        ours, _ = banded(hidden_states=hidden, attention_mask=mask)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)


def test_self_padding_feed_forward_equals_transformers() -> None:
    feed_forward = _randomized(VitsFeedForward(CONFIG))
    ours = FeedForward(feed_forward)
    hidden = torch.randn(2, 23, CONFIG.hidden_size)
    padding_mask = (torch.arange(23) < torch.tensor([23, 11])[:, None]).float()[:, :, None]
    with torch.inference_mode():
        reference = feed_forward(hidden, padding_mask)
        result = ours(hidden, padding_mask)
    # The convs sum in another order (channels-last): float rounding, relative to the outputs' scale.
    torch.testing.assert_close(result, reference, rtol=1e-5, atol=1e-6 * float(reference.abs().max()))


def test_converted_text_encoder_equals_transformers() -> None:
    """The whole encoder, converted as the sentence stage converts it (channels-last convs too)."""
    encoder = _randomized(VitsTextEncoder(CONFIG))
    converted = convert_convs(convert_text_encoder(copy.deepcopy(encoder)))
    layer = converted.encoder.layers[0]
    assert isinstance(layer.attention, BandedRelativeAttention)
    assert isinstance(layer.feed_forward, FeedForward)
    ids = torch.randint(0, CONFIG.vocab_size, (2, 30))
    lengths = [30, 17]
    padding_mask = (torch.arange(30) < torch.tensor(lengths)[:, None]).float()[:, :, None]
    with torch.inference_mode():
        reference = encoder(ids, padding_mask, attention_mask=_attention_bias(lengths, 30))
        ours = converted(ids, padding_mask, attention_mask=_attention_bias(lengths, 30))
    for name in ("last_hidden_state", "prior_means", "prior_log_variances"):
        torch.testing.assert_close(getattr(ours, name), getattr(reference, name), rtol=1e-5, atol=1e-5)


def test_a_feed_forward_of_even_kernel_stays_as_it_is() -> None:
    """transformers pads an even kernel unevenly (one more on the right): a conv cannot do that itself."""
    config = copy.deepcopy(CONFIG)
    config.ffn_kernel_size = 2
    encoder = convert_text_encoder(VitsTextEncoder(config))
    assert type(encoder.encoder.layers[0].feed_forward) is VitsFeedForward
