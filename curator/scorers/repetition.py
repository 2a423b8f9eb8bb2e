"""`repetition_v1`: the Gopher repetition fractions (Rae et al. 2021, "Scaling Language Models", Appendix A,
Table A1), stored raw: no thresholds here, selection decides later.

Columns (float64, one row per document) and the ``variant`` (string) that computed them:

    dup_line_frac        dup_line_char_frac     dup_para_frac           dup_para_char_frac
    top_{2,3,4}gram_char_frac                   dup_{5..10}gram_char_frac

Words are whitespace words in both variants (``tokenizer="whitespace"``, the only choice so far): the
pieces of Python's ``text.split()`` (see ``text_stats``). Every value of a document whose text is empty
(or null) is null: there is nothing to take a fraction of (datatrove drops such a document as "empty"
before computing anything). Otherwise a value is null only where its denominator is 0 (in the gopher
variant: a whitespace-only text has no lines, paragraphs or words).

Variant ``datatrove`` (the default)
-----------------------------------
Exactly what ``datatrove.pipeline.filters.GopherRepetitionFilter.filter`` (datatrove 0.10.1) computes
before it compares each value with its threshold, with the filter built as
``GopherRepetitionFilter(language=WhitespaceTokenizer())`` where ``WhitespaceTokenizer`` is a
``datatrove.utils.word_tokenizers.WordTokenizer`` whose ``word_tokenize(text)`` returns ``text.split()``
(the filter calls ``split_into_words(text, self.language)``, and ``load_word_tokenizer`` returns a
``WordTokenizer`` instance it is given as it is). datatrove's default tokenizer for English is spaCy's
(``spacy.blank("en")``), which splits punctuation off words; it is not reproduced (spaCy is not a
dependency). With ``T = len(text)`` (code points):

- paragraphs = ``re.split(r"\\n{2,}", text.strip())``; lines = ``re.split(r"\\n+", text)`` (the text is
  not stripped for lines, so a leading or trailing newline adds an empty line);
- among them, a *duplicate* is an element equal to an earlier element of the same list (the first copy
  does not count); ``dup_para_frac`` = duplicates / len(paragraphs), ``dup_para_char_frac`` = characters
  of the duplicates / T; the same for lines;
- ``top_{n}gram_char_frac`` = ``len(" ".join(g)) * count(g) / T`` for the most frequent word n-gram ``g``
  (``Counter.most_common(1)``: ties go to the n-gram that occurs first); 0 when there are fewer than n
  words; overlapping occurrences all count, so the value can exceed 1 ("a a a a": 3 * 3 / 7);
- ``dup_{n}gram_char_frac`` = ``find_all_duplicate(words, n) / T``: a left-to-right scan over positions
  i keyed by ``"".join(words[i:i+n])`` (no separator: ["ab", "c"] equals ["a", "bc"]): a key seen before
  adds its length (the n words' characters, no spaces) and jumps to i + n, without recording the keys it
  jumps over; a new key is recorded and the scan moves to i + 1.

Variant ``gopher``
------------------
The paper's definitions as we read them (its code is not public; Table A1 names the fractions, the text
says: duplicate lines / paragraphs and the characters in them, "the fraction of characters contained
within the most frequently-occurring n-gram" for n = 2..4, and "the fraction of characters contained
within all duplicate n-grams, taking care not to count characters that occur in overlapping n-grams more
than once" for n = 5..10). Differences from ``datatrove``:

1. Lines are ``text.split("\\n")`` without blank lines (empty or whitespace-only): blank lines are layout,
   not content (datatrove splits on runs of "\\n", keeps whitespace-only lines, and adds an empty line for
   a leading or trailing newline, which duplicates as soon as there are both).
2. Paragraphs are runs of non-blank lines separated by blank lines; the text of a paragraph is its lines
   joined by "\\n" (datatrove splits on two or more "\\n", so "a\\n \\nb" is one paragraph there).
3. A duplicate line (paragraph, n-gram) is every occurrence of a line that occurs more than once, the
   first copy included: a text made of one line twice is all duplicate (1.0), not half (0.5).
4. Each character fraction is over the characters of the units it counts, not over ``len(text)``: lines
   over the characters of all (non-blank) lines, paragraphs over those of all paragraphs, n-grams over the
   characters of all words. Spaces between words are not n-gram characters (datatrove counts the
   joining spaces for top n-grams but not for duplicate n-grams).
5. N-grams are word tuples (datatrove keys duplicate n-grams by their words concatenated without a
   separator).
6. ``top_{n}gram_char_frac``: the characters covered by the occurrences of the most frequent n-gram,
   overlaps counted once (so at most 1); among equally frequent n-grams the one covering most characters
   (no dependence on order); 0 when no n-gram occurs twice (an n-gram seen once is not a repetition, and
   any of them would be "the most frequent").
7. ``dup_{n}gram_char_frac``: the characters of the words covered by at least one occurrence of an
   n-gram that occurs more than once, each word counted once (datatrove's greedy scan counts only later
   copies and skips the n-grams overlapping a match, so a text repeated twice scores about 0.5 there).

Why ``datatrove`` is the default: it is the implementation behind the published pipelines that apply
Table A1's thresholds (FineWeb and its descendants), so values compare with theirs and the thresholds
mean what they meant there; and it is the variant we can check against a reference implementation value
by value (the tests do). ``gopher`` is our reading of a paper without code.

How it is computed (no Python loop over documents)
------------------------------------------------
A batch is cut into slices of about 2 MB of text, so that the per-word arrays stay in the CPU caches,
and each slice is scored by its variant (``repetition_datatrove``, ``repetition_gopher``) with numpy over
all its documents at once:

- ``textbuf``: the UTF-8 bytes of the batch and its whitespace words, as numpy arrays;
- ``ngram_keys``: 64-bit hash keys of the n-grams (word tuples, and for datatrove's duplicate n-grams the
  words concatenated), whose only inexactness is a collision of two different n-grams of one slice
  (about M**2 / 2**65 for M n-grams: 4e-9 for a 2 MB slice);
- ``grouping``: equal keys grouped by one sort; lines and paragraphs grouped exactly (``text_units``);
- ``greedy_scan``: datatrove's left-to-right duplicate n-gram scan, followed for every document and every n
  at once (a chain of hits, then rounds of corrections where the first copy of a key hides inside a jump).

Only positions where an n-gram can repeat are grouped: a word tuple repeats only where its (n-1)-gram
prefix and suffix repeat; for concatenations see ``repetition_datatrove.concat_groups`` (a filter on the
first 8 bytes). In a document where most word pairs repeat (text looping on itself) every position is
grouped, which costs less than the filter there.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .base import Scorer
from .ngram_keys import DUP_N, TOP_N
from .registry import register
from .repetition_datatrove import datatrove_fractions
from .repetition_gopher import gopher_fractions
from .textbuf import TextBuffer

__all__ = ["Repetition", "RepetitionConfig", "VARIANTS", "TOKENIZERS", "TOP_N", "DUP_N", "COLUMNS"]

VARIANTS = ("datatrove", "gopher")
TOKENIZERS = ("whitespace",)
LINE_COLUMNS = ("dup_line_frac", "dup_line_char_frac", "dup_para_frac", "dup_para_char_frac")
COLUMNS = (LINE_COLUMNS + tuple(f"top_{n}gram_char_frac" for n in TOP_N)
           + tuple(f"dup_{n}gram_char_frac" for n in DUP_N))
# Text per slice: large enough that numpy's per-call overhead does not show, small enough that the
# per-word arrays (8 bytes each, ~5 bytes of text per word) stay in the CPU caches.
SLICE_BYTES = 2_000_000


@dataclass(frozen=True)
class RepetitionConfig:
    """variant: "datatrove" (default; datatrove 0.10.1's GopherRepetitionFilter) or "gopher" (the paper as
    read in the module docstring). tokenizer: how text becomes words; "whitespace" (str.split())."""

    variant: str = "datatrove"
    tokenizer: str = "whitespace"

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, got {self.tokenizer!r}")


@register
class Repetition(Scorer):
    """Gopher repetition fractions per document, raw (see the module docstring for both variants)."""

    name = "repetition_v1"
    batch_size = 8192  # vectorised over the batch: large batches amortise the per-call cost
    description = "Gopher repetition fractions: duplicate lines/paragraphs, top 2-4-grams, duplicate 5-10-grams"
    inputs = ("text",)
    columns = (pa.field("variant", pa.string()), *(pa.field(c, pa.float64()) for c in COLUMNS))
    Config = RepetitionConfig

    def score(self, batch: pa.Table) -> pa.Table:
        buf = TextBuffer(batch.column("text"))
        fractions = datatrove_fractions if self.config.variant == "datatrove" else gopher_fractions
        values = {c: np.full(buf.n, np.nan) for c in COLUMNS}
        for lo, hi in buf.slices(SLICE_BYTES):
            part = buf if (lo, hi) == (0, buf.n) else buf.slice(lo, hi)
            for column, v in fractions(part).items():
                values[column][lo:hi] = v
        # NaN marks an undefined fraction (0 / 0); no defined fraction is NaN.
        out = {"variant": pa.array([self.config.variant] * buf.n, pa.string())}
        out.update({c: pa.array(v, pa.float64(), mask=np.isnan(v)) for c, v in values.items()})
        return pa.table(out)
