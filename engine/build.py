"""The engine, built from one :class:`EngineConfig`: voices loaded on their device, torch set up, the
scheduler sized. The server passes its settings in and never touches torch itself."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace

import torch

from voxwire.engine.config import EngineConfig
from voxwire.engine.loader import load_voice, resolve_device
from voxwire.engine.scheduler import FIRST_WINDOW_FRAMES, GPU_FIRST_WINDOW_FRAMES, SchedulerConfig
from voxwire.engine.voice import Voice
from voxwire.engine.worker import EngineWorker, StepObserver

log = logging.getLogger(__name__)

GPU_MAX_BATCH_WINDOWS = 256
GPU_MAX_BATCH_SENTENCES = 64
"""On a GPU, the caps of a batch per stage: as large as continuous batching fills them under load. The
simulation against the measured H100 step times (bench/simulate.py, docs/gpu-scale.md) put the knee at
2,500 streams with these against 1,000 with 8 of each; nothing waits to fill a batch, so at light load
steps stay small."""
_DTYPES = {
    "float32": torch.float32,
    "tf32": torch.float32,  # float32 weights; load_voice(tf32=True) sets the TF32 math
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}


def default_max_batch(device: torch.device) -> tuple[int, int]:
    """The most windows and the most sentences in one batch. Batching pays on a GPU; on a CPU a batch costs
    what its items cost one by one (measured in docs/benchmarks.md), so there it would only make each engine
    step, and every wait behind it, longer."""
    return (1, 1) if device.type == "cpu" else (GPU_MAX_BATCH_WINDOWS, GPU_MAX_BATCH_SENTENCES)


def default_first_window(device: torch.device) -> int:
    """A stream's first window when it asks for none: small on a CPU, where each start in a burst costs a
    first window of its own; larger on a GPU, where a batch of them costs little and the small one's ramp
    would cost capacity (:data:`engine.scheduler.GPU_FIRST_WINDOW_FRAMES`)."""
    return FIRST_WINDOW_FRAMES if device.type == "cpu" else GPU_FIRST_WINDOW_FRAMES


def default_dtype(device: torch.device) -> str:
    """``--dtype auto``: tf32 on CUDA, float32 on a CPU. On an H200, IEEE float32 convolutions ran 2 to 40
    times slower than TF32 at the batch sizes the engine uses (docs/benchmarks.md); TF32's error against
    float32 is bounded by a test."""
    return "tf32" if device.type == "cuda" else "float32"


def check_workers(device: torch.device, workers: int, cuda_graphs: bool) -> None:
    """Raise ValueError if the workers would share CUDA graphs: a graph replays into its own buffers, so
    two threads replaying it at once would overwrite each other's results."""
    if device.type == "cuda" and cuda_graphs and workers > 1:
        raise ValueError(
            f"{workers} workers on {device} would share the voices' CUDA graphs: use one worker per GPU, "
            "or --cuda-graphs false"
        )


VoiceLoader = Callable[[str, EngineConfig], Voice]
"""Loads one voice (a ``voices`` entry) as a config asks: the default is :func:`load_configured_voice`;
embedders and tests may bring their own."""


def load_configured_voice(spec: str, config: EngineConfig) -> Voice:
    return load_voice(
        spec,
        config.device,
        _DTYPES[config.dtype],
        allow_raw_phonemes=config.allow_raw_phonemes,
        max_sentence_ids=config.max_sentence_ids,
        tf32=config.dtype == "tf32",
        cuda_graphs=config.cuda_graphs,
    )


def build_engine(
    config: EngineConfig,
    on_step: StepObserver | None = None,
    on_death: Callable[[str], None] | None = None,
    load: VoiceLoader = load_configured_voice,
) -> EngineWorker:
    """Load the voices and make the worker (blocking: call it from a thread; start the worker on the loop).

    ``on_step`` observes every engine step (metrics); ``on_death`` hears, on the loop thread, that the engine
    thread died (every open stream has failed by then)."""
    cores = os.cpu_count() or 1
    device = torch.device(resolve_device(config.device))
    max_windows, max_sentences = (
        (config.max_batch, config.max_batch) if config.max_batch else default_max_batch(device)
    )
    dtype = default_dtype(device) if config.dtype == "auto" else config.dtype
    workers = config.workers or (cores if device.type == "cpu" else 1)
    check_workers(device, workers, config.cuda_graphs)
    threads = config.threads or max(1, (cores - 1) // workers)
    torch.set_num_threads(threads)  # before loading: the voices warm up at the thread count they run at
    voices = []
    for spec in config.voices:
        log.info("loading voice %s on device %s in %s", spec, device, dtype)
        voices.append(load(spec, replace(config, device=str(device), dtype=dtype)))
    log.info(
        "engine: %d compute thread(s) of %d torch thread(s) each, batches of at most %d window(s), "
        "%d sentence(s)%s",
        workers,
        threads,
        max_windows,
        max_sentences,
        ", the voices as CUDA graphs" if device.type == "cuda" and config.cuda_graphs else "",
    )
    scheduler = SchedulerConfig(
        max_batch_windows=max_windows,
        max_batch_sentences=max_sentences,
        max_ahead_s=config.max_ahead_s,
        workers=workers,
        max_asap_streams=config.max_asap_streams,
        admission_headroom=config.admission_headroom,
    )
    if device.type == "cuda":  # a CUDA voice runs at padded shapes (engine.voice)
        for voice in voices:
            started = time.perf_counter()
            graphs = voice.prepare_shapes(max_sentences, max_windows)
            log.info(
                "voice %s: every batch shape prepared in %.1f s (%d CUDA graphs)",
                voice.info.id,
                time.perf_counter() - started,
                graphs,
            )
    worker = EngineWorker(
        voices,
        scheduler,
        on_step=on_step,
        on_death=on_death,
        workers=workers,
        threads=threads,
        first_window_frames=default_first_window(device),
    )
    rate = worker.calibrate()
    log.info(
        "admission starts from a calibration: %.1f audio s per compute s, about %.0f realtime streams",
        rate,
        worker.stats().capacity_streams,
    )
    return worker
