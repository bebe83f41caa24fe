"""say() writes the spoken text as a WAV and, streaming, reports each window as it is decoded."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from voxwire.engine.loader import load_voice
from voxwire.engine.say import say
from voxwire.engine.voice import Voice
from voxwire.engine.windows import plan_windows


@pytest.fixture(scope="module")
def voice() -> Voice:
    return load_voice("joe", device="cpu")


def test_writes_a_wav_of_the_whole_text(voice: Voice, tmp_path: Path) -> None:
    out = tmp_path / "hello.wav"
    seconds = say("Hello there. Bye!", out, voice=voice, seed=0)
    with wave.open(str(out), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 22050)
        assert wav.getnframes() == round(seconds * 22050)
    assert 0.5 < seconds < 5


def test_stream_prints_one_line_per_window(
    voice: Voice, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "A sentence long enough to need more than one window of audio, surely."
    seconds = say(text, tmp_path / "stream.wav", voice=voice, stream=True, seed=0)
    lines = capsys.readouterr().out.splitlines()
    frames = round(seconds * 22050) // voice.hop_length
    assert len(lines) == len(plan_windows(frames)) > 1
    assert all(line.startswith(f"window {i:4d}") and "elapsed" in line for i, line in enumerate(lines))
