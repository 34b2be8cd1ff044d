"""Token estimates for when a provider reports no usage (and for routing and the simulator).

Large-vocabulary tokenizers give each digit and punctuation mark a token, and
most English words one or two. The estimate counts those with string methods
only (no per-word Python loop, a few microseconds for a paragraph)::

    tokens = symbols + 1.27 * words - 0.029 * letters   (at least one per word)

The two coefficients were fitted against the Gemma 3 tokenizer on 250 MMLU and
GSM8K prompts; on the other 250 the median ratio is 0.997 and the mean absolute
error 8%. An integration test checks it on unrelated prose. Where a provider
reports usage, the reported counts are used instead.

Text outside ASCII is counted per character by its UTF-8 length, so the
estimate never undercounts non-Latin scripts (budgets reserve on it): a 2-byte
character (Cyrillic, Greek, Arabic, accents) counts 0.5 tokens, a 3-byte one
(CJK, kana, Hangul, most symbols) 1.5, a 4-byte one (emoji, rare CJK) 3. Real
tokenizers give CJK 0.6-1.3 tokens a character and emoji 1-3 a code point, so
the estimate is high there (a reservation larger than the bill, released when
the call is settled), never low (an overspent budget).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence

from langchain_core.messages import BaseMessage

from agentmesh.models.types import message_text

__all__ = ["MESSAGE_OVERHEAD_TOKENS", "estimate_message_tokens", "estimate_tokens"]

#: Tokens a chat format adds per message (role markers, separators).
MESSAGE_OVERHEAD_TOKENS = 4

_SYMBOLS = (string.punctuation + string.digits).encode()
# bytes.split() knows only ASCII whitespace; str.split() also splits on the four
# separators \x1c-\x1f: they become \x0b (a separator to both that the letter
# count, like theirs, does not subtract), so the bytes path counts as str would.
_SEPARATORS = bytes.maketrans(b"\x1c\x1d\x1e\x1f", b"\x0b\x0b\x0b\x0b")
# Every byte to b"x", except bytes.split()'s whitespace to b" ": a word starts at
# each b" x" of b" " + the marks, so words are counted without splitting them out.
_WORD_MARKS = bytes(0x20 if chr(b) in " \t\n\r\x0b\x0c" else 0x78 for b in range(256))
_PER_WORD = 1.27
_PER_LETTER = -0.029


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_TWO_BYTES, _THREE_BYTES = 0x800, 0x10000
_PER_CHAR_2, _PER_CHAR_3, _PER_CHAR_4 = 0.5, 1.5, 3.0


def estimate_tokens(text: str) -> int:
    """Estimated number of tokens in ``text`` (never fewer than a real tokenizer's, off ASCII)."""
    if not text:
        return 0
    if text.isascii():
        return _ascii_tokens(text)
    weight = 0.0
    for run in _NON_ASCII.findall(text):
        for char in run:
            code = ord(char)
            weight += (
                _PER_CHAR_2
                if code < _TWO_BYTES
                else _PER_CHAR_3
                if code < _THREE_BYTES
                else _PER_CHAR_4
            )
    return _ascii_tokens(_NON_ASCII.sub(" ", text)) + math.ceil(weight)


def _ascii_tokens(text: str) -> int:
    """The fitted estimate for English-like text (see the module docstring).

    Counted on the ASCII bytes: ``bytes.translate`` deletes through a table in C,
    where ``str.translate`` looks each character up in a dict.
    """
    raw = text.encode("ascii")
    words_only = raw.translate(_SEPARATORS, _SYMBOLS)
    symbols = len(raw) - len(words_only)
    words = (b" " + words_only.translate(_WORD_MARKS)).count(b" x")  # len(words_only.split())
    letters = len(words_only.translate(None, b" \n"))
    return symbols + max(words, round(_PER_WORD * words + _PER_LETTER * letters))


def estimate_message_tokens(messages: Sequence[BaseMessage]) -> int:
    """Estimated prompt tokens of a chat conversation, formatting overhead included."""
    return sum(estimate_tokens(message_text(m)) + MESSAGE_OVERHEAD_TOKENS for m in messages) + 2
