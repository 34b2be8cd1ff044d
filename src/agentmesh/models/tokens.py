"""Token estimates for when a provider reports no usage (and for routing and the simulator).

Large-vocabulary tokenizers give each digit and punctuation mark a token, and
most English words one or two. The estimate counts those with string methods
only (no per-word Python loop, a few microseconds for a paragraph)::

    tokens = symbols + 1.27 * words - 0.029 * letters   (at least one per word)

The two coefficients were fitted against the Gemma 3 tokenizer on 250 MMLU and
GSM8K prompts; on the other 250 the median ratio is 0.997 and the mean absolute
error 8%. An integration test checks it on unrelated prose. Where a provider
reports usage, the reported counts are used instead.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

from langchain_core.messages import BaseMessage

from agentmesh.models.types import message_text

__all__ = ["MESSAGE_OVERHEAD_TOKENS", "estimate_message_tokens", "estimate_tokens"]

#: Tokens a chat format adds per message (role markers, separators).
MESSAGE_OVERHEAD_TOKENS = 4

_SYMBOLS = str.maketrans("", "", string.punctuation + string.digits)
_PER_WORD = 1.27
_PER_LETTER = -0.029


def estimate_tokens(text: str) -> int:
    """Estimated number of tokens in ``text``."""
    if not text:
        return 0
    words_only = text.translate(_SYMBOLS)
    symbols = len(text) - len(words_only)
    words = len(words_only.split())
    letters = len(words_only) - words_only.count(" ") - words_only.count("\n")
    return symbols + max(words, round(_PER_WORD * words + _PER_LETTER * letters))


def estimate_message_tokens(messages: Sequence[BaseMessage]) -> int:
    """Estimated prompt tokens of a chat conversation, formatting overhead included."""
    return sum(estimate_tokens(message_text(m)) + MESSAGE_OVERHEAD_TOKENS for m in messages) + 2
