"""The simulated client playback clock: underruns and re-buffering against hand-made timelines.

All timelines use 1000 Hz audio, so a chunk of 100 samples plays for 0.1 s and offsets read as milliseconds.
"""

import pytest

from voxwire.loadtest.playback import ChunkArrival, Underrun, inter_chunk_gaps, simulate_playback

RATE = 1000


def chunks(*arrivals: float, samples: int = 100) -> list[ChunkArrival]:
    """Contiguous chunks of `samples` each, arriving at the given times."""
    return [ChunkArrival(at=at, offset=index * samples, samples=samples) for index, at in enumerate(arrivals)]


def test_no_chunks_means_no_playback():
    playback = simulate_playback([], RATE, jitter_s=0.1)
    assert (playback.start, playback.end, playback.underruns, playback.stall_s) == (None, None, (), 0.0)


def test_chunks_arriving_early_never_underrun():
    # Needed at 1.1, 1.2, 1.3, 1.4; all arrive at once right away.
    playback = simulate_playback(chunks(1.0, 1.0, 1.01, 1.02), RATE, jitter_s=0.1)
    assert playback.underruns == ()
    assert playback.start == pytest.approx(1.1)
    assert playback.end == pytest.approx(1.5)
    assert playback.stall_s == 0.0


def test_a_chunk_arriving_exactly_when_needed_is_not_an_underrun():
    # Start 0.1; chunk 1 needed at 0.2, chunk 2 at 0.3: both arrive at that very moment.
    playback = simulate_playback(chunks(0.0, 0.2, 0.3), RATE, jitter_s=0.1)
    assert playback.underruns == ()
    assert playback.end == pytest.approx(0.4)


def test_a_late_chunk_is_an_underrun_and_shifts_the_rest_by_lateness_plus_jitter():
    # Chunk 1 is needed at 0.2 and arrives at 0.25: 50 ms late. Playback resumes at 0.25 + 0.1 = 0.35,
    # so the shift is 0.15 and chunk 2 (offset 0.2 s) is needed at 0.1 + 0.15 + 0.2 = 0.45.
    on_time = simulate_playback(chunks(0.0, 0.25, 0.44), RATE, jitter_s=0.1)
    assert on_time.underruns == (Underrun(index=1, lateness_s=pytest.approx(0.05)),)
    assert on_time.stall_s == pytest.approx(0.15)
    assert on_time.end == pytest.approx(0.1 + 0.15 + 0.3)

    late_again = simulate_playback(chunks(0.0, 0.25, 0.47), RATE, jitter_s=0.1)
    assert [u.index for u in late_again.underruns] == [1, 2]
    assert late_again.underruns[1].lateness_s == pytest.approx(0.02)
    assert late_again.stall_s == pytest.approx(0.15 + 0.12)


def test_a_burst_after_a_stall_costs_one_underrun():
    # Chunks 0-2 on time (needed at 0.1, 0.2, 0.3), then a stall: chunk 3 was needed at 0.4 and arrives
    # with chunks 4 and 5 at 1.0. Playback resumes at 1.1; chunks 4 and 5 are then needed at 1.2 and 1.3.
    playback = simulate_playback(chunks(0.0, 0.05, 0.1, 1.0, 1.0, 1.0), RATE, jitter_s=0.1)
    assert playback.underruns == (Underrun(index=3, lateness_s=pytest.approx(0.6)),)
    assert playback.stall_s == pytest.approx(0.7)
    assert playback.end == pytest.approx(1.1 + 0.3)


def test_several_underruns_accumulate_their_shifts():
    # Start 0.05. Chunk 1 is needed at 0.15 and arrives at 0.2: 50 ms late, shift 0.1. Chunk 2 is needed at
    # 0.05 + 0.1 + 0.2 = 0.35 and arrives at 0.5: 150 ms late, shift 0.3. Chunk 3 is needed at 0.65 and
    # arrives then. Chunk 4 is needed at 0.75 and arrives at 0.9: 150 ms late, shift 0.5.
    playback = simulate_playback(chunks(0.0, 0.2, 0.5, 0.65, 0.9), RATE, jitter_s=0.05)
    assert [(u.index, round(u.lateness_s, 9)) for u in playback.underruns] == [
        (1, 0.05),
        (2, 0.15),
        (4, 0.15),
    ]
    assert playback.stall_s == pytest.approx(0.5)
    assert playback.end == pytest.approx(0.05 + 0.5 + 0.5)


def test_with_no_jitter_buffer_playback_starts_on_arrival_and_resumes_on_arrival():
    # Start 0.0; chunk 1 needed at 0.1 arrives 0.13 and plays at once (shift 0.03); chunk 2 is then
    # needed at 0.23 and arrives exactly then.
    playback = simulate_playback(chunks(0.0, 0.13, 0.23), RATE, jitter_s=0.0)
    assert playback.start == 0.0
    assert playback.underruns == (Underrun(index=1, lateness_s=pytest.approx(0.03)),)
    assert playback.stall_s == pytest.approx(0.03)
    assert playback.end == pytest.approx(0.33)


def test_offsets_not_arrival_order_set_the_deadlines():
    # Chunks of different sizes: the deadline of each is its offset, whatever the sizes before it.
    arrivals = [ChunkArrival(0.0, 0, 500), ChunkArrival(0.55, 500, 50), ChunkArrival(0.58, 550, 400)]
    playback = simulate_playback(arrivals, RATE, jitter_s=0.1)
    assert playback.underruns == ()  # needed at 0.6 and 0.65
    assert playback.end == pytest.approx(0.1 + 0.95)


@pytest.mark.parametrize(("rate", "jitter"), [(0, 0.1), (-8000, 0.1), (RATE, -0.01)])
def test_bad_parameters_are_refused(rate, jitter):
    with pytest.raises(ValueError):
        simulate_playback(chunks(0.0), rate, jitter_s=jitter)


def test_inter_chunk_gaps_are_the_differences_between_arrivals():
    assert inter_chunk_gaps([1.0, 1.25, 1.25, 2.0]) == pytest.approx([0.25, 0.0, 0.75])
    assert inter_chunk_gaps([3.0]) == []
    assert inter_chunk_gaps([]) == []
