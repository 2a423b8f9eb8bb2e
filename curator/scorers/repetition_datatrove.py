"""The ``datatrove`` variant of ``repetition_v1`` (definitions in ``repetition``'s docstring)."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .greedy_scan import scan
from .grouping import group_keys
from .ngram_keys import DUP_N, TOP_N, Ngrams
from .text_units import later_copies, newline_runs, ratio, split_at
from .textbuf import TextBuffer

__all__ = ["datatrove_fractions"]


def datatrove_fractions(buf: TextBuffer) -> dict[str, np.ndarray]:
    """Every column of the slice ``buf``, per document (NaN where a fraction is undefined)."""
    ng = Ngrams(buf)
    text_chars = buf.doc_chars().astype(np.float64)
    out: dict[str, np.ndarray] = {}
    run_start, run_end, run_doc = newline_runs(buf)

    # paragraphs: re.split(r"\n{2,}", text.strip()). The stripped text runs from the first word's start
    # to the last word's end; newline runs inside it are whole runs (they are whitespace).
    w = ng.words
    has_words = np.diff(w.doc_words) > 0
    lo = buf.offsets[:-1].copy()
    hi = lo.copy()
    lo[has_words] = w.starts[w.doc_words[:-1][has_words]]
    hi[has_words] = w.ends[w.doc_words[1:][has_words] - 1]
    inside = (run_end - run_start >= 2) & (run_start > lo[run_doc]) & (run_end < hi[run_doc])
    p_start, p_end, p_doc = split_at(lo, hi, run_start[inside], run_end[inside], run_doc[inside])
    dups, dup_chars = later_copies(buf, p_start, p_end, p_doc)
    out["dup_para_frac"] = dups / np.bincount(p_doc, minlength=buf.n)
    out["dup_para_char_frac"] = ratio(dup_chars, text_chars)

    # lines: re.split(r"\n+", text)
    l_start, l_end, l_doc = split_at(buf.offsets[:-1], buf.offsets[1:], run_start, run_end, run_doc)
    dups, dup_chars = later_copies(buf, l_start, l_end, l_doc)
    out["dup_line_frac"] = dups / np.bincount(l_doc, minlength=buf.n)
    out["dup_line_char_frac"] = ratio(dup_chars, text_chars)

    tops, dense = _top_counts(ng)
    for n, top in zip(TOP_N, tops):
        out[f"top_{n}gram_char_frac"] = ratio(top, text_chars)
    for n, dup in scan(ng, concat_groups(ng, dense)).items():
        out[f"dup_{n}gram_char_frac"] = ratio(dup, text_chars)

    empty = text_chars == 0  # datatrove: `if not text: return False, "empty"`
    for v in out.values():
        v[empty] = np.nan
    return out


# A document where this share of its word pairs repeat (text looping on itself) has nearly every n-gram
# repeated: pruning the positions that cannot repeat would cost more than it saves there.
_DENSE = 0.8


def _top_counts(ng: Ngrams) -> tuple[list[np.ndarray], np.ndarray]:
    """datatrove's find_top_duplicate per document, for n = 2, 3, 4: len(" ".join(g)) * count(g) for the
    most frequent n-gram, the first one to occur among equals. Also returns which documents are dense
    (``_DENSE``)."""
    out = []
    n_docs = ng.buf.n
    dense = np.zeros(n_docs, bool)
    repeats = None  # positions whose (n-1)-gram occurs twice or more in its document
    for n in TOP_N:
        if repeats is None:
            pos = np.flatnonzero(ng.positions(n))
        else:
            # an n-gram can only repeat where its (n-1)-gram prefix and suffix both repeat
            mark = np.zeros(ng.n_words + 1, bool)
            mark[repeats] = True
            mark[:-1] &= mark[1:]
            pos = ng.candidates(n, mark)
        groups = group_keys(ng.tuple_key(pos, n))
        sizes = groups.sizes
        multi = sizes >= 2
        repeats = pos[groups.order[groups.in_multi]]
        if n == TOP_N[0]:
            pairs = np.bincount(ng.doc[pos], minlength=n_docs)
            dense = np.bincount(ng.doc[repeats], minlength=n_docs) >= _DENSE * pairs

        # Without a repeated n-gram every count is 1 and the first n-gram of the document wins.
        value = np.zeros(n_docs)
        first_word = ng.words.doc_words[:-1]
        long_enough = np.diff(ng.words.doc_words) >= n
        f = first_word[long_enough]
        value[long_enough] = ng.span_chars(f, n) + (n - 1)
        if multi.any():
            first = pos[groups.order[groups.starts[:-1][multi]]]
            count = sizes[multi]
            doc = ng.doc[first]
            best = np.zeros(n_docs, np.int64)
            np.maximum.at(best, doc, count)
            win = count == best[doc]
            winner = np.full(n_docs, ng.n_words)
            np.minimum.at(winner, doc[win], first[win])
            has = winner < ng.n_words
            value[has] = (ng.span_chars(winner[has], n) + (n - 1)) * best[has]
        out.append(value)
    return out, dense


def concat_groups(ng: Ngrams, dense: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(n, copies, starts) for n = 5..10: the positions of the n-grams whose concatenation occurs twice or
    more in their document, key after key (ascending inside a key), and where each key's copies start.
    Grouped are every position of the ``dense`` documents, and in the others those where an n-gram can
    repeat.

    Let the n-grams at i and j concatenate to the same string S. If their first words have the same
    length they are the same word, and the (n-1)-grams at i+1 and j+1 repeat; if their last words do,
    the (n-1)-grams at i and j repeat. Otherwise the first words differ in length, and when S has 8
    bytes or more, the 8 concatenated bytes from word i equal those from word j: i's group of 8-byte
    prefixes holds first words of different lengths. So an n-gram can repeat only where the (n-1)-gram
    at i or i+1 repeats, or i's prefix group is mixed, or the 5 words from i have fewer than 8 bytes;
    for n = 5 only where i's 8-byte prefix repeats or the 5-gram is that short.
    """
    n_words = ng.n_words
    everywhere = np.zeros(n_words + 1, bool)
    everywhere[:n_words] = dense[ng.doc]
    repeated = shifted = everywhere
    all_dense = bool(everywhere[:n_words].all())
    if not all_dense:
        repeated, shifted = ng.prefix_groups(~everywhere[:n_words])
        m = max(n_words - 4, 0)
        short = np.zeros(n_words + 1, bool)
        short[:m] = ng.cum_bytes[5 : m + 5] - ng.cum_bytes[:m] < 8
        repeated = np.append(repeated, False) | short | everywhere
        shifted = np.append(shifted, False) | short | everywhere
    repeats = None
    for n in DUP_N:
        if repeats is None:
            mark = repeated.copy()
        else:
            mark = shifted.copy()
            if not all_dense:
                mark[repeats] = True
                mark[repeats[repeats > 0] - 1] = True
        pos = ng.candidates(n, mark)
        groups = group_keys(ng.concat_key(pos, n))
        multi = groups.in_multi
        repeats = pos[groups.order[multi]]  # positions whose n-gram repeats, key after key
        yield n, repeats, np.flatnonzero(groups.is_first[multi])
