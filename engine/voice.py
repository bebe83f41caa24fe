"""A loaded voice: text to phoneme ids, the batched sentence stage, and the batched window decoder."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from voxwire.engine.config import MAX_SENTENCE_IDS
from voxwire.engine.cuda_graphs import GraphedCall, bucket, power_of_two
from voxwire.engine.decoder import WindowDecoder
from voxwire.engine.latent import Latent, SynthesisParams
from voxwire.engine.phonemes import Phonemized
from voxwire.engine.sentence_stage import SentenceStage, flow_span
from voxwire.engine.splitting import IdLayout, split_ids, split_points
from voxwire.engine.windows import WindowSpec
from voxwire.engine.winograd import use_winograd
from voxwire.engine.words import WordIds, align_words, symbols
from voxwire.engine.work import Piece

WORD_CACHE = 8192
"""Words whose ids a voice remembers (they are looked up again for every sentence that has them)."""

_INT16_MAX = 32767.0

CPU_WINDOW_SIZES = tuple(range(16, 257, 16))
"""Decoder input shapes on a CPU, in kept frames: a window runs at the smallest that holds it, so a fine grid
wastes little on padding (a sentence's last window has any length). Each shape's first use sets up its
kernels (tens of ms, once: :meth:`Voice.warm_up`); batches are single windows there, so shapes cost no
batching."""
GPU_WINDOW_SIZES = (16, 32, 64, 128, 256)
"""On a GPU, few shapes: windows batch together only at the same shape."""
PREPARED_FRAMES = 2048
"""On a GPU, the flow's shapes are prepared at start-up (:meth:`Voice.prepare_shapes`) for sentences of up
to this many frames (the bundled voice makes about 2.1 frames an id at its default speed, so the most ids
take about a quarter of it); a longer sentence sets its shape up when it first comes."""


@dataclass(frozen=True)
class VoiceInfo:
    id: str
    language: str
    sample_rate: int


class Voice:
    """Runs on one device. The sentence stage stays float32 (durations are rounded up from its output, so
    precision there changes lengths); the decoder runs in ``dtype``.

    Not thread-safe: latents are filled in by :meth:`decode_windows`; use a voice from one thread.

    Windows are decoded at fixed input shapes: a window of n kept frames runs at the smallest of
    ``window_sizes`` (by default per device: ``CPU_WINDOW_SIZES``, ``GPU_WINDOW_SIZES``) that holds it (a
    larger window at its own size), padded and masked past the utterance.

    On CUDA the sentence stage and the window decoder run as CUDA graphs unless told otherwise
    (:meth:`use_cuda_graphs`); on a CPU the sentence stage's text encoder and duration predictor run as a
    TorchScript trace (:meth:`SentenceStage.trace`), and in float32 the wide convs (flow, text encoder,
    the decoder's first residual blocks) are computed by Winograd's minimal filtering unless ``winograd``
    is False (:mod:`engine.winograd`: fewer multiply-adds, the same result to float rounding).

    The flow (prior -> decoder input) runs where ``flow_in_encode`` says. True (the default on GPUs, where
    it is cheap and batches well): :meth:`encode` runs it over whole sentences. False (the default on
    CPUs, where it costs more than the rest of the sentence stage): :meth:`decode_windows` runs it as
    windows need it, in chunks of at least ``flow_chunk_frames`` (None: all the rest of the sentence at
    once). Each chunk recomputes the flow's context on both sides (the flow's receptive field), so smaller
    chunks cost more in all, but they keep any one engine step short: with chunks of 128 frames, a 560-frame
    sentence took 15 % more compute on a 2-core CPU, and its longest step fell from 173 ms to 105 ms (the
    second window, when the client holds only the first window's audio).
    Two kinds of window (:class:`engine.windows.WindowSpec`) change that: an urgent one (a stream's first
    audio) has the flow run just as far as it reads, so the first audio waits only for a few dozen frames
    of flow; a relaxed one (its listener is not waiting on it) has it run to its sentence's end at once, for
    the least compute.
    """

    def __init__(
        self,
        info: VoiceInfo,
        phonemizer: Callable[[str], Phonemized],
        layout: IdLayout,
        stage: SentenceStage,
        decoder: WindowDecoder,
        default_params: SynthesisParams,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        window_sizes: Sequence[int] | None = None,
        flow_in_encode: bool | None = None,
        flow_chunk_frames: int | None = 256,
        max_sentence_ids: int = MAX_SENTENCE_IDS,
        winograd: bool = True,
    ) -> None:
        self.info = info
        self.default_params = default_params
        self.device = device
        self.dtype = dtype
        if window_sizes is None:
            window_sizes = CPU_WINDOW_SIZES if device.type == "cpu" else GPU_WINDOW_SIZES
        self.window_sizes = tuple(sorted(window_sizes))
        self.hop_length = decoder.hop_length
        self.context_frames = decoder.context_frames
        self.flow_in_encode = device.type != "cpu" if flow_in_encode is None else flow_in_encode
        self.flow_chunk_frames = flow_chunk_frames
        self._phonemizer = phonemizer
        self.layout = layout
        self.max_sentence_ids = max_sentence_ids
        self.stage = stage.to(device).eval()
        self.stage.pad_shapes = device.type == "cuda"
        self.use_cuda_graphs(device.type == "cuda")
        self.decoder = decoder.to(device=device, dtype=dtype).eval()
        self.winograd_convs = 0
        """Convs computed by Winograd's minimal filtering (:mod:`engine.winograd`; a CPU in float32)."""
        if device.type == "cpu":
            if winograd and dtype == torch.float32:
                self.winograd_convs = use_winograd(self.stage) + use_winograd(self.decoder)
            self.stage.trace()
        self._word_ids: dict[str, list[int]] = {}

    def use_cuda_graphs(self, enabled: bool) -> None:
        """Run the sentence stage (:meth:`SentenceStage.use_cuda_graphs`) and the window decoder as CUDA
        graphs, or eagerly (either way at the padded shapes of a GPU voice)."""
        if enabled and self.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device; the device is {self.device}")
        self.cuda_graphs = enabled
        self.stage.use_cuda_graphs(enabled)
        self._decode_inside: Callable[..., tuple[torch.Tensor, ...]] = self._pcm_inside
        self._decode_masked: Callable[..., tuple[torch.Tensor, ...]] = self._pcm_masked
        if enabled:
            self._decode_inside = GraphedCall(self._pcm_inside, "the window decoder")
            self._decode_masked = GraphedCall(self._pcm_masked, "the window decoder at utterance edges")

    @property
    def graph_shapes(self) -> int:
        """CUDA graphs captured so far, of the sentence stage and of the window decoder."""
        calls = (self._decode_inside, self._decode_masked)
        return self.stage.graph_shapes + sum(call.shapes for call in calls if isinstance(call, GraphedCall))

    def warm_up(self, rounds: int = 1) -> None:
        """Run the sentence stage, and every fixed window shape ``rounds`` times: a window at the edge of its
        utterance on its own (the masked path), and off the CPU also a batch of two inside it.

        The first call at a new shape sets up the conv kernels (oneDNN primitives, cuDNN algorithms) and
        takes several times longer (tens of ms on a CPU); this keeps that cost out of the first requests.
        """
        ids = self.phonemize("Warm up.").sentences
        self.complete(self.encode(ids, [self.default_params] * len(ids)))
        for size in self.window_sizes:
            frames = size + 2 * self.context_frames
            zeros = torch.zeros(self.stage.flow_size, frames, device=self.device)
            latent = Latent(zeros, zeros, torch.zeros(0, dtype=torch.long), ready=frames)
            for _ in range(rounds):
                self.decode_windows([(latent, WindowSpec(0, size))])
                if self.device.type != "cpu":  # a CPU engine decodes one window a step (engine.build)
                    inside = WindowSpec(self.context_frames, self.context_frames + size)
                    self.decode_windows([(latent, inside)] * 2)

    @torch.inference_mode()
    def prepare_shapes(self, max_sentences: int, max_windows: int) -> int:
        """On a GPU, run every padded shape a batch of up to ``max_sentences`` sentences or ``max_windows``
        windows can take (sentences up to ``max_sentence_ids`` ids and ``PREPARED_FRAMES`` frames), so
        that each graph is captured (or each shape's convolutions set up) before any request, not in the
        middle of one. Returns how many graphs are held afterwards."""
        if not self.stage.pad_shapes:
            raise ValueError("only a voice with padded shapes (on a GPU) has a fixed set of shapes")
        lengths = sorted({bucket(n) for n in range(1, self.max_sentence_ids + 1)})
        spans = sorted({flow_span(n) for n in range(1, PREPARED_FRAMES + 1)})
        self.stage.prepare_shapes(_powers_of_two(max_sentences), lengths, spans)
        channels = self.stage.flow_size
        for size in self.window_sizes:
            width = size + 2 * self.context_frames
            for batch in _powers_of_two(max_windows):
                z = torch.zeros(batch, channels, width, device=self.device, dtype=self.dtype)
                self._decode_inside(z)
                self._decode_masked(z, torch.zeros(batch, 2, dtype=torch.long, device=self.device))
        return self.graph_shapes

    def phonemize(self, text: str) -> Phonemized:
        """Phoneme ids per sentence, each at most ``max_sentence_ids`` long (a longer sentence is cut at a
        clause or word boundary, :mod:`voxwire.engine.splitting`)."""
        phonemized = self._phonemizer(text)
        sentences = [
            piece
            for sentence in phonemized.sentences
            for piece in split_ids(sentence, self.max_sentence_ids, self.layout)
        ]
        return Phonemized(sentences, phonemized.unknown)

    def pieces(self, text: str, offset: int = 0) -> tuple[list[Piece], frozenset[str]]:
        """:meth:`phonemize` as pieces with the words each speaks (characters in a stream's text where
        ``text`` starts at ``offset``, ids in the piece: :mod:`voxwire.engine.words`), and the symbols the
        voice had no id for."""
        phonemized = self._phonemizer(text)
        aligned = align_words(text, phonemized.sentences, self._ids_of_word, self.layout)
        pieces: list[Piece] = []
        for ids, words in zip(phonemized.sentences, aligned, strict=True):
            points = split_points(ids, self.max_sentence_ids, self.layout)
            if len(points) == 1:
                pieces.append(Piece(tuple(ids), tuple(_moved(word, offset, 0) for word in words)))
                continue
            for start, end in points:
                shift = len(self.layout.prefix) - start
                inside = [word for word in words if word.first_id < end and word.end_id > start]
                piece = (*self.layout.prefix, *ids[start:end], *self.layout.suffix)
                clipped = [
                    WordIds(w.start_char, w.end_char, max(w.first_id, start), min(w.end_id, end))
                    for w in inside
                ]
                pieces.append(Piece(piece, tuple(_moved(word, offset, shift) for word in clipped)))
        return pieces, phonemized.unknown

    def _ids_of_word(self, word: str) -> list[int]:
        """The symbol ids the voice makes of one word on its own (remembered)."""
        found = self._word_ids.get(word)
        if found is None:
            if len(self._word_ids) >= WORD_CACHE:
                self._word_ids.clear()
            sentences = self._phonemizer(word).sentences
            found = [ids[i] for ids in sentences for i in symbols(ids, self.layout)]
            self._word_ids[word] = found
        return found

    @torch.inference_mode()
    def encode(
        self,
        ids: Sequence[Sequence[int]],
        params: Sequence[SynthesisParams],
        generator: torch.Generator | None = None,
    ) -> list[Latent]:
        """Latents of a batch of sentences (any lengths, each its own params), trimmed to their frames."""
        latents: list[Latent] = self.stage(ids, params, generator, with_flow=self.flow_in_encode)
        return latents

    @torch.inference_mode()
    def complete(self, latents: Sequence[Latent]) -> None:
        """Run the flow for every frame of these latents not computed yet (``z`` is then final)."""
        self.stage.run_flow(latents, [latent.frames for latent in latents])

    @torch.inference_mode()
    def decode_windows(self, jobs: Sequence[tuple[Latent, WindowSpec]]) -> list[np.ndarray]:
        """int16 PCM of each window's kept frames ((end - start) * hop_length samples), batched by shape."""
        by_size: dict[int, list[int]] = {}
        for index, (latent, window) in enumerate(jobs):
            if not 0 <= window.start < window.end <= latent.frames:
                raise ValueError(f"window {window} outside a latent of {latent.frames} frames")
            size = next((s for s in self.window_sizes if s >= window.frames), window.frames)
            by_size.setdefault(size, []).append(index)
        self._run_flow_for(jobs, by_size)
        pcm: list[np.ndarray] = [np.empty(0, np.int16)] * len(jobs)
        for size, indices in by_size.items():
            audio = self._decode(size, [jobs[i] for i in indices])
            for row, index in enumerate(indices):
                pcm[index] = audio[row, : jobs[index][1].frames * self.hop_length]
        return pcm

    def _run_flow_for(self, jobs: Sequence[tuple[Latent, WindowSpec]], by_size: dict[int, list[int]]) -> None:
        """Make ``z`` final wherever these windows read it: for a relaxed window, all of its sentence at
        once (each chunk computes the flow's context again: chunks cost up to twice the flow of the whole);
        for an urgent one (a stream's first audio) just what it reads; otherwise chunks of at least
        ``flow_chunk_frames`` (or all the rest)."""
        latents: dict[int, Latent] = {}
        ends: dict[int, int] = {}
        for size, indices in by_size.items():
            for latent, window in (jobs[i] for i in indices):
                needed = min(window.start + size + self.context_frames, latent.frames)
                if needed > latent.ready:
                    latents[id(latent)] = latent
                    ends[id(latent)] = max(self._flow_end(latent, needed, window), ends.get(id(latent), 0))
        self.stage.run_flow([latents[key] for key in ends], list(ends.values()))

    def _flow_end(self, latent: Latent, needed: int, window: WindowSpec) -> int:
        """Where the chunk of flow that makes frames up to ``needed`` final for ``window`` should end."""
        if window.urgent:
            return needed
        if window.relaxed or self.flow_chunk_frames is None:
            return latent.frames
        end = max(needed, latent.ready + self.flow_chunk_frames)
        if latent.frames - end < self.flow_chunk_frames // 2:
            return latent.frames  # a short tail costs its context twice over: take it now
        return end

    def _decode(self, size: int, jobs: Sequence[tuple[Latent, WindowSpec]]) -> np.ndarray:
        context = self.context_frames
        width = size + 2 * context
        channels = jobs[0][0].z.shape[0]
        # On a GPU, a power-of-two batch (few shapes): padding rows are zeros (and outside any utterance).
        batch = power_of_two(len(jobs)) if self.stage.pad_shapes else len(jobs)
        z = torch.zeros(batch, channels, width, device=self.device, dtype=self.dtype)
        valid = [(0, width)] * batch
        for row, (latent, window) in enumerate(jobs):
            first = window.start - context  # latent frame at window position 0
            lo, hi = max(first, 0), min(first + width, latent.frames)
            z[row, :, lo - first : hi - first] = latent.z[:, lo:hi]
            valid[row] = (lo - first, hi - first)
        if all(v == (0, width) for v in valid):
            (pcm,) = self._decode_inside(z)
        else:
            (pcm,) = self._decode_masked(z, torch.tensor(valid, device=self.device))
        result: np.ndarray = pcm[: len(jobs)].cpu().numpy()
        return result

    def _pcm_inside(self, z: torch.Tensor) -> tuple[torch.Tensor]:
        """int16 PCM of windows that lie inside their utterances (no masking)."""
        return (_to_pcm(self.decoder(z, z.shape[-1] - 2 * self.context_frames, None)),)

    def _pcm_masked(self, z: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor]:
        """int16 PCM of windows whose frames ``valid`` [batch, 2] (start, end) are inside the utterance."""
        return (_to_pcm(self.decoder(z, z.shape[-1] - 2 * self.context_frames, valid)),)


def _powers_of_two(most: int) -> list[int]:
    """1, 2, 4, ... up to the power of two that holds ``most`` (a batch of ``most`` is padded to it)."""
    return [1 << k for k in range(power_of_two(most).bit_length())]


def _to_pcm(audio: torch.Tensor) -> torch.Tensor:
    return (audio.float() * _INT16_MAX).clamp_(-_INT16_MAX, _INT16_MAX).to(torch.int16)


def _moved(word: WordIds, chars: int, ids: int) -> WordIds:
    return WordIds(word.start_char + chars, word.end_char + chars, word.first_id + ids, word.end_id + ids)
