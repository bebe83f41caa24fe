"""The sentence stage: phoneme ids to latent frames, for a padded batch of sentences with their own scales.

The stage stops at the flow's input (the prior sample); :meth:`SentenceStage.run_flow` turns it into the
decoder's input in chunks, so that the first audio does not wait for the flow over the whole sentence
(on a CPU the flow over a sentence costs more than the rest of the stage).

Text encoder, duration predictor and flow are transformers' VITS modules. This module drives them instead of
``VitsModel.forward`` because each sentence brings its own scales and the noise must come from a caller's
``torch.Generator``; the stochastic duration predictor's inverse pass is therefore spelled out here (it is
``VitsStochasticDurationPredictor.forward(reverse=True)`` with the noise passed in, and its spline flows
inverted by :mod:`engine.conv_flow`). The prior's flow is inverted by :mod:`engine.coupling_flow` (a chunk
computes only what it reads), and the text encoder's attention and feed-forward layers are swapped for
equivalents that skip work (:mod:`engine.text_encoder`).

Weight norm (which transformers' WaveNets carry) is folded into plain weights, and the 1-d convs are swapped
for channels-last ones (:mod:`engine.channels_last`), which are faster on CPU.

Noise is drawn per sentence at the sentence's own length, so a sentence's latent does not depend on what it
was batched with, only on the generator's state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize
from transformers.models.vits.modeling_vits import (
    VitsConvFlow,
    VitsDurationPredictor,
    VitsResidualCouplingBlock,
    VitsStochasticDurationPredictor,
    VitsTextEncoder,
)

from voxwire.engine.channels_last import convert_convs
from voxwire.engine.conv_flow import inverse_conv_flow
from voxwire.engine.coupling_flow import flow_reach, reverse_flow
from voxwire.engine.cuda_graphs import GraphedCall, bucket, power_of_two
from voxwire.engine.latent import Latent, SynthesisParams
from voxwire.engine.text_encoder import convert_text_encoder
from voxwire.engine.traced import TracedCall, traced


class SentenceStage(nn.Module):
    def __init__(
        self,
        text_encoder: VitsTextEncoder,
        duration_predictor: VitsStochasticDurationPredictor | VitsDurationPredictor,
        flow: VitsResidualCouplingBlock,
    ) -> None:
        super().__init__()
        self.text_encoder = text_encoder
        self.duration_predictor = duration_predictor
        self.flow = flow
        self.flow_size = text_encoder.config.flow_size
        self.flow_context = flow_reach(flow)
        fold_weight_norm(self)
        convert_text_encoder(self.text_encoder)
        convert_convs(self)
        self.pad_shapes = False
        """Pad batches to a power of two, lengths to :func:`engine.cuda_graphs.bucket` and the flow's frames
        to :func:`flow_span`, so that few shapes ever run: graphs need it, and on a GPU each new shape costs
        its convolutions' set-up (docs/benchmarks.md). Padding is masked out and changes no result."""
        self.use_cuda_graphs(False)

    def use_cuda_graphs(self, enabled: bool) -> None:
        """Run the text encoder with the duration predictor, and the flow over whole sentences, as CUDA
        graphs (:mod:`engine.cuda_graphs`); they need ``pad_shapes``. When not ``enabled`` they run
        eagerly."""
        if enabled and not self.pad_shapes:
            raise ValueError("CUDA graphs need padded shapes (pad_shapes)")
        self._run_durations: Callable[..., tuple[torch.Tensor, ...]] = self._durations
        self._run_whole_flow: Callable[..., tuple[torch.Tensor, ...]] = self._whole_flow
        if enabled:
            self._run_durations = GraphedCall(self._durations, "the text encoder")
            self._run_whole_flow = GraphedCall(self._whole_flow, "the flow")

    def trace(self) -> bool:
        """Run the text encoder with the duration predictor as one TorchScript trace (:mod:`engine.traced`),
        for a CPU: no Python, and no GIL, between its ops. True when the trace was made and matches the
        eager stage; otherwise the stage stays eager."""
        if isinstance(self._run_durations, GraphedCall):
            raise ValueError("the stage runs as CUDA graphs; a trace is for the CPU")
        # A padded batch of two, so that no branch is taken for want of padding; checked at other shapes.
        example = self._example_inputs([13, 7])
        check = self._example_inputs([5, 23, 17])
        self._run_durations = traced(self, self._durations, example, check, "the sentence stage")
        return self.traced

    @property
    def traced(self) -> bool:
        """Whether the text encoder and the duration predictor run as a trace (:meth:`trace`)."""
        return isinstance(self._run_durations, TracedCall)

    def _example_inputs(self, lengths: list[int]) -> tuple[torch.Tensor, ...]:
        """Inputs of :meth:`_durations` for sentences of ``lengths`` ids (arbitrary ids, seeded noise)."""
        device = self.text_encoder.embed_tokens.weight.device
        vocab = self.text_encoder.embed_tokens.num_embeddings
        generator = torch.Generator().manual_seed(len(lengths))
        width = max(lengths)
        ids = torch.randint(0, vocab, (len(lengths), width), generator=generator)
        mask = torch.arange(width) < torch.tensor(lengths)[:, None]
        noise = torch.randn(len(lengths), 2, width, generator=generator) * mask[:, None]
        scales = torch.ones(len(lengths), 1, 1)
        inputs = (ids * mask, mask, noise, 0.8 * scales, scales)
        return tuple(tensor.to(device) for tensor in inputs)

    def prepare_shapes(self, batches: Sequence[int], lengths: Sequence[int], spans: Sequence[int]) -> None:
        """Run the stage once at each padded shape (capturing its graph, or setting up its convolutions),
        so that no request pays for it: the text encoder at each batch and id length, the flow at each
        batch and frame span."""
        device = self.text_encoder.embed_tokens.weight.device
        for batch in batches:
            ones = torch.ones(batch, 1, 1, device=device)
            for length in lengths:
                ids = torch.zeros(batch, length, dtype=torch.long, device=device)
                mask = torch.ones(batch, length, dtype=torch.bool, device=device)
                noise = torch.zeros(batch, 2, length, device=device)
                self._run_durations(ids, mask, noise, ones, ones)
            for span in spans:
                # time-major, as forward's prior
                prior = torch.zeros(batch, span, self.flow_size, device=device).transpose(1, 2)
                self._run_whole_flow(prior, torch.ones(batch, 1, span, device=device))

    @property
    def graph_shapes(self) -> int:
        """CUDA graphs captured so far (one per shape of each graphed part)."""
        calls = (self._run_durations, self._run_whole_flow)
        return sum(call.shapes for call in calls if isinstance(call, GraphedCall))

    @torch.inference_mode()
    def forward(
        self,
        ids: Sequence[Sequence[int]],
        params: Sequence[SynthesisParams],
        generator: torch.Generator | None = None,
        with_flow: bool = False,
    ) -> list[Latent]:
        """The latents of a batch of sentences; ``with_flow`` runs the flow over each whole sentence too
        (``z`` final, ``ready`` at its end), where it would otherwise wait for :meth:`run_flow`."""
        if len(ids) != len(params):
            raise ValueError(f"{len(ids)} sentences but {len(params)} parameter sets")
        if not ids or any(len(s) == 0 for s in ids):
            raise ValueError("every sentence needs at least one id")
        device = self.text_encoder.embed_tokens.weight.device
        lengths = [len(s) for s in ids]
        count = len(ids)
        # Padded rows and columns are masked out: they change no sentence's result, only the shapes.
        batch = power_of_two(count) if self.pad_shapes else count
        width = bucket(max(lengths)) if self.pad_shapes else max(lengths)
        input_ids = torch.zeros(batch, width, dtype=torch.long)
        for row, sentence in enumerate(ids):
            input_ids[row, : len(sentence)] = torch.as_tensor(sentence, dtype=torch.long)
        padded_lengths = torch.tensor(lengths + [0] * (batch - count))
        token_mask = torch.arange(width) < padded_lengths[:, None]
        scales = torch.zeros(batch, 3)
        scales[:count] = torch.tensor([[p.noise_scale, p.noise_w, p.length_scale] for p in params])
        scales = scales.to(device)
        noise_scale, noise_w, length_scale = (scales[:, i, None, None] for i in range(3))
        if isinstance(self.duration_predictor, VitsDurationPredictor):  # deterministic: draws no noise
            duration_noise = torch.zeros(batch, 2, width, device=device)
        else:
            duration_noise = _padded_noise(2, lengths, generator, device, (batch, width))
        durations, prior_means, prior_log_variances = self._run_durations(
            input_ids.to(device), token_mask.to(device), duration_noise, noise_w, length_scale
        )
        durations_cpu = durations.long().cpu()
        frames = durations_cpu[:count].sum(-1).clamp_min(1).tolist()
        span = flow_span(max(frames)) if with_flow and self.pad_shapes else max(frames)

        # Expand each id's prior over its frames: a 0/1 alignment matrix, so the matmul copies exactly.
        ends = torch.cumsum(durations, -1)[:, None, :]
        positions = torch.arange(span, device=device, dtype=ends.dtype)[None, :, None]
        alignment = ((positions < ends) & (positions >= ends - durations[:, None, :])).float()
        means = torch.matmul(alignment, prior_means).transpose(1, 2)
        log_variances = torch.matmul(alignment, prior_log_variances).transpose(1, 2)
        noise = _padded_noise(self.flow_size, frames, generator, device, (batch, span))
        prior = means + noise * torch.exp(log_variances) * noise_scale
        if not with_flow:
            return [
                Latent(
                    prior=prior[row, :, :n].contiguous(),
                    z=torch.empty_like(prior[row, :, :n]),
                    durations=durations_cpu[row, : lengths[row]],
                )
                for row, n in enumerate(frames)
            ]
        padded_frames = torch.tensor(frames + [0] * (batch - count), device=device)
        frame_mask = (torch.arange(span, device=device) < padded_frames[:, None])[:, None, :].float()
        (z,) = self._run_whole_flow(prior, frame_mask)
        z = z.clone()  # a graph's output is its own buffer, overwritten by its next replay
        return [
            Latent(
                prior=prior[row, :, :n],
                z=z[row, :, :n],
                durations=durations_cpu[row, : lengths[row]],
                ready=n,
            )
            for row, n in enumerate(frames)
        ]

    def _durations(
        self,
        input_ids: torch.Tensor,
        token_mask: torch.Tensor,
        duration_noise: torch.Tensor,
        noise_w: torch.Tensor,
        length_scale: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frames per id [batch, ids] (float, whole numbers) and the prior's means and log-variances per id
        [batch, ids, flow_size]: everything up to the one host synchronisation, on the device alone."""
        mask = token_mask[:, None, :].float()  # [batch, 1, ids]
        encoded = self.text_encoder(
            input_ids, mask.transpose(1, 2), attention_mask=_attention_bias(token_mask)
        )
        hidden = encoded.last_hidden_state.transpose(1, 2)
        log_durations = self._log_durations(hidden, mask, duration_noise * noise_w)
        durations = torch.ceil(torch.exp(log_durations) * mask * length_scale)[:, 0]
        return durations, encoded.prior_means, encoded.prior_log_variances

    def _whole_flow(self, prior: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor]:
        return (reverse_flow(self.flow, prior, mask),)

    @torch.inference_mode()
    def run_flow(self, latents: Sequence[Latent], ends: Sequence[int]) -> None:
        """Compute each latent's ``z`` from frame ``ready`` up to its end in ``ends``, as one padded batch.

        A chunk [ready, end) reads the prior ``flow_context`` frames beyond it on each side (clipped to the
        utterance, whose edges the flow's mask handles as a whole-utterance run would): that is the flow's
        receptive field, so the chunk equals the same frames of a flow over the whole utterance.
        """
        chunks = [
            (latent, latent.ready, end)
            for latent, end in zip(latents, ends, strict=True)
            if end > latent.ready
        ]
        if not chunks:
            return
        spans = [
            (max(start - self.flow_context, 0), min(end + self.flow_context, latent.frames))
            for latent, start, end in chunks
        ]
        width = max(hi - lo for lo, hi in spans)
        device = chunks[0][0].prior.device
        prior = torch.zeros(len(chunks), self.flow_size, width, device=device)
        for row, ((latent, _, _), (lo, hi)) in enumerate(zip(chunks, spans, strict=True)):
            prior[row, :, : hi - lo] = latent.prior[:, lo:hi]
        widths = torch.tensor([hi - lo for lo, hi in spans], device=device)
        mask = (torch.arange(width, device=device) < widths[:, None])[:, None, :].float()
        # Frames each row reads past its chunk, at the ends of the batch: their outputs need not be made.
        spare_left = min(start - lo for (_, start, _), (lo, _) in zip(chunks, spans, strict=True))
        spare_right = min(width - (end - lo) for (_, _, end), (lo, _) in zip(chunks, spans, strict=True))
        z = reverse_flow(self.flow, prior, mask, spare_left, spare_right)
        for row, ((latent, start, end), (lo, _)) in enumerate(zip(chunks, spans, strict=True)):
            offset = lo + spare_left  # the prior's frame at z's index 0
            latent.z[:, start:end] = z[row, :, start - offset : end - offset]
            latent.ready = end

    def _log_durations(self, hidden: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``noise``: the stochastic predictor's input [batch, 2, ids], already scaled by ``noise_w``."""
        predictor = self.duration_predictor
        if isinstance(predictor, VitsDurationPredictor):
            log_durations: torch.Tensor = predictor(hidden, mask)
            return log_durations
        conditioning = predictor.conv_pre(hidden)
        conditioning = predictor.conv_dds(conditioning, mask)
        conditioning = predictor.conv_proj(conditioning) * mask
        # Inference skips the flow that follows the affine one, as transformers (and Piper) do.
        flows = list(reversed(predictor.flows))
        flows = [*flows[:-2], flows[-1]]
        latents = noise
        for flow in flows:
            latents = torch.flip(latents, [1])
            if isinstance(flow, VitsConvFlow):
                latents = inverse_conv_flow(flow, latents, mask, conditioning)
            else:
                latents, _ = flow(latents, mask, global_conditioning=conditioning, reverse=True)
        return latents[:, :1]


def flow_span(frames: int) -> int:
    """The padded frame span of the flow over whole sentences: a power of two, at least 64. Coarser than
    the ids' buckets, since frames spread much wider than ids and every shape is set up once."""
    return max(64, power_of_two(frames))


def fold_weight_norm(module: nn.Module) -> None:
    """Replace weight-norm parametrizations inside ``module`` by the plain weights they compute."""
    for sub in module.modules():
        if parametrize.is_parametrized(sub, "weight"):
            parametrize.remove_parametrizations(sub, "weight")


def _attention_bias(token_mask: torch.Tensor) -> torch.Tensor:
    """Additive attention mask [batch, 1, ids, ids] that hides padding keys.

    Passed ready-made because transformers builds it from the config's attention implementation, which a
    VitsConfig made by hand leaves unset (and then no mask is applied at all).
    """
    length = token_mask.shape[-1]
    hidden = (~token_mask)[:, None, None, :].float() * torch.finfo(torch.float32).min
    return hidden.expand(-1, 1, length, length)


def _padded_noise(
    channels: int,
    lengths: list[int],
    generator: torch.Generator | None,
    device: torch.device,
    shape: tuple[int, int],
) -> torch.Tensor:
    """Standard normal noise [batch, channels, length] (``shape`` is batch and length), drawn per row at
    the row's own length and zero past it (and in rows past ``lengths``)."""
    source = generator.device if generator is not None else device
    noise = torch.zeros(shape[0], channels, shape[1], device=source)
    for row, n in enumerate(lengths):
        noise[row, :, :n] = torch.randn(channels, n, generator=generator, device=source)
    return noise.to(device)
