"""The text encoder's attention and feed-forward layers, computing what transformers' compute with less work.

* :class:`BandedRelativeAttention`: VITS attends with relative position embeddings that reach only
  ``window_size`` ids either side. ``VitsAttention`` spreads them over all ``2 * ids - 1`` relative
  positions (zeros outside the window) and multiplies the whole matrix: two products of
  ``ids x 2 ids`` per layer, mostly with zeros, and as many padded copies. Here the products cover the
  ``2 * window_size + 1`` diagonals the embeddings reach; the other entries it added were exact zeros.
* :class:`FeedForward`: ``VitsFeedForward`` pads its input before each conv (a copy, in the layout the
  channels-last convs then copy again). Here the convs pad by themselves, on the activation as it is.

Both run the same arithmetic on the entries that count (`tests/test_engine_text_encoder.py`).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.models.vits.modeling_vits import VitsAttention, VitsFeedForward, VitsTextEncoder

from voxwire.engine.channels_last import Conv1d


def convert_text_encoder(encoder: VitsTextEncoder) -> VitsTextEncoder:
    """Swap (in place) each layer's attention and feed-forward for the forms below; a feed-forward only
    where its convs have an odd kernel (padded the same on both sides)."""
    for layer in encoder.encoder.layers:
        if isinstance(layer.attention, VitsAttention):
            layer.attention = BandedRelativeAttention(layer.attention)
        feed_forward = layer.feed_forward
        if isinstance(feed_forward, VitsFeedForward) and all(
            _pads_evenly(conv) for conv in (feed_forward.conv_1, feed_forward.conv_2)
        ):
            layer.feed_forward = FeedForward(feed_forward)
    return encoder


class BandedRelativeAttention(nn.Module):
    """``VitsAttention`` as self-attention in inference: the same projections and embeddings (same
    parameter names), relative positions on the diagonals they reach."""

    def __init__(self, attention: VitsAttention) -> None:
        super().__init__()
        self.num_heads = attention.num_heads
        self.head_dim = attention.head_dim
        self.embed_dim = attention.embed_dim
        self.scaling = attention.scaling
        self.window_size: int = attention.window_size
        self.q_proj, self.k_proj = attention.q_proj, attention.k_proj
        self.v_proj, self.out_proj = attention.v_proj, attention.out_proj
        self.emb_rel_k, self.emb_rel_v = attention.emb_rel_k, attention.emb_rel_v

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, None]:
        """``hidden_states`` [batch, ids, channels]; ``attention_mask`` additive [batch, 1, ids, ids]."""
        if output_attentions:
            raise ValueError("attention weights are not kept")
        batch, length, _ = hidden_states.shape
        query = self._heads(self.q_proj(hidden_states) * self.scaling)
        key = self._heads(self.k_proj(hidden_states))
        value = self._heads(self.v_proj(hidden_states))
        window = self.window_size

        # Scores with ``window`` spare columns each side, so that every query's band of relative offsets
        # (key = query - window ... query + window) is one strided view, whether its keys exist or not.
        scores = nn.functional.pad(torch.bmm(query, key.transpose(1, 2)), (window, window))
        # each query against the embedding of each offset [batch * heads, ids, offsets]
        _band(scores).add_(torch.matmul(query, self.emb_rel_k[0].transpose(0, 1)))
        weights = scores[..., window : window + length]
        if attention_mask is not None:
            weights = weights.view(batch, self.num_heads, length, length) + attention_mask
        probs = nn.functional.softmax(weights.reshape(-1, length, length), dim=-1)

        output = torch.bmm(probs, value)
        # each query's weights by offset (zero where no key lies): the same band, of the probabilities
        output += torch.matmul(_band(nn.functional.pad(probs, (window, window))), self.emb_rel_v[0])

        output = output.view(batch, self.num_heads, length, self.head_dim).transpose(1, 2)
        return self.out_proj(output.reshape(batch, length, self.embed_dim)), None

    def _heads(self, states: torch.Tensor) -> torch.Tensor:
        """[batch, ids, channels] -> [batch * heads, ids, head_dim]."""
        batch, length, _ = states.shape
        states = states.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        return states.reshape(batch * self.num_heads, length, self.head_dim)


def _band(padded: torch.Tensor) -> torch.Tensor:
    """[rows, ids, ids + 2 * window] -> the view [rows, ids, 2 * window + 1] of each id's own columns
    (id ... id + 2 * window: its offsets -window ... window once the padding is taken off)."""
    rows, length, width = padded.shape
    offsets = width - length + 1
    return padded.as_strided((rows, length, offsets), (length * width, width + 1, 1), padded.storage_offset())


class FeedForward(nn.Module):
    """``VitsFeedForward`` with convs that pad by themselves (same parameter names)."""

    def __init__(self, feed_forward: VitsFeedForward) -> None:
        super().__init__()
        self.conv_1 = _padded(feed_forward.conv_1)
        self.conv_2 = _padded(feed_forward.conv_2)
        self.act_fn = feed_forward.act_fn

    def forward(self, hidden_states: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        """``hidden_states`` [batch, ids, channels], ``padding_mask`` [batch, ids, 1]: as transformers'."""
        mask = padding_mask.transpose(1, 2)
        # [batch, ids, channels] seen as [batch, channels, ids] is the convs' time-major layout: no copy.
        hidden = self.act_fn(self.conv_1((hidden_states * padding_mask).transpose(1, 2)))
        hidden = self.conv_2(hidden * mask)
        output: torch.Tensor = (hidden * mask).transpose(1, 2)
        return output


def _pads_evenly(conv: nn.Conv1d) -> bool:
    """An unpadded, undilated, single-group conv of odd kernel: transformers pads its input by half the
    kernel on each side, as the conv can by itself."""
    return (
        conv.kernel_size[0] % 2 == 1
        and conv.padding == (0,)
        and conv.stride == (1,)
        and conv.dilation == (1,)
        and conv.groups == 1
    )


def _padded(conv: nn.Conv1d) -> Conv1d:
    """A channels-last copy of an unpadded conv of odd kernel that pads its input by half the kernel."""
    kernel = conv.kernel_size[0]
    padded = Conv1d(
        conv.in_channels,
        conv.out_channels,
        kernel,
        padding=(kernel - 1) // 2,
        bias=conv.bias is not None,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    padded.load_state_dict(conv.state_dict())
    return padded
