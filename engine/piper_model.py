"""A Piper voice's ONNX weights, put into transformers' VITS modules and our window decoder.

The architecture is read off the weights' shapes and the graph's conv settings, so any single-speaker Piper
VITS export whose duration predictor width equals its hidden size loads; anything else is refused by name.
Name mapping, Piper -> transformers:

* ``sid`` (the phoneme embedding) -> ``text_encoder.embed_tokens``;
  ``enc_p.encoder.attn_layers.N.conv_{q,k,v,o}`` (1x1 convs) -> ``layers.N.attention.{q,k,v,out}_proj``
  (linear); ``norm_layers_1/2`` -> ``layer_norm`` / ``final_layer_norm``; ``ffn_layers`` -> ``feed_forward``;
  ``enc_p.proj`` -> ``project``.
* ``dp.pre/proj/convs`` -> ``duration_predictor.conv_pre/conv_proj/conv_dds`` (``convs_sep`` ->
  ``convs_dilated``, ``convs_1x1`` -> ``convs_pointwise``, norms' ``gamma/beta`` -> ``weight/bias``).
  Piper's flow list interleaves Flip modules: its conv flows 3, 5, 7 are transformers' 2, 3, 4. Piper's
  flow 1 and transformers' flow 1 are the flow that inference drops, so Piper did not export it. The
  affine flow's ``logs`` was folded into the constant ``exp(-logs)``.
* ``flow.flows.{0,2,4,6}`` -> ``flow.flows.{0,1,2,3}`` (``pre``/``post`` -> ``conv_pre``/``conv_post``,
  ``enc`` -> ``wavenet``). Weight norm was removed before export, so it is removed here too.
* ``dec.*`` -> :class:`~engine.decoder.WindowDecoder`, whose names are Piper's.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import TypeVar

import torch
from torch import nn
from transformers import VitsConfig
from transformers.models.vits.modeling_vits import (
    VitsResidualCouplingBlock,
    VitsStochasticDurationPredictor,
    VitsTextEncoder,
)

from voxwire.engine.decoder import WindowDecoder
from voxwire.engine.onnx_weights import ConvAttrs, OnnxWeights
from voxwire.engine.sentence_stage import SentenceStage, fold_weight_norm

M = TypeVar("M", bound=nn.Module)

_TAIL_BOUND = 5.0  # Piper's ConvFlow tail bound; a constant of the code, not stored in the export


def load_piper_model(weights: OnnxWeights) -> tuple[SentenceStage, WindowDecoder]:
    """The sentence stage and window decoder of a Piper voice; raises if any module weight is left over."""
    config = piper_vits_config(weights)
    stage = SentenceStage(
        text_encoder=_load_text_encoder(weights, config),
        duration_predictor=_load_duration_predictor(weights, config),
        flow=_load_flow(weights, config),
    )
    decoder = _load_decoder(weights, config)
    unused = weights.unused()
    if unused:
        raise ValueError(f"weights in the ONNX file that nothing loaded: {unused}")
    return stage, decoder


def piper_vits_config(weights: OnnxWeights) -> VitsConfig:
    vocab_size, hidden = weights.arrays["sid"].shape
    attn0 = "enc_p.encoder.attn_layers.0"
    _, window, head_dim = weights.arrays[f"{attn0}.emb_rel_k"].shape
    ffn_dim, _, ffn_kernel = weights.arrays["enc_p.encoder.ffn_layers.0.conv_1.weight"].shape
    wavenet = "flow.flows.0.enc"
    dds_kernel = weights.arrays["dp.convs.convs_sep.0.weight"].shape[-1]
    conv_flows = _indices(weights, r"dp\.flows\.(\d+)\.pre\.weight")
    bins_out = weights.arrays[f"dp.flows.{conv_flows[0]}.proj.weight"].shape[0]
    if weights.arrays["dp.pre.weight"].shape[0] != hidden:
        raise ValueError("duration predictors narrower or wider than the text encoder are not supported")
    ups = _indices(weights, r"dec\.ups\.(\d+)\.weight")
    blocks = _indices(weights, r"dec\.resblocks\.(\d+)\.\w+\.0\.weight")
    per_stage = len(blocks) // len(ups)
    dilated = "convs1" if _resblock_type(weights) == 1 else "convs"
    kernels, dilations = [], []
    for b in range(per_stage):
        convs = _indices(weights, rf"dec\.resblocks\.{b}\.{dilated}\.(\d+)\.weight")
        attrs = [weights.convs[f"dec.resblocks.{b}.{dilated}.{c}"] for c in convs]
        kernels.append(attrs[0].kernel)
        dilations.append(tuple(a.dilation for a in attrs))
    return VitsConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=len(_indices(weights, r"enc_p\.encoder\.attn_layers\.(\d+)\.conv_q\.weight")),
        num_attention_heads=hidden // head_dim,
        window_size=(window - 1) // 2,
        ffn_dim=ffn_dim,
        ffn_kernel_size=ffn_kernel,
        flow_size=weights.arrays["enc_p.proj.weight"].shape[0] // 2,
        prior_encoder_num_flows=len(_indices(weights, r"flow\.flows\.(\d+)\.pre\.weight")),
        prior_encoder_num_wavenet_layers=len(_indices(weights, rf"{wavenet}\.in_layers\.(\d+)\.bias")),
        wavenet_kernel_size=weights.convs[f"{wavenet}.in_layers.0"].kernel,
        wavenet_dilation_rate=weights.convs.get(
            f"{wavenet}.in_layers.1", weights.convs[f"{wavenet}.in_layers.0"]
        ).dilation,
        use_stochastic_duration_prediction=True,
        duration_predictor_filter_channels=hidden,
        duration_predictor_kernel_size=dds_kernel,
        duration_predictor_num_flows=len(conv_flows) + 1,  # + the flow inference drops, not exported
        duration_predictor_flow_bins=(bins_out + 1) // 3,
        duration_predictor_tail_bound=_TAIL_BOUND,
        depth_separable_num_layers=len(_indices(weights, r"dp\.convs\.convs_sep\.(\d+)\.weight")),
        upsample_initial_channel=weights.arrays["dec.conv_pre.weight"].shape[0],
        upsample_rates=[weights.convs[f"dec.ups.{i}"].stride for i in ups],
        upsample_kernel_sizes=[weights.convs[f"dec.ups.{i}"].kernel for i in ups],
        resblock_kernel_sizes=kernels,
        resblock_dilation_sizes=dilations,
        num_speakers=1,
        speaker_embedding_size=0,
    )


def _resblock_type(weights: OnnxWeights) -> int:
    """HiFi-GAN block type: 1 (two convs per dilation; transformers' only kind) or 2 (one conv)."""
    return 1 if weights.has("dec.resblocks.0.convs1.0.weight") else 2


def _indices(weights: OnnxWeights, pattern: str) -> list[int]:
    regex = re.compile(pattern + "$")
    found = {int(m.group(1)) for name in weights.arrays if (m := regex.match(name))}
    if not found:
        raise ValueError(f"no weights match {pattern!r}: not a Piper VITS export this loader knows")
    return sorted(found)


def _load(module: M, state: dict[str, torch.Tensor], unused: Collection[str] = ()) -> M:
    """Load a full state; only the parameters named in ``unused`` (never run in inference) may be missing."""
    missing, unexpected = module.load_state_dict(state, strict=False)
    surplus = set(missing) - set(unused)
    if surplus or unexpected:
        raise ValueError(f"{type(module).__name__}: missing {sorted(surplus)}, unexpected {unexpected}")
    return module.eval()


def _load_text_encoder(weights: OnnxWeights, config: VitsConfig) -> VitsTextEncoder:
    state = {"embed_tokens.weight": weights.take("sid"), **_renamed(weights, "enc_p.proj", "project")}
    for n in range(config.num_hidden_layers):
        piper, ours = f"enc_p.encoder.attn_layers.{n}", f"encoder.layers.{n}.attention"
        for p, t in (
            ("conv_q", "q_proj"),
            ("conv_k", "k_proj"),
            ("conv_v", "v_proj"),
            ("conv_o", "out_proj"),
        ):
            state[f"{ours}.{t}.weight"] = weights.take(f"{piper}.{p}.weight").squeeze(-1)
            state[f"{ours}.{t}.bias"] = weights.take(f"{piper}.{p}.bias")
        for rel in ("emb_rel_k", "emb_rel_v"):
            state[f"{ours}.{rel}"] = weights.take(f"{piper}.{rel}")
        layer = f"encoder.layers.{n}"
        for p, t in ((f"norm_layers_1.{n}", "layer_norm"), (f"norm_layers_2.{n}", "final_layer_norm")):
            state[f"{layer}.{t}.weight"] = weights.take(f"enc_p.encoder.{p}.gamma")
            state[f"{layer}.{t}.bias"] = weights.take(f"enc_p.encoder.{p}.beta")
        for conv in ("conv_1", "conv_2"):
            state.update(
                _renamed(weights, f"enc_p.encoder.ffn_layers.{n}.{conv}", f"{layer}.feed_forward.{conv}")
            )
    return _load(VitsTextEncoder(config), state)


def _load_duration_predictor(weights: OnnxWeights, config: VitsConfig) -> VitsStochasticDurationPredictor:
    state = {
        **_renamed(weights, "dp.pre", "conv_pre"),
        **_renamed(weights, "dp.proj", "conv_proj"),
        **_dds(weights, "dp.convs", "conv_dds"),
        "flows.0.translate": weights.take("dp.flows.0.m"),
        "flows.0.log_scale": -torch.log(weights.take("/dp/flows.0/Exp_output_0")),
    }
    conv_flows = _indices(weights, r"dp\.flows\.(\d+)\.pre\.weight")
    for ours, piper in enumerate(conv_flows, start=2):
        state.update(_renamed(weights, f"dp.flows.{piper}.pre", f"flows.{ours}.conv_pre"))
        state.update(_renamed(weights, f"dp.flows.{piper}.proj", f"flows.{ours}.conv_proj"))
        state.update(_dds(weights, f"dp.flows.{piper}.convs", f"flows.{ours}.conv_dds"))
    module = VitsStochasticDurationPredictor(config)
    unused = {n for n, _ in module.named_parameters() if n.startswith(("post_", "flows.1."))}
    return _load(module, state, unused)


def _load_flow(weights: OnnxWeights, config: VitsConfig) -> VitsResidualCouplingBlock:
    module = VitsResidualCouplingBlock(config)
    fold_weight_norm(module)  # Piper's export holds the plain weights
    state: dict[str, torch.Tensor] = {}
    for ours, piper in enumerate(_indices(weights, r"flow\.flows\.(\d+)\.pre\.weight")):
        src, dst = f"flow.flows.{piper}", f"flows.{ours}"
        state.update(_renamed(weights, f"{src}.pre", f"{dst}.conv_pre"))
        state.update(_renamed(weights, f"{src}.post", f"{dst}.conv_post"))
        for layer in range(config.prior_encoder_num_wavenet_layers):
            for kind in ("in_layers", "res_skip_layers"):
                state.update(_renamed(weights, f"{src}.enc.{kind}.{layer}", f"{dst}.wavenet.{kind}.{layer}"))
    return _load(module, state)


def _load_decoder(weights: OnnxWeights, config: VitsConfig) -> WindowDecoder:
    decoder = WindowDecoder.from_config(config, _resblock_type(weights))
    for name, ours in decoder.named_modules():
        if isinstance(ours, nn.Conv1d | nn.ConvTranspose1d):
            settings = ConvAttrs(ours.kernel_size[0], ours.dilation[0], ours.stride[0], int(ours.padding[0]))
            if settings != weights.convs[f"dec.{name}"]:
                raise ValueError(f"dec.{name}: the graph has {weights.convs[f'dec.{name}']}, ours {settings}")
    state = {name.removeprefix("dec."): weights.take(name) for name in weights.names("dec.")}
    return _load(decoder, state)


def _renamed(weights: OnnxWeights, piper: str, ours: str) -> dict[str, torch.Tensor]:
    return {f"{ours}.weight": weights.take(f"{piper}.weight"), f"{ours}.bias": weights.take(f"{piper}.bias")}


def _dds(weights: OnnxWeights, piper: str, ours: str) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for n in range(len(_indices(weights, rf"{re.escape(piper)}\.convs_sep\.(\d+)\.weight"))):
        state.update(_renamed(weights, f"{piper}.convs_sep.{n}", f"{ours}.convs_dilated.{n}"))
        state.update(_renamed(weights, f"{piper}.convs_1x1.{n}", f"{ours}.convs_pointwise.{n}"))
        for norm in ("norms_1", "norms_2"):
            state[f"{ours}.{norm}.{n}.weight"] = weights.take(f"{piper}.{norm}.{n}.gamma")
            state[f"{ours}.{norm}.{n}.bias"] = weights.take(f"{piper}.{norm}.{n}.beta")
    return state
