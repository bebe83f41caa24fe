"""Cut a reply into tokens the way an LLM streams it out.

LLM tokenizers emit word pieces: a leading space glued to the start of a word (" hel", "lo"), punctuation
as its own token (",", "."), digits in short runs. This cutter imitates that shape without a real tokenizer:
the text is split into units (optional whitespace plus a word, or one other character), and each unit is cut
into pieces of a random length from 1 to `max_chars` (6 by default). Joining the tokens gives back the text
exactly.
"""

import random
import re

MAX_TOKEN_CHARS = 6

_UNIT = re.compile(r"\s*\w+|\s*[^\w\s]|\s+")


def split_tokens(text: str, rng: random.Random, max_chars: int = MAX_TOKEN_CHARS) -> list[str]:
    """Tokens of 1 to `max_chars` characters whose concatenation is `text`; the sizes are drawn from `rng`."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    tokens: list[str] = []
    for unit in _UNIT.findall(text):
        while unit:
            size = rng.randint(1, max_chars)
            tokens.append(unit[:size])
            unit = unit[size:]
    return tokens
