"""The simulated client playback clock: underruns and re-buffering against hand-made timelines.

All timelines use 1000 Hz audio, so a chunk of 100 samples plays for 0.1 s and offsets read as milliseconds.
"""

import pytest

from voxwire.loadtest.playback import (
    ChunkArrival,
    TextSent,
    Underrun,
    UnderrunCause,
    WordStart,
    inter_chunk_gaps,
    phrase_end,
    simulate_playback,
    underrun_causes,
    word_ends,
)

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


# Why an underrun happened: the text's pace or the server. "one, two, three." has its words at 0, 0.2 and
# 0.4 s of audio; a server can speak "one" once it has "one, " (5 characters), "two" with 10 and "three"
# with all 16. The client sent "one, " at 0.0, the rest at the times each test gives.
TEXT = "one, two, three."
WORDS = [WordStart("one", 0), WordStart("two", 200), WordStart("three", 400)]
STALL_AT_TWO = chunks(0.0, 0.0, 1.0, 1.0, 1.0, 1.0)
"""Start 0.1; chunk 2 (offset 200, the word "two") is needed at 0.3 and arrives at 1.0."""


def causes(
    arrivals: list[ChunkArrival], sent: list[TextSent], words: list[WordStart] = WORDS, text: str = TEXT
) -> list[UnderrunCause]:
    playback = simulate_playback(arrivals, RATE, jitter_s=0.1)
    return underrun_causes(playback, arrivals, RATE, text=text, words=words, sent=sent)


def test_an_underrun_on_a_word_the_client_sent_late_is_the_texts():
    # "two, " went at 0.9, after it was needed (0.3): no server could have spoken it in time.
    assert causes(STALL_AT_TWO, [TextSent(0.0, 5), TextSent(0.9, 16)]) == [UnderrunCause.TEXT]


def test_an_underrun_on_a_word_sent_in_time_is_the_servers():
    # "two, " went at 0.15, more than the margin (0.1 s) before it was needed at 0.3.
    assert causes(STALL_AT_TWO, [TextSent(0.0, 5), TextSent(0.15, 16)]) == [UnderrunCause.SERVER]


def test_a_word_sent_within_the_margin_before_it_was_needed_is_still_the_texts():
    assert causes(STALL_AT_TWO, [TextSent(0.0, 5), TextSent(0.25, 16)]) == [UnderrunCause.TEXT]


def test_a_word_needs_its_phrase_through_the_clause_mark():
    # "two" itself went at 0.05, but the ", " that ends its phrase only at 0.9.
    assert causes(STALL_AT_TWO, [TextSent(0.0, 5), TextSent(0.05, 8), TextSent(0.9, 16)]) == [
        UnderrunCause.TEXT
    ]
    assert causes(STALL_AT_TWO, [TextSent(0.0, 5), TextSent(0.05, 10), TextSent(0.9, 16)]) == [
        UnderrunCause.SERVER
    ]


def test_text_without_marks_is_one_phrase_that_waits_for_the_whole_reply():
    words = [WordStart("one", 0), WordStart("two", 200), WordStart("three", 400)]
    sent = [TextSent(0.0, 8), TextSent(0.9, 13)]  # "one two " early, "three" late
    assert causes(STALL_AT_TWO, sent, words, text="one two three") == [UnderrunCause.TEXT]


def test_a_stall_inside_a_word_waits_for_the_next_word():
    # "one" runs to 0.35 s; the stall at offset 200 is inside it, so the player waits for "two" (at 350).
    words = [WordStart("one", 0), WordStart("two", 350), WordStart("three", 500)]
    late_two = [TextSent(0.0, 5), TextSent(0.9, 16)]
    assert causes(STALL_AT_TWO, late_two, words) == [UnderrunCause.TEXT]
    early_two = [TextSent(0.0, 5), TextSent(0.01, 10), TextSent(0.9, 16)]
    assert causes(STALL_AT_TWO, early_two, words) == [UnderrunCause.SERVER]


def test_a_stall_after_the_last_word_starts_is_on_the_last_word():
    # Chunk 5 (offset 500, after "three" began at 400) arrives late: the text was all sent at 0.0.
    arrivals = chunks(0.0, 0.0, 0.0, 0.0, 0.0, 2.0)
    assert causes(arrivals, [TextSent(0.0, 16)]) == [UnderrunCause.SERVER]


def test_a_word_never_sent_is_the_texts():
    assert causes(STALL_AT_TWO, [TextSent(0.0, 5)]) == [UnderrunCause.TEXT]


def test_each_underrun_has_its_own_cause():
    # Start 0.1: chunk 2 ("two") needed at 0.3, arrives 0.5 (shift 0.3); chunk 4 ("three") needed at
    # 0.1 + 0.3 + 0.4 = 0.8, arrives 1.5. "two, " was sent in time, "three." only at 1.2.
    arrivals = chunks(0.0, 0.0, 0.5, 0.5, 1.5, 1.5)
    sent = [TextSent(0.0, 10), TextSent(1.2, 16)]
    assert causes(arrivals, sent) == [UnderrunCause.SERVER, UnderrunCause.TEXT]


def test_without_word_timings_the_cause_is_unknown():
    assert causes(STALL_AT_TWO, [TextSent(0.0, 16)], words=[]) == [UnderrunCause.UNKNOWN]
    stranger = [WordStart("one", 0), WordStart("four", 200)]
    assert causes(STALL_AT_TWO, [TextSent(0.0, 16)], words=stranger) == [UnderrunCause.UNKNOWN]


def test_words_are_found_in_the_text_in_order():
    words = [WordStart(word, 0) for word in ("the", "cat", "the", "end")]
    assert word_ends("the cat, the end.", words) == [3, 7, 12, 16]
    assert word_ends("the cat", [WordStart("cat", 0), WordStart("the", 0)]) is None


@pytest.mark.parametrize(
    ("text", "word_end", "needed"),
    [
        ("one, two", 3, 5),  # a clause mark and its whitespace
        ("Hi there. Bye", 2, 11),  # a sentence end needs the character after its whitespace
        ('He said "stop." Then', 13, 17),  # closing quotes belong to the sentence end
        ("Pi is 3.14 today", 2, 16),  # a dot inside a number is no end: the whole reply
        ("All done.", 8, 9),  # the last sentence: the whole reply
    ],
)
def test_the_text_a_word_needs_runs_to_the_end_of_its_phrase(text: str, word_end: int, needed: int):
    assert phrase_end(text, word_end) == needed
