"""``voxwire say --server URL``: speak a text through a running server into a WAV file, as a client would."""

from __future__ import annotations

import wave
from pathlib import Path

from voxwire.protocol import Done, DoneReason, Error, Pace, Start, Text

from .recorder import RecordingClient


async def say_through(
    url: str,
    text: str,
    out: Path,
    *,
    pace: Pace = Pace.ASAP,
    voice: str | None = None,
    sample_rate: int | None = None,
) -> float:
    """Write the server's speech of ``text`` to ``out`` (16-bit mono WAV); return its length in seconds.
    Raises RuntimeError with the server's message when the stream does not complete."""
    client = await RecordingClient.open(url)
    try:
        rate = sample_rate or next(
            (v.sample_rate for v in client.hello.voices if voice in (None, v.id)),
            client.hello.voices[0].sample_rate,
        )
        await client.send(Start(stream="say", voice=voice, sample_rate=rate, pace=pace))
        await client.send(Text(stream="say", text=text, final=True))
        # A refused start gets an error and no done; a failed stream gets both: stop at the first.
        end = await client.until(lambda f: isinstance(f, Done | Error) and f.stream == "say")
    finally:
        await client.close()
    if isinstance(end, Error):
        raise RuntimeError(f"the server did not speak the text ({end.code}: {end.message})")
    if not isinstance(end, Done) or end.reason != DoneReason.COMPLETE:
        raise RuntimeError(f"the server did not speak the text (the stream ended: {end})")
    result = client.results["say"]
    pcm = result.pcm()
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.astype("<i2").tobytes())
    return len(pcm) / rate
