"""bench/simulate.py's engine half reproduces a real run: the real EngineWorker, with a voice double that
takes exactly the cost table's time on the worker's clock, makes the same scheduling decisions (which
streams, which items, in which batches) as the simulator for the same inputs. And the cost model and the
simulated load behave as documented."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from sim_costs import CostTable, Curve, load_tables
from sim_engine import HOP, SAMPLE_RATE, VOICE, Chosen, Decision, latent_frames, replay
from simulate import Load, simulate

from voxwire.engine.latent import Latent, SynthesisParams
from voxwire.engine.phonemes import Phonemized
from voxwire.engine.scheduler import GPU_FIRST_WINDOW_FRAMES, SchedulerConfig
from voxwire.engine.voice import VoiceInfo
from voxwire.engine.windows import WindowSpec
from voxwire.engine.work import Piece
from voxwire.engine.worker import EngineWorker

# Six streams, several sentences each, of varied lengths: sentence batches bucket by length, first windows,
# steady and large windows and short last windows all occur. Every text is unique, so it names its stream.
TEXTS = [
    [f"Stream {key} says sentence {n}." + " More words here." * ((key * 3 + n) % 5) for n in range(3)]
    for key in range(6)
]
CONFIG = SchedulerConfig(max_batch_windows=5, max_batch_sentences=3, max_ahead_s=1e6)
"""Look-ahead never binds: the worker would wait for it on the wall clock, which a fake clock cannot."""


class TimedVoice:
    """A voice double that takes the cost table's time on a fake clock and records what it was given."""

    def __init__(self, costs: CostTable) -> None:
        self.info = VoiceInfo(VOICE, "en_US", SAMPLE_RATE)
        self.default_params = SynthesisParams(0.667, 0.8, 1.0)
        self.hop_length = HOP
        self.window_sizes = (16, 32, 64, 128)
        self.now = 0.0
        self.costs = costs
        self.calls: list[tuple[str, list[tuple[str, int, int]]]] = []
        self._texts: dict[int, tuple[Latent, str]] = {}

    def clock(self) -> float:
        return self.now

    def phonemize(self, text: str) -> Phonemized:
        return Phonemized([[ord(c) for c in text]])

    def pieces(self, text: str, offset: int = 0) -> tuple[list[Piece], frozenset[str]]:
        return [Piece(tuple(ids)) for ids in self.phonemize(text).sentences], frozenset()

    def encode(self, ids: list[list[int]], params: list[SynthesisParams]) -> list[Latent]:
        self.now += self.costs.sentence_step_s(len(ids))
        latents = []
        for sentence in ids:
            zeros = torch.zeros(1, latent_frames(len(sentence)))
            latent = Latent(zeros, zeros, torch.zeros(0, dtype=torch.long), zeros.shape[-1])
            self._texts[id(latent)] = (latent, "".join(map(chr, sentence)))
            latents.append(latent)
        self.calls.append(("sentences", [(self._texts[id(x)][1], 0, 0) for x in latents]))
        return latents

    def decode_windows(self, jobs: list[tuple[Latent, WindowSpec]]) -> list[np.ndarray]:
        self.now += self.costs.window_step_s([spec.frames for _, spec in jobs])
        self.calls.append(("windows", [(self._texts[id(x)][1], s.start, s.end) for x, s in jobs]))
        return [np.zeros(spec.frames * HOP, np.int16) for _, spec in jobs]


def stream_of(text: str, texts: Sequence[Sequence[str]]) -> int:
    return next(key for key, stream_texts in enumerate(texts) if text in stream_texts)


async def real_run(costs: CostTable) -> list[Decision]:
    """The real worker on TEXTS; its decisions, read from what the voice double was asked to compute."""
    voice = TimedVoice(costs)
    worker = EngineWorker(  # as a GPU engine is built (engine.build.default_first_window)
        [voice],  # type: ignore[list-item]
        CONFIG,
        clock=voice.clock,
        first_window_frames=GPU_FIRST_WINDOW_FRAMES,
    )
    handles = [worker.open_stream() for _ in TEXTS]
    for handle, texts in zip(handles, TEXTS, strict=True):
        for text in texts:
            handle.add_text(text)
        handle.end_input()
    worker.start()
    try:
        for handle in handles:
            assert [block async for block in handle]
    finally:
        await worker.stop()
    decisions: list[Decision] = []
    for kind, items in voice.calls:
        if kind == "sentences":
            decisions.append((kind, tuple(Chosen(stream_of(t, TEXTS), text=t) for t, _, _ in items)))
        else:
            chosen = tuple(Chosen(stream_of(t, TEXTS), start=start, end=end) for t, start, end in items)
            decisions.append((kind, chosen))
    return decisions


@pytest.mark.parametrize("table", ["h100-measured", "h100-target"])
async def test_the_simulator_makes_the_real_workers_decisions(table: str) -> None:
    (costs,) = load_tables([table])
    real = await real_run(costs)
    simulated = replay(TEXTS, costs, CONFIG)
    assert simulated == real
    # The run is not trivial: batched sentences, first (32-frame), large (128-frame) and short windows.
    sizes = {item.end - item.start for kind, items in real if kind == "windows" for item in items}
    assert {32, 64, 128} <= sizes and len(sizes) > 3
    assert max(len(items) for kind, items in real if kind == "sentences") > 1


def test_the_decisions_depend_on_the_costs() -> None:
    """The comparison above could fail: other step times give other decisions for the same inputs (here a
    much slower GPU: listeners are less far ahead, so fewer windows are large)."""
    (measured,) = load_tables(["h100-measured"])
    slow = CostTable("slow", Curve.from_ms({"1": 500, "64": 600}), Curve.from_ms({"1": 400, "64": 800}), 0, 0)
    decisions = replay(TEXTS, slow, CONFIG)
    assert decisions != replay(TEXTS, measured, CONFIG)
    assert large_windows(decisions) < large_windows(replay(TEXTS, measured, CONFIG))


def large_windows(decisions: list[Decision]) -> int:
    return sum(
        item.end - item.start == 128 for kind, items in decisions if kind == "windows" for item in items
    )


def test_a_cost_curve_is_linear_between_points_and_beyond_the_last() -> None:
    curve = Curve.from_ms({"1": 10.0, "5": 30.0, "9": 40.0})
    assert curve.at(0.5) == pytest.approx(0.010)
    assert curve.at(3) == pytest.approx(0.020)
    assert curve.at(7) == pytest.approx(0.035)
    assert curve.at(13) == pytest.approx(0.050)


def test_a_window_batch_costs_by_its_frames() -> None:
    (costs,) = load_tables(["h100-measured"])
    steady = costs.window_step_s([64] * 64)
    assert costs.window_step_s([128] * 64) > steady > costs.window_step_s([32] * 64)
    assert steady == pytest.approx(costs.window.at(64) + costs.host_step_s + 64 * costs.host_item_s)


def test_an_easy_load_is_served_and_an_impossible_one_is_not() -> None:
    (costs,) = load_tables(["h100-target"])
    easy = simulate(Load(streams=20, duration_s=12, ramp_s=2), costs, SchedulerConfig(8, 8))
    assert easy.replies > 20 and easy.underruns == 0 and easy.unfinished == 0
    assert easy.engine_ttfa_ms[95] < 150 < easy.ttfa_ms[95]  # the rest is text arriving
    (slow,) = load_tables(["h100-measured"])
    hard = simulate(Load(streams=600, duration_s=12, ramp_s=2), slow, SchedulerConfig(8, 8))
    assert hard.underruns > 0 and hard.utilisation > 0.9


def test_enforced_admission_turns_an_impossible_load_away() -> None:
    """With ``enforce_admission`` the starts admission refuses do not run (the slot retries later): of an
    overload that underruns when admission is only measured, the admitted part is served with far fewer
    underruns. (Not none: every start of the first second of work gets in, before admission has measured
    anything.)"""
    (slow,) = load_tables(["h100-measured"])
    config = SchedulerConfig(8, 8)
    measured = simulate(Load(streams=400, duration_s=16, ramp_s=8), slow, config)
    enforced = simulate(Load(streams=400, duration_s=16, ramp_s=8, enforce_admission=True), slow, config)
    assert measured.underruns > 100 and enforced.refused > 0.5
    assert enforced.underruns < measured.underruns / 4
