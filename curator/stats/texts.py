"""Texts of the top-k n-grams (see "Top-k texts" in ``curator.stats.ngrams``).

A hash cannot be turned back into text, so each batch keeps the texts of its ``candidates`` most
frequent n-grams per group and n (by count, then ascending hash, like the final ranking): each
block proposes its best (``block``), the batch keeps the best of those (``keep``). A final
top-k n-gram that never made a batch's list is recorded as missing when the tables are built
(``lookup``) and found in a second pass over the same documents (``fill``).
"""
from __future__ import annotations

import numpy as np

from curator.stats import kernels
from curator.stats.blocks import _Block
from curator.stats.sorting import _group_sorted, _group_sums, _smallest, _top_indices, _top_selection
from curator.stats.tokenize import TokenBatch
from curator.stats.values import _finalise, _ngram_values, finalise_salt


class _TopTexts:
    """The kept texts (n -> {S: text}; S is the value before finalising) and the missing ones."""

    def __init__(self, candidates: int) -> None:
        self.candidates = candidates
        self.known: dict[int, dict[int, str]] = {}
        # Final hash -> (n, S) of the top-k n-grams the last lookup found no text for.
        self.missing: dict[int, tuple[int, int]] = {}

    def block(self, pending: dict, g: int, n: int, block: _Block, t0: int) -> None:
        """Add this block's ``candidates`` best n-grams by (count desc, hash asc), in any order,
        to ``pending`` ((group, n) -> list of (S, count, first position in the batch))."""
        k = self.candidates
        v, c, first = block.top
        if len(v) > k:
            if kernels.LIB is not None:
                sel = kernels.top_rows(v, np.ascontiguousarray(c, np.int64), k, finalise_salt(n))
            else:
                sel = _top_selection(c, k, lambda idx: _finalise(v[idx], n))
            v, c, first = v[sel], c[sel], first[sel]
        elif len(v) < k:
            # Too few repeated n-grams: fill up with singles of smallest hash (the tie rule).
            lone, lone_pos = block.lone()
            if len(lone):
                sel = _smallest(_finalise(lone, n), k - len(v))
                v = np.concatenate([v, lone[sel]])
                c = np.concatenate([c, np.ones(len(sel), np.int64)])
                first = np.concatenate([first, lone_pos[sel]])
        # Copies (at most k rows): the block's arrays may lie in buffers the next block reuses.
        pending.setdefault((g, n), []).append((np.array(v, np.uint64), np.array(c, np.int64), first + t0))

    def keep(self, batch: TokenBatch, pending: dict, positions: np.ndarray | None) -> None:
        """Remember the texts of the batch's best n-grams per group and n (``positions`` maps the
        pending positions back to the batch's own token order, if it was reordered)."""
        want_s, want_pos, want_n = [], [], []
        for (_, n), parts in pending.items():
            v = np.concatenate([p[0] for p in parts])
            c = np.concatenate([p[1] for p in parts])
            first = np.concatenate([p[2] for p in parts])
            order, vs, _, starts = _group_sorted(v)
            sums = _group_sums(c[order], starts)
            vs = vs[starts]
            first = first[order][starts]
            top = _top_indices(_finalise(vs, n), sums, self.candidates)
            known = self.known.setdefault(n, {})
            new = [i for i, x in zip(top.tolist(), vs[top].tolist()) if x not in known]
            if new:
                want_s.append(vs[new])
                want_pos.append(first[new])
                want_n.append(np.full(len(new), n))
        if want_s:
            self._store(batch, np.concatenate(want_s), np.concatenate(want_pos), np.concatenate(want_n),
                        positions)

    def _store(self, batch: TokenBatch, values, pos, ns, positions) -> None:
        if positions is not None:
            pos = positions[pos]  # back to the batch's own token order
        width = int(ns.max())
        flat = pos[:, None] + np.arange(width)[None, :]
        words = batch.strings(flat[np.arange(width)[None, :] < ns[:, None]])
        at = 0
        for v, n in zip(values.tolist(), ns.tolist()):
            self.known.setdefault(n, {})[v] = " ".join(words[at : at + n])
            at += n

    def lookup(self, n: int, hashes: np.ndarray, values: np.ndarray) -> list[str | None]:
        """The texts of top-k n-grams (final hashes and values S); records the unknown ones."""
        known = self.known.get(n, {})
        texts = []
        for hv, sv in zip(hashes.tolist(), values.tolist()):
            text = known.get(sv)
            if text is None:
                self.missing[hv] = (n, sv)
            texts.append(text)
        return texts

    def missing_hashes(self) -> set[int]:
        return {hv for hv, (n, v) in self.missing.items() if v not in self.known.get(n, {})}

    def wanted(self) -> dict[int, list[int]]:
        """n -> values S whose text is still missing."""
        want: dict[int, list[int]] = {}
        for n, v in self.missing.values():
            if v not in self.known.get(n, {}):
                want.setdefault(n, []).append(v)
        return want

    def fill(self, batch: TokenBatch, want: dict[int, list[int]]) -> int:
        """Find the wanted texts in a batch; returns how many it found."""
        found = 0
        for n, values in want.items():
            sv, pos = _ngram_values(batch.hashes, batch.doc_offsets, n)
            hit = np.flatnonzero(np.isin(sv, np.array(values, dtype=np.uint64)))
            if len(hit):
                uv, first = np.unique(sv[hit], return_index=True)
                self._store(batch, uv, pos[hit[first]], np.full(len(uv), n), None)
                found += len(uv)
        return found
