"""WordTimeline: words moved onto a stream's output rate, handed out once with the chunk they start in, and
the heard text by a playhead."""

from __future__ import annotations

import pytest

from voxwire.engine.latent import WordTiming
from voxwire.server.timeline import TimedWord, WordTimeline


def test_words_move_to_the_output_rate_after_the_audio_before_their_sentence() -> None:
    timeline = WordTimeline(voice_rate=22050, output_rate=16000)
    timeline.add(before=22050, words=[WordTiming(0, 5, 0, 11025), WordTiming(6, 9, 11025, 22050)])
    assert timeline.due(None) == [TimedWord(0, 5, 16000, 24000), TimedWord(6, 9, 24000, 32000)]


def test_each_word_is_due_once_with_the_chunk_its_audio_starts_in() -> None:
    timeline = WordTimeline(1000, 1000)
    timeline.add(0, [WordTiming(0, 1, 100, 300), WordTiming(2, 3, 400, 900)])
    assert timeline.due(100) == []  # a chunk [0, 100): the first word starts at 100
    assert [w.start_char for w in timeline.due(400)] == [0]
    assert [w.start_char for w in timeline.due(1000)] == [2]
    assert timeline.due(None) == []


def test_heard_is_up_to_the_last_word_ended_by_the_playhead() -> None:
    timeline = WordTimeline(1000, 1000)
    timeline.add(0, [WordTiming(0, 4, 0, 300), WordTiming(5, 9, 300, 700)])
    timeline.add(1000, [WordTiming(11, 15, 100, 400)])
    assert timeline.heard_chars(299) == 0
    assert timeline.heard_chars(300) == 4
    assert timeline.heard_chars(1399) == 9
    assert timeline.heard_chars(1400) == 15


def test_a_word_starting_before_the_last_one_ends_is_refused() -> None:
    timeline = WordTimeline(1000, 1000)
    timeline.add(0, [WordTiming(0, 4, 0, 300)])
    with pytest.raises(ValueError, match="starts before"):
        timeline.add(0, [WordTiming(5, 9, 200, 400)])
