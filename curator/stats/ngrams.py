"""Corpus n-gram statistics per group (origin), vectorised over batches of documents.

Definitions (tokens come from a ``curator.stats.tokenize`` tokenizer; all arithmetic mod 2**64):

- An n-gram is n consecutive tokens of one document; n-grams never cross document boundaries.
  A document of L tokens holds max(0, L - n + 1) n-gram occurrences.
- N-gram hash of the tokens t_0..t_{n-1} (their token hashes)::

      S = t_0;  S = S * NGRAM_K + t_j  for j = 1..n-1;  hash = mix64(S XOR (n * GOLDEN))

  (``NGRAM_K`` is odd with NGRAM_K - 1 = 2 mod 4; ``mix64`` and ``GOLDEN`` are those of
  ``curator.stats.tokenize``). Same n-gram, same hash, in every batch and run. Counts treat equal
  hashes as equal n-grams, i.e. they are exact up to 64-bit hash collisions.
- Per group g (and the combined group ``'*'`` = all documents of all groups) and n:
  ``documents`` (documents in g, empty ones included), ``tokens`` (sum of L), ``total`` (n-gram
  occurrences: sum of max(0, L - n + 1)), ``distinct`` (distinct n-gram hashes); per n-gram
  ``count`` (occurrences) and ``doc_freq`` (documents containing it at least once).
- ``buckets``: ``bucket = hash % buckets``; one row per non-empty bucket with the summed
  ``count`` of its n-grams (a hashed histogram of occurrences).
- ``top``: the ``top_k`` n-grams with the highest ``count``, ties broken by ascending hash;
  ``rank`` is 1-based; ``ngram`` is the n token strings joined by single spaces.
- ``sample``: every distinct n-gram with ``hash < 2**64 // sample_rate`` (all of them when
  sample_rate = 1) with its ``count`` and ``doc_freq``, ordered by hash. An n-gram is in or out of
  every group's sample alike, so joining two groups' samples estimates set overlaps (tail loss).

How it works. ``update`` tokenizes a batch, cuts it into blocks of about 64k tokens (whole
documents of one group) and, per block and n, sorts the occurrences once by (value, position)
(``curator.stats.blocks``). Within one value the positions are then ascending, so an occurrence
in the same document as the previous one of its value is an in-document repeat, and doc_freq =
count - repeats. A block whose values mostly occur once (most 3- and 4-grams) is kept as its
sorted occurrences as they are (8 bytes per occurrence, no compaction) plus the values of its
in-document repeats; a more repetitive one (1- and 2-grams) as one row per distinct value: values
seen once as bare 8-byte values, the others as (value, count, doc_freq). Those sorted partial aggregates
("runs") are all that is kept between calls (no text): about 4 bytes of state per byte of
English text for n = 1..4. Internally everything is keyed by S, not by the hash: the finaliser is
a bijection, so the counts are the same, and it then runs once per distinct n-gram instead of per
occurrence.

Memory. The runs in memory (``state_nbytes()``) are kept under ``memory_budget`` (default 256 MiB;
None = unlimited): after any block that takes them over it, all of them are spilled, i.e. appended
to one file in a private temporary directory (under ``spill_dir``; deleted by ``close()``, a
``with`` block or garbage collection, not by ``finish``, since ``update`` may follow). A spill
cuts every run at the same ``_SPILL_PARTS`` (64) S-value ranges (S is uniform) and writes, per
(group, n) and range, the slices of all runs back to back (``curator.stats.spill``): sequential
writes, no merging (``finish`` sorts every range once anyway, and merging twice would cost more
than the extra bytes), and each range, or a run of consecutive ranges, is one sequential read
later. The spill file is about 4 bytes per byte of text beyond the budget. ``finish`` never holds
a merged (group, n): it takes one S range at a time (a power of two of ranges per n, sized to
about ``_UNIT_ROWS`` rows; whole spill ranges when something was spilled), merges each group's
pieces of it (slices of the runs in memory, the spilled ranges; ``curator.stats.merge``), folds
the merged rows straight into the outputs (``curator.stats.fold``: ``distinct`` += rows; the
bucket histogram; a running top-k that only rows beating its current k-th can enter; the sample
rows), then merges all groups' rows of that range for ``'*'`` (doc_freq adds up because a
document lives in one block and one group) and folds those. Every statistic is per distinct
n-gram and each lives in exactly one range, so this is exact, and the tables are identical
whatever was spilled and whichever form a block was kept in. Peak memory is thus about the
budget, plus one batch's working memory, plus during ``finish`` the merge of one range
(``_UNIT_ROWS`` rows of all groups, or 1/64 of one n's rows if more, and their temporaries: about
15 MB for 100 MB of text), plus the outputs: the sample (1/sample_rate of the distinct n-grams) is
output and grows with the corpus, and so, slowly, do the kept top-k texts (below; about 3,000 for
100 MB of text). Only the outputs are cached for a second ``finish`` after ``fill_texts``; nothing
is merged again.

Top-k texts. A hash cannot be turned back into text, so each batch keeps the texts of its
``text_candidates`` (default max(4 * top_k, 256)) most frequent n-grams per group and n (by
count, then ascending hash, like the final ranking, so a corpus that fits in one block never
misses one). A final top-k n-gram that made no batch's list (rare: frequent overall, never
frequent in a batch) gets a null ``ngram``; ``missing_texts()`` lists those hashes, ``fill_texts(texts)`` over
the same documents (a second pass) recovers them, and ``finish`` is then called again.
``compute_ngram_stats`` does that second pass by itself when needed.

Modules: ``values`` (S and the final hash), ``sorting`` (sort and group primitives), ``blocks``
(per-block aggregation), ``merge`` (merging partial state), ``spill`` (the spill file and its
index), ``fold`` (the outputs, range by range), ``texts`` (the top-k texts), ``tables`` (schemas,
``NgramStats``, rows), ``buffers`` (reusable work buffers); this one holds the accumulator. The hot loops reuse buffers that the accumulator
owns (the tokenizer's batch arrays, the block pipeline's temporaries, finish's merge buffers):
allocating them anew for every batch, block or range costs page faults and cache misses, and
those cost more than many of the passes over the data themselves.
"""
from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa

from curator.errors import UsageError
from curator.stats import kernels
from curator.stats.blocks import (
    _aggregate,
    _aggregate_block,
    _aggregate_next,
    _blocks,
    _sort_by_group,
    _Tails,
    _Work,
)
from curator.stats.buffers import Buffers
from curator.stats.fold import _Fold
from curator.stats.merge import _merge_groups, _merge_partials, _merge_unit, _Partials
from curator.stats.sorting import _EMPTY_I64, _cuts, _edges, _group_sorted
from curator.stats.spill import _Spill, write_spill
from curator.stats.tables import (
    BUCKETS_SCHEMA,
    SAMPLE_SCHEMA,
    TOP_SCHEMA,
    TOTALS_SCHEMA,
    NgramStats,
    _emit,
    _Rows,
)
from curator.stats.texts import _TopTexts
from curator.stats.tokenize import TokenBatch, Tokenizer, get_tokenizer
from curator.stats.values import NGRAM_K, ngram_hashes

__all__ = [
    "ALL_GROUPS",
    "BUCKETS_SCHEMA",
    "DEFAULT_MEMORY_BUDGET",
    "NGRAM_K",
    "SAMPLE_SCHEMA",
    "TOP_SCHEMA",
    "TOTALS_SCHEMA",
    "NgramAccumulator",
    "NgramStats",
    "compute_ngram_stats",
    "ngram_hashes",
]

# Internals that tests and benchmarks reach through this module (imported above for them).
_INTERNALS = (_aggregate, _group_sorted, _merge_partials)

ALL_GROUPS = "*"
MAX_N = 16
MAX_GROUPS = 1 << 20  # group codes index per-group counters

_U64 = np.uint64
_K = _U64(NGRAM_K)
# Tokens per block: the sort and its gathers then stay in L2, several times faster than on a
# whole batch, while a block still dedupes most repeated 1- and 2-grams before finish.
_BLOCK_TOKENS = 1 << 16
# Value-range partitions of the spill file (a power of two): finish reads one or a few at a time,
# so its working memory is about 1/_SPILL_PARTS of the spilled state per n.
_SPILL_PARTS = 64
# Rows (all groups of one n) per value range that finish merges at once: big enough that the
# per-range Python overhead is small, small enough that the sorts stay mostly in cache.
_UNIT_ROWS = 1 << 18
# Most value ranges finish uses when nothing was spilled (any power of two works then).
_MAX_UNITS = 4096
# finish merges each group's value ranges in buffers of its own up to this many groups.
_BUFFERED_GROUPS = 64
# Bucket histograms up to this many buckets are dense arrays; larger ones are summed sparsely.
_DENSE_BUCKETS = 1 << 22
DEFAULT_MEMORY_BUDGET = 256 << 20


# -- the accumulator --------------------------------------------------------------------------


class NgramAccumulator:
    """Accumulates n-gram statistics over batches; ``finish`` builds the tables.

    ``update(texts, groups)`` takes N documents and an int array of their group codes
    (0..G-1, e.g. the origin of each document); ``finish(group_names)`` names the codes.

    ``memory_budget`` (bytes, None = unlimited) bounds the partial aggregates kept in memory;
    beyond it they are spilled to a fresh directory under ``spill_dir`` (default: the system
    temporary directory). ``close()`` (or leaving a ``with`` block, or garbage collection)
    deletes that directory; ``finish`` keeps it, since ``update`` may still follow.
    """

    def __init__(self, tokenizer: Tokenizer | str = "word_v1", ns: Iterable[int] = (1, 2, 3, 4),
                 buckets: int = 10_000, top_k: int = 100, sample_rate: int = 16,
                 text_candidates: int | None = None, memory_budget: int | None = DEFAULT_MEMORY_BUDGET,
                 spill_dir: str | Path | None = None) -> None:
        self.tokenizer = get_tokenizer(tokenizer)
        ns = tuple(sorted({int(n) for n in ns}))
        if not ns or ns[0] < 1 or ns[-1] > MAX_N:
            raise UsageError(f"ns must be n-gram sizes between 1 and {MAX_N}, got {ns}")
        if not 1 <= int(buckets) <= 2**31 - 1:
            raise UsageError(f"buckets must be between 1 and 2**31-1, got {buckets}")
        if int(top_k) < 0:
            raise UsageError(f"top_k must be >= 0, got {top_k}")
        if int(sample_rate) < 1:
            raise UsageError(f"sample_rate must be >= 1, got {sample_rate}")
        self.ns = ns
        self.buckets = int(buckets)
        self.top_k = int(top_k)
        self.sample_rate = int(sample_rate)
        self.text_candidates = max(4 * self.top_k, 256) if text_candidates is None else int(text_candidates)
        if self.text_candidates < 1:
            raise UsageError(f"text_candidates must be >= 1, got {text_candidates}")
        if memory_budget is not None and int(memory_budget) < 0:
            raise UsageError(f"memory_budget must be >= 0 bytes (or None), got {memory_budget}")
        self.memory_budget = None if memory_budget is None else int(memory_budget)
        self.spill_dir = None if spill_dir is None else Path(spill_dir)
        self._partials: dict[tuple[int, int], _Partials] = {}
        self._work = _Work()  # reusable buffers of the block pipeline
        self._buffers = Buffers()  # reusable buffers of the tokenizer (a batch lives until the next)
        self._state_bytes = 0  # bytes of self._partials, kept up to date by _add_block and _spill
        self._documents = _EMPTY_I64
        self._tokens = _EMPTY_I64
        self._totals = {n: _EMPTY_I64 for n in ns}
        # Texts of candidate top n-grams, and the top-k ones the last finish had no text for.
        self._top_texts = _TopTexts(self.text_candidates)
        # finish's folded outputs per (group or None = '*', n), kept for a second finish after
        # fill_texts (only the texts are resolved again); update drops them.
        self._result: dict[tuple[int | None, int], _Fold] | None = None
        # Spilled partials: one file, appended to by every spill; created at the first spill.
        self._spills: list[_Spill] = []
        self._spill_file: Path | None = None
        self._spill_bytes = 0
        self._cleanup: weakref.finalize | None = None
        self._closed = False
        # Fixed for the accumulator's life: every spill cuts alike. A power of two, so that finish
        # can read runs of consecutive partitions as one value range (see _edges).
        self._parts = _SPILL_PARTS
        if self._parts < 1 or self._parts & (self._parts - 1):
            raise UsageError(f"_SPILL_PARTS must be a power of two, got {self._parts}")

    def state_nbytes(self) -> int:
        """Bytes of partial aggregates held in memory (at most about ``memory_budget``)."""
        return self._state_bytes

    def spilled_nbytes(self) -> int:
        """Bytes of partial aggregates written to the spill file so far."""
        return self._spill_bytes

    def close(self) -> None:
        """Delete the spill directory and drop the partial aggregates. Afterwards ``finish``
        only returns the last result again (with texts ``fill_texts`` found since); ``update``
        raises."""
        if self._cleanup is not None:
            self._cleanup()
        self._spills = []
        self._partials = {}
        self._state_bytes = 0
        self._closed = True

    def __enter__(self) -> NgramAccumulator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- update ---------------------------------------------------------------------------

    def update(self, texts: pa.Array | pa.ChunkedArray, groups: np.ndarray) -> None:
        """Add a batch: ``texts`` (N strings; null = empty) and ``groups`` (N int group codes)."""
        if self._closed:
            raise UsageError("this NgramAccumulator is closed; start a new one")
        groups = self._check_groups(groups, len(texts))
        if len(groups) == 0:
            return
        self._result = None
        self._add(self.tokenizer.encode_into(texts, self._buffers), groups)

    @staticmethod
    def _check_groups(groups, n_docs: int) -> np.ndarray:
        groups = np.asarray(groups)
        if groups.ndim != 1 or len(groups) != n_docs:
            raise UsageError(f"groups must be a 1-d array with one code per document: expected {n_docs}, "
                             f"got shape {groups.shape}")
        if len(groups) and groups.dtype.kind not in "iu":
            raise UsageError(f"groups must be integer codes, got dtype {groups.dtype}")
        groups = groups.astype(np.int64, copy=False)
        if len(groups) and (groups.min() < 0 or groups.max() >= MAX_GROUPS):
            bad = int(groups.min()) if groups.min() < 0 else int(groups.max())
            raise UsageError(f"groups must be codes 0..G-1 with G <= {MAX_GROUPS}, got {bad}")
        return groups

    def _grow(self, size: int) -> None:
        if size <= len(self._documents):
            return
        pad = np.zeros(size - len(self._documents), np.int64)
        self._documents = np.concatenate([self._documents, pad])
        self._tokens = np.concatenate([self._tokens, pad])
        for n in self.ns:
            self._totals[n] = np.concatenate([self._totals[n], pad])

    def _add(self, batch: TokenBatch, groups: np.ndarray) -> None:
        offsets = batch.doc_offsets
        lengths = np.diff(offsets)
        self._grow(int(groups.max()) + 1)
        size = len(self._documents)
        self._documents += np.bincount(groups, minlength=size)
        self._tokens += _int_bincount(groups, lengths, size)
        for n in self.ns:
            self._totals[n] += _int_bincount(groups, np.maximum(lengths - n + 1, 0), size)

        hashes = batch.hashes
        positions = None
        if np.any(groups[1:] != groups[:-1]):
            hashes, offsets, groups, positions = _sort_by_group(hashes, offsets, groups)
        # (group, n) -> list of (S, count, first position) text candidates of this batch's blocks.
        candidates: dict[tuple[int, int], list] = {}
        change = np.flatnonzero(groups[1:] != groups[:-1]) + 1
        bounds = np.concatenate([[0], change, [len(groups)]]).tolist()
        for d0, d1 in zip(bounds[:-1], bounds[1:]):
            g = int(groups[d0])
            for b0, b1 in _blocks(offsets, d0, d1, _BLOCK_TOKENS):
                self._add_block(hashes, offsets, b0, b1, g, candidates)
        self._top_texts.keep(batch, candidates, positions)

    def _add_block(self, hashes, offsets, d0: int, d1: int, g: int, candidates) -> None:
        t0, t1 = int(offsets[d0]), int(offsets[d1])
        m = t1 - t0
        if m == 0:
            return
        work = self._work
        work.ensure(m)
        tok = hashes[t0:t1]
        lengths = np.diff(offsets[d0 : d1 + 1])
        doc = np.repeat(np.arange(d1 - d0, dtype=np.int32), lengths)
        doc_end = offsets[d0 + 1 : d1 + 1] - t0
        compiled = kernels.LIB is not None
        tails = None if compiled else _Tails(doc_end, lengths, self.ns[-1])
        s = tok
        for n in range(1, self.ns[-1] + 1):
            count = m - n + 1
            if count <= 0:
                break
            key = (g, n)
            if compiled:
                # S_n(p) = S_{n-1}(p) * K + t_{p+n-1}, the keys and the aggregation, all compiled.
                prev, s = s, (tok if n == 1 else work.s[:count])
                if n not in self.ns:
                    kernels.block_keys(prev, s, tok, n, NGRAM_K, doc_end, 0, None)
                    continue
                block = _aggregate_next(prev, s, tok, n, NGRAM_K, doc, doc_end, work, work.form(key, n))
            else:
                if n == 2:
                    s = np.multiply(tok[:count], _K, out=work.s[:count])
                    s += tok[1:]
                elif n > 2:
                    # S_n(p) = S_{n-1}(p) * K + t_{p+n-1}; the last position drops out each round.
                    s = s[:count]
                    s *= _K
                    s += tok[n - 1 :]
                if n not in self.ns:
                    continue
                block = _aggregate_block(s, doc, tails.positions(n, count), work, work.form(key, n))
            work.share[key] = block.share
            part = self._partials.get(key)
            if part is None:
                part = self._partials[key] = _Partials()
            if len(block.singles):
                part.singles.append(block.singles)
                self._state_bytes += block.singles.nbytes
            if len(block.repeats):
                part.repeats.append(block.repeats)
                self._state_bytes += block.repeats.nbytes
            if len(block.multi):
                part.multis.append((block.multi, block.count, block.doc_freq))
                self._state_bytes += block.multi.nbytes + block.count.nbytes
                if block.doc_freq is not block.count:
                    self._state_bytes += block.doc_freq.nbytes
            self._top_texts.block(candidates, g, n, block, t0)
        # Checked per block, so the state never exceeds the budget by more than one block's.
        if self.memory_budget is not None and self._state_bytes > self.memory_budget:
            self._spill()

    # -- spill ----------------------------------------------------------------------------

    def _spill_path(self) -> Path:
        if self._spill_file is None:
            if self.spill_dir is not None:
                self.spill_dir.mkdir(parents=True, exist_ok=True)
            path = Path(tempfile.mkdtemp(prefix="curator-ngrams-", dir=self.spill_dir))
            # Deletes the directory on close(), garbage collection or interpreter exit; holds no
            # reference to self.
            self._cleanup = weakref.finalize(self, shutil.rmtree, str(path), True)
            self._spill_file = path / "partials.bin"
        return self._spill_file

    def _spill(self) -> None:
        """Append all in-memory partials to the spill file, cut into ``_parts`` value ranges
        (see ``curator.stats.spill``), and drop them from memory."""
        spill, self._spill_bytes = write_spill(self._spill_path(), self._partials, self._parts, self._spill_bytes)
        self._spills.append(spill)
        self._partials = {}
        self._state_bytes = 0

    # -- finish ---------------------------------------------------------------------------

    def finish(self, group_names: list[str]) -> NgramStats:
        """Merge everything into the four tables; may be called again (after ``fill_texts``).

        Rows come per origin in ``group_names`` order (groups without documents are left out),
        then ``'*'``; within an origin by n. A second call without ``update`` in between only
        resolves the top-k texts again (the merged statistics are kept, not recomputed).
        """
        names = [str(x) for x in group_names]
        if len(set(names)) != len(names):
            raise UsageError(f"group_names must be distinct, got {names}")
        if ALL_GROUPS in names:
            raise UsageError(f"group name '{ALL_GROUPS}' is reserved for all groups together; rename it")
        used = np.flatnonzero(self._documents).tolist()
        if used and used[-1] >= len(names):
            raise UsageError(f"group code {used[-1]} has no name: got {len(names)} group_names {names}")
        if self._result is None:
            # The batch buffers are not needed again before the next update or fill_texts.
            self._work = _Work()
            self._buffers = Buffers()
            if self._closed:
                raise UsageError("this NgramAccumulator is closed and has no result to return; finish before close")
            self._result = self._fold_all(used)
        self._top_texts.missing = {}
        tables = {k: _Rows() for k in ("totals", "buckets", "top", "sample")}
        options = (self.buckets, self.sample_rate, self.top_k)
        for g in used + [None]:
            for n in self.ns:
                if g is None:
                    counts = (int(self._documents.sum()), int(self._tokens.sum()), int(self._totals[n].sum()))
                else:
                    counts = (int(self._documents[g]), int(self._tokens[g]), int(self._totals[n][g]))
                _emit(tables, ALL_GROUPS if g is None else names[g], n, counts, self._result[(g, n)], options,
                      self._top_texts)
        return NgramStats(
            tokenizer=self.tokenizer.name,
            totals=tables["totals"].table(TOTALS_SCHEMA),
            buckets=tables["buckets"].table(BUCKETS_SCHEMA),
            top=tables["top"].table(TOP_SCHEMA),
            sample=tables["sample"].table(SAMPLE_SCHEMA),
            missing_texts=len(self.missing_texts()),
        )

    def _fold_all(self, used: list[int]) -> dict[tuple[int | None, int], _Fold]:
        """Merge the partials one value range at a time and fold each range into the outputs.

        Per n, the value range is cut into ``units`` ranges (a power of two; when something was
        spilled, at most the spill's partitions, so that a range is whole spill partitions). For
        each range, every group's pieces (slices of the in-memory runs, partitions read from the
        spill file) are merged and folded into that group's outputs; the merged rows of all
        groups are then merged again for '*'. Nothing bigger than one range is ever held.
        """
        out: dict[tuple[int | None, int], _Fold] = {}
        options = (self.buckets, self.top_k, self.sample_rate, _DENSE_BUCKETS)
        # Reused buffers for the merges: one set per group, since '*' merges every group's rows of
        # a range after all of them are merged (many groups: fresh arrays instead).
        scratch = Buffers()
        merge_buffers = {g: Buffers() for g in used} if len(used) <= _BUFFERED_GROUPS else {}
        f = open(self._spill_file, "rb", buffering=0) if self._spills else None
        try:
            for n in self.ns:
                folds = {g: _Fold(n, *options) for g in used}
                star = _Fold(n, *options) if len(used) > 1 else None
                rows = 0
                for g in used:
                    part = self._partials.get((g, n))
                    if part is not None:
                        rows += part.rows()
                    rows += sum(spill.rows((g, n)) for spill in self._spills)
                most = self._parts if self._spills else _MAX_UNITS
                units = 1 << min(most.bit_length() - 1, (max(1, -(-rows // _UNIT_ROWS)) - 1).bit_length())
                edges = _edges(units)
                step = self._parts // units
                memory = {}
                for g in used:
                    part = self._partials.get((g, n))
                    if part is not None:
                        memory[g] = (part, _cuts(part.singles, edges).T.tolist(),
                                     _cuts([r[0] for r in part.multis], edges).T.tolist(),
                                     _cuts(part.repeats, edges).T.tolist())
                for u in range(units):
                    merged = []
                    for g in used:
                        singles: list[np.ndarray] = []
                        multis: list[tuple] = []
                        repeats: list[np.ndarray] = []
                        if g in memory:
                            part, scut, mcut, rcut = memory[g]
                            singles += [a[x:y] for a, x, y in zip(part.singles, scut[u], scut[u + 1]) if y > x]
                            multis += [(r[0][x:y], r[1][x:y], r[2][x:y])
                                       for r, x, y in zip(part.multis, mcut[u], mcut[u + 1]) if y > x]
                            repeats += [a[x:y] for a, x, y in zip(part.repeats, rcut[u], rcut[u + 1]) if y > x]
                        for i, spill in enumerate(self._spills):
                            words = spill.words((g, n), u * step, (u + 1) * step)
                            if words:
                                spill.read(f, (g, n), u * step, (u + 1) * step, singles, multis, repeats,
                                           scratch.get(f"read{i}", words, np.uint64))
                        rows_u = _merge_unit(singles, multis, repeats, merge_buffers.get(g))
                        del singles, multis, repeats
                        folds[g].add(*rows_u, scratch)
                        if star is not None:
                            merged.append(rows_u)
                    if star is not None:
                        star.add(*_merge_groups(merged), scratch)
                for g, fold in folds.items():
                    fold.close()
                    out[(g, n)] = fold
                if star is not None:
                    star.close()
                out[(None, n)] = star if star is not None else (folds[used[0]] if used else _Fold(n, *options))
        finally:
            if f is not None:
                f.close()
        return out

    # -- second pass for rare missing texts -------------------------------------------------

    def missing_texts(self) -> set[int]:
        """Hashes of top-k n-grams the last ``finish`` had no text for (normally empty)."""
        return self._top_texts.missing_hashes()

    def fill_texts(self, texts: pa.Array | pa.ChunkedArray, groups: np.ndarray | None = None) -> int:
        """Find missing top-k texts in a batch of the same documents; returns how many it found.

        Call it over the corpus (or until ``missing_texts()`` is empty), then ``finish`` again.
        ``groups`` is accepted for symmetry with ``update`` and only checked: a text does not
        depend on the group it was found in.
        """
        if groups is not None:
            self._check_groups(groups, len(texts))
        want = self._top_texts.wanted()
        if not want:
            return 0
        return self._top_texts.fill(self.tokenizer.encode_into(texts, self._buffers), want)


def compute_ngram_stats(batches: Callable[[], Iterable[tuple[pa.Array | pa.ChunkedArray, np.ndarray]]],
                        group_names: list[str], **options) -> NgramStats:
    """Statistics of ``batches()`` (an iterable of (texts, groups)), including the rare second
    pass for missing top-k texts (``batches`` is then called again). ``options`` go to
    ``NgramAccumulator``."""
    with NgramAccumulator(**options) as acc:
        for texts, groups in batches():
            acc.update(texts, groups)
        stats = acc.finish(group_names)
        if stats.missing_texts:
            for texts, groups in batches():
                acc.fill_texts(texts, groups)
                if not acc.missing_texts():
                    break
            stats = acc.finish(group_names)
    return stats


# -- helpers ----------------------------------------------------------------------------------


def _int_bincount(groups: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    # float64 weights are exact below 2**53 per batch, far above any batch's token count.
    return np.rint(np.bincount(groups, weights=weights, minlength=size)).astype(np.int64)

