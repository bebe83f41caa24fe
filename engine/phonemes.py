"""Text to phoneme ids per sentence, exactly as piper-tts makes them.

This is ``PiperVoice.phonemize`` followed by ``phonemes_to_ids``, for espeak voices.

espeak-ng is one process-global C library behind piper's ``espeakbridge`` (one voice setting, one
state), so every call into it holds ``ESPEAK_LOCK``. (piper-tts's own ``PiperVoice`` guards it with a lock of
its own: do not phonemize through both from different threads.) ``[[ raw phonemes ]]`` blocks in the text
pass through as piper-tts passes them.
"""

from __future__ import annotations

import re
import threading

from piper.config import PhonemeType, PiperConfig
from piper.phoneme_ids import phonemes_to_ids
from piper.phonemize_espeak import EspeakPhonemizer

ESPEAK_LOCK = threading.Lock()
_RAW_PHONEMES = re.compile(r"(\[\[.*?\]\])")


class EspeakPhonemes:
    """The phonemizer of one Piper voice config (espeak-ng voice, phoneme id map, vowel clusters)."""

    def __init__(self, config: PiperConfig) -> None:
        if config.phoneme_type != PhonemeType.ESPEAK:
            raise ValueError(
                f"only espeak phonemes are supported, this voice uses {config.phoneme_type.value}"
            )
        self.config = config
        with ESPEAK_LOCK:
            self._espeak_ng = EspeakPhonemizer()

    def ids(self, text: str) -> list[list[int]]:
        """Phoneme ids per sentence; sentences without phonemes are left out."""
        return [phonemes_to_ids(p, self.config.phoneme_id_map) for p in self.phonemes(text) if p]

    def phonemes(self, text: str) -> list[list[str]]:
        """Phonemes per sentence, split where espeak-ng ends a sentence (piper-tts's ``phonemize``)."""
        sentences: list[list[str]] = []
        parts = _RAW_PHONEMES.split(text)
        after_raw = False
        for i, part in enumerate(parts):
            if part.startswith("[["):
                if not sentences:
                    sentences.append([])
                if i > 0 and parts[i - 1].endswith(" "):
                    sentences[-1].append(" ")
                sentences[-1].extend(part[2:-2].strip())
                if i < len(parts) - 1 and parts[i + 1].startswith(" "):
                    sentences[-1].append(" ")
                after_raw = True
                continue
            spoken = self._espeak(part)
            if after_raw and spoken:
                sentences[-1].extend(spoken[0])
                spoken = spoken[1:]
            sentences.extend(spoken)
            after_raw = False
        if sentences and not sentences[-1]:
            sentences.pop()
        return sentences

    def _espeak(self, text: str) -> list[list[str]]:
        with ESPEAK_LOCK:
            return self._espeak_ng.phonemize(
                self.config.espeak_voice, text, vowel_clusters=self.config.vowel_clusters
            )
