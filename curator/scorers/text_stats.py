"""`text_stats_v1`: length and basic text statistics, and the byte-level text units `repetition_v1` shares.

Definitions, per document (a null text counts as the empty string):

- ``chars``: Unicode code points, Python's ``len(text)``.
- ``words``: whitespace-separated words, exactly the pieces of Python's ``text.split()``: maximal runs of
  characters that are not whitespace. Whitespace is ``str.isspace()``, 29 code points: ``\\t \\n \\v \\f \\r``,
  U+001C..U+001F, space, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000
  (Arrow's ``utf8_split_whitespace`` uses the same set). Punctuation stays part of its word ("end." is one
  word of 4 characters). Why not curator's ``word_v1`` tokens (lowercased letter/digit runs): these
  statistics describe the text as written, the Gopher-style quality thresholds on word counts and mean
  word length are stated for whitespace words, and ``repetition_v1`` counts the same words.
- ``lines``: ``text.count("\\n") + (1 if text and not text.endswith("\\n") else 0)``: newline-terminated
  lines plus a last unterminated one (``wc -l`` counts only the former). Only "\\n" ends a line: "\\r\\n"
  is one line end, a lone "\\r" is none. The empty text has 0 lines, "\\n" has 1 (an empty line).
- ``mean_word_length``: characters in words / words, i.e. the non-whitespace characters over the word
  count. Null when there are no words (empty or whitespace-only text): an average of nothing is not 0,
  and a selection threshold should not mistake it for very short words.
- ``non_alpha_fraction``: the share of non-whitespace characters that are not alphabetic:
  ``(nonspace - alpha) / nonspace`` with ``nonspace = sum(not c.isspace() for c in text)`` and
  ``alpha = sum(c.isalpha() for c in text)`` (Unicode general category L: Lu, Ll, Lt, Lm, Lo, as the
  running Python's ``unicodedata`` has it; Python 3.11 is Unicode 14.0). Digits, punctuation, symbols and
  marks count as non-alphabetic. Null when there is no non-whitespace character.

The byte-level helpers (``TextBuffer``, ``whitespace_words``, ``segment_sums``) live in ``textbuf``, shared
with ``repetition_v1``.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from .base import Scorer
from .registry import register
from .textbuf import ALPHA, TextBuffer, segment_sums, whitespace_words

__all__ = ["TextStats"]


@register
class TextStats(Scorer):
    """Characters, whitespace words, lines, mean word length and non-alphabetic share (module docstring)."""

    name = "text_stats_v1"
    batch_size = 8192  # vectorised over the batch: large batches amortise the per-call cost
    description = "characters, words, lines, mean word length, non-alphabetic fraction of each text"
    inputs = ("text",)
    columns = (
        pa.field("chars", pa.int64()),
        pa.field("words", pa.int64()),
        pa.field("lines", pa.int64()),
        pa.field("mean_word_length", pa.float64()),
        pa.field("non_alpha_fraction", pa.float64()),
    )

    def score(self, batch: pa.Table) -> pa.Table:
        buf = TextBuffer(batch.column("text"))
        data, offsets = buf.data, buf.offsets
        chars = buf.doc_chars()
        words = np.diff(whitespace_words(buf).doc_words)
        space = buf.space
        if buf.non_ascii:  # count a multi-byte space once, at its lead byte
            space = space & ((data & 0xC0) != 0x80)
        nonspace = chars - segment_sums(space, offsets)
        # ASCII letters: (d | 0x20) folds upper to lower case, and the wrapping subtraction maps a..z to 0..25.
        alpha = ((data | np.uint8(0x20)) - np.uint8(97)) <= 25
        pos, _ = buf.multibyte_with(ALPHA)
        alpha[pos] = True
        alpha_count = segment_sums(alpha, offsets)
        lines = segment_sums(data == 10, offsets)
        nonempty = offsets[1:] > offsets[:-1]
        lines[nonempty] += buf.padded[offsets[1:][nonempty] - 1] != 10
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = nonspace / words
            non_alpha = (nonspace - alpha_count) / nonspace
        return pa.table({
            "chars": pa.array(chars, pa.int64()),
            "words": pa.array(words, pa.int64()),
            "lines": pa.array(lines, pa.int64()),
            "mean_word_length": pa.array(mean, pa.float64(), mask=words == 0),
            "non_alpha_fraction": pa.array(non_alpha, pa.float64(), mask=nonspace == 0),
        })
