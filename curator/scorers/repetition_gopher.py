"""The ``gopher`` variant of ``repetition_v1`` (definitions in ``repetition``'s docstring)."""
from __future__ import annotations

import numpy as np

from .grouping import group_keys
from .ngram_keys import DUP_N, TOP_N, Ngrams
from .text_units import all_copies, ratio, split_at
from .textbuf import TextBuffer

__all__ = ["gopher_fractions"]


def gopher_fractions(buf: TextBuffer) -> dict[str, np.ndarray]:
    ng = Ngrams(buf)
    out: dict[str, np.ndarray] = {}
    w = ng.words
    # lines: text.split("\n") without blank lines; a line holds a word unless it is blank
    nl = np.flatnonzero(buf.data == 10)
    nl_doc = np.searchsorted(buf.offsets, nl, side="right") - 1
    l_start, l_end, l_doc = split_at(buf.offsets[:-1], buf.offsets[1:], nl, nl + 1, nl_doc)
    filled = np.searchsorted(w.starts, l_end) > np.searchsorted(w.starts, l_start)
    dups, dup_chars, units, unit_chars = all_copies(buf, l_start[filled], l_end[filled], l_doc[filled])
    out["dup_line_frac"] = ratio(dups, units)
    out["dup_line_char_frac"] = ratio(dup_chars, unit_chars)

    # paragraphs: runs of non-blank lines, from the first one's start to the last one's end
    prev_blank = np.concatenate(([True], ~filled[:-1] | (l_doc[1:] != l_doc[:-1])))
    next_blank = np.concatenate((~filled[1:] | (l_doc[1:] != l_doc[:-1]), [True]))
    p_start = l_start[filled & prev_blank]
    p_end = l_end[filled & next_blank]
    p_doc = l_doc[filled & prev_blank]
    dups, dup_chars, units, unit_chars = all_copies(buf, p_start, p_end, p_doc)
    out["dup_para_frac"] = ratio(dups, units)
    out["dup_para_char_frac"] = ratio(dup_chars, unit_chars)

    word_chars = (ng.cum_chars[w.doc_words[1:]] - ng.cum_chars[w.doc_words[:-1]]).astype(np.float64)
    repeats = None
    for n in (*TOP_N, *DUP_N):
        exists = ng.positions(n)
        if repeats is not None:
            exists &= repeats[: len(exists)] & repeats[1 : len(exists) + 1]
        pos = np.flatnonzero(exists)
        groups = group_keys(ng.tuple_key(pos, n))
        copies = pos[groups.order[groups.in_multi]]  # every copy of a repeated n-gram, group after group
        repeats = np.zeros(max(ng.n_words - n + 1, 0), bool)
        repeats[copies] = True
        if n in TOP_N:
            value = _top_coverage(ng, n, copies, groups.sizes[groups.sizes >= 2])
            out[f"top_{n}gram_char_frac"] = ratio(value, word_chars)
        else:
            covered = _union_chars(ng, np.sort(copies), n)
            out[f"dup_{n}gram_char_frac"] = ratio(covered, word_chars)
    empty = buf.doc_chars() == 0
    for v in out.values():
        v[empty] = np.nan
    return out


def _union_chars(ng: Ngrams, starts: np.ndarray, n: int) -> np.ndarray:
    """Per document, the characters of the words covered by n-grams starting at ``starts`` (ascending),
    each word once. Windows of different documents never overlap, so one pass serves all documents."""
    if not len(starts):
        return np.zeros(ng.buf.n)
    stop = np.minimum(starts + n, np.append(starts[1:], starts[-1] + n))
    return ng.per_doc(starts, (ng.cum_chars[stop] - ng.cum_chars[starts]).astype(np.float64))


def _top_coverage(ng: Ngrams, n: int, copies: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Per document: among the most frequent repeated n-grams, the most characters covered by one's copies.

    ``copies`` lists the copies of each repeated n-gram, group after group, ascending inside a group.
    """
    value = np.zeros(ng.buf.n)
    if not len(sizes):
        return value
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    nxt = np.append(copies[1:], 0)
    last = bounds[1:] - 1
    nxt[last] = copies[last] + n  # the last copy of a group is not cut by the next group's first
    stop = np.minimum(copies + n, nxt)
    covered = np.add.reduceat(ng.cum_chars[stop] - ng.cum_chars[copies], bounds[:-1])
    first = copies[bounds[:-1]]
    by_pos = np.argsort(first)
    first, count, covered = first[by_pos], sizes[by_pos], covered[by_pos]
    doc = ng.doc[first]
    seg = np.flatnonzero(np.concatenate(([True], doc[1:] != doc[:-1])))
    seg_of = np.repeat(np.arange(len(seg)), np.diff(np.append(seg, len(doc))))
    best = np.maximum.reduceat(count, seg)
    covered = np.where(count == best[seg_of], covered, -1)
    value[doc[seg]] = np.maximum.reduceat(covered, seg)
    return value
