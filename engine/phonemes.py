"""Text to phoneme ids per sentence, exactly as piper-tts makes them.

This is ``PiperVoice.phonemize`` followed by ``phonemes_to_ids``, for espeak voices, with three differences
for text that comes from clients: control characters are spoken as spaces (espeak-ng stops at a NUL);
``[[ raw phonemes ]]`` blocks pass through only when the voice is built with ``allow_raw`` (a server
setting; otherwise they are ordinary text); and symbols the voice has no id for are reported in the result
(piper-tts logs each one, which a client could use to flood the log) rather than logged.

espeak-ng is one process-global C library behind piper's ``espeakbridge`` (one voice setting, one state),
so every call into it holds ``ESPEAK_LOCK``. (piper-tts's own ``PiperVoice`` guards it with a lock of its
own: do not phonemize through both from different threads.)
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from piper.config import PhonemeType, PiperConfig
from piper.const import BOS, EOS, PAD
from piper.phonemize_espeak import EspeakPhonemizer

from voxwire.engine.splitting import IdLayout

ESPEAK_LOCK = threading.Lock()
_RAW_PHONEMES = re.compile(r"(\[\[.*?\]\])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""C0 and C1 control characters but tab and newline."""
_CLAUSE_MARKS = ",;:.!?"


@dataclass(frozen=True)
class Phonemized:
    """A text as a voice's ids, one list per sentence, and the symbols it had no id for (left out)."""

    sentences: list[list[int]]
    unknown: frozenset[str] = field(default_factory=frozenset)


def speakable(text: str) -> str:
    """``text`` with control characters (but tab and newline) turned into spaces."""
    return _CONTROL.sub(" ", text)


class EspeakPhonemes:
    """The phonemizer of one Piper voice config (espeak-ng voice, phoneme id map, vowel clusters)."""

    def __init__(self, config: PiperConfig, allow_raw: bool = False) -> None:
        if config.phoneme_type != PhonemeType.ESPEAK:
            raise ValueError(
                f"only espeak phonemes are supported, this voice uses {config.phoneme_type.value}"
            )
        self.config = config
        self.allow_raw = allow_raw
        id_map = config.phoneme_id_map
        self.layout = IdLayout(
            prefix=(*id_map[BOS], *id_map[PAD]),
            suffix=tuple(id_map[EOS]),
            pad=id_map[PAD][0],
            clause_ends=frozenset(id_map[mark][0] for mark in _CLAUSE_MARKS if mark in id_map),
            word_ends=frozenset(id_map[" "]) if " " in id_map else frozenset(),
        )
        with ESPEAK_LOCK:
            self._espeak_ng = EspeakPhonemizer()

    def __call__(self, text: str) -> Phonemized:
        id_map = self.config.phoneme_id_map
        sentences: list[list[int]] = []
        unknown: set[str] = set()
        for phonemes in self.phonemes(text):
            if not phonemes:
                continue
            ids = [*id_map[BOS], *id_map[PAD]]
            for phoneme in phonemes:
                if phoneme in id_map:
                    ids += id_map[phoneme]
                    ids += id_map[PAD]
                else:
                    unknown.add(phoneme)
            ids += id_map[EOS]
            sentences.append(ids)
        return Phonemized(sentences, frozenset(unknown))

    def ids(self, text: str) -> list[list[int]]:
        """Phoneme ids per sentence; sentences without phonemes are left out."""
        return self(text).sentences

    def phonemes(self, text: str) -> list[list[str]]:
        """Phonemes per sentence, split where espeak-ng ends a sentence (piper-tts's ``phonemize``)."""
        text = speakable(text)
        sentences: list[list[str]] = []
        parts = _RAW_PHONEMES.split(text) if self.allow_raw else [text]
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
            sentences: list[list[str]] = self._espeak_ng.phonemize(
                self.config.espeak_voice, text, vowel_clusters=self.config.vowel_clusters
            )
        return sentences
