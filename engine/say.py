"""``voxwire say``: speak a text into a WAV file the way the server streams it: sentences, then windows."""

from __future__ import annotations

import time
import wave
from pathlib import Path

import torch

from voxwire.engine.latent import SynthesisParams
from voxwire.engine.loader import load_voice
from voxwire.engine.voice import Voice
from voxwire.engine.windows import plan_windows


def say(
    text: str,
    out: Path,
    voice: str | Voice = "joe",
    stream: bool = False,
    params: SynthesisParams | None = None,
    seed: int | None = None,
    device: str = "auto",
) -> float:
    """Write ``text`` spoken by ``voice`` to ``out`` (16-bit mono WAV); return the audio's length in seconds.

    With ``stream``, print one line per window as it is decoded: window index, audio ms, compute ms (for a
    sentence's first window, its sentence stage included) and ms elapsed since the voice was loaded (the
    first line's elapsed is the time to first audio).
    """
    if isinstance(voice, str):
        voice = load_voice(voice, device)
    started = time.perf_counter()
    generator = None
    if seed is not None:
        generator = torch.Generator(voice.device).manual_seed(seed)
    params = params or voice.default_params
    samples = 0
    index = 0
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(voice.info.sample_rate)
        for sentence in voice.phonemize(text).sentences:
            # One sentence at a time: the first audio waits only for the first sentence.
            tick = time.perf_counter()
            (latent,) = voice.encode([sentence], [params], generator)
            for window in plan_windows(latent.frames):
                (pcm,) = voice.decode_windows([(latent, window)])
                now = time.perf_counter()
                wav.writeframes(pcm.tobytes())
                samples += len(pcm)
                if stream:
                    audio_ms = 1000 * len(pcm) / voice.info.sample_rate
                    print(
                        f"window {index:4d}  audio {audio_ms:7.1f} ms  "
                        f"compute {1000 * (now - tick):7.1f} ms  elapsed {1000 * (now - started):8.1f} ms"
                    )
                index += 1
                tick = now
    return samples / voice.info.sample_rate
