"""Spilling partial aggregates to disk by value range, and reading them back range by range.

A spill appends all in-memory partials of an accumulator to one file. Every sorted run is cut at
the same ``parts`` value ranges (``sorting._edges``; S values are uniform), and per (group, n)
and range the slices of all runs are written back to back (copied into one buffer by a compiled
loop, or without ``kernels`` handed to gathered writes), one range after the other: sequential
writes and no merging (``finish`` sorts every range once anyway, and merging twice would cost
more than the extra bytes). Each range, or a run of consecutive ranges,
is then one sequential read. ``_Spill`` is the index of one spill.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curator.stats import kernels
from curator.stats.merge import _Partials
from curator.stats.sorting import _cuts, _edges


@dataclass
class _Spill:
    """One spill: where each (group, n)'s value-range partitions lie in the spill file.

    ``regions[(g, n)] = (offsets, counts, rows)``: the byte offset of each partition and of the
    end (partitions + 1 entries), (singles, multis, doc_freq written: 1 or 0 = equals count,
    repeats) per partition, and the total rows. A partition's bytes are its singles (uint64), then
    the multis' values (uint64), counts (int64) and, if written, doc_freqs (int64), then the
    repeats (uint64); the partitions of one (group, n) follow each other, so a run of them is one
    read.
    """

    regions: dict[tuple[int, int], tuple[list[int], list[tuple[int, int, int, int]], int]]

    def rows(self, key: tuple[int, int]) -> int:
        region = self.regions.get(key)
        return 0 if region is None else region[2]

    def words(self, key: tuple[int, int], p0: int, p1: int) -> int:
        """8-byte words of partitions [p0, p1) of ``key``."""
        region = self.regions.get(key)
        return 0 if region is None else (region[0][p1] - region[0][p0]) // 8

    def read(self, f, key: tuple[int, int], p0: int, p1: int, singles: list, multis: list,
             repeats: list, buf: np.ndarray | None = None) -> None:
        """Append the pieces of partitions [p0, p1) of ``key`` to ``singles``, ``multis`` and
        ``repeats``: views of ``buf`` (``words`` uint64 elements) if given, else of a new array."""
        region = self.regions.get(key)
        if region is None:
            return
        offsets, counts, _ = region
        if offsets[p1] == offsets[p0]:
            return
        if buf is None:
            buf = np.empty((offsets[p1] - offsets[p0]) // 8, np.uint64)
        _read_exact(f, buf, offsets[p0])
        at = 0
        for ns, nm, stored, nr in counts[p0:p1]:
            if ns:
                singles.append(buf[at : at + ns])
                at += ns
            if nm:
                c = buf[at + nm : at + 2 * nm].view(np.int64)
                d = buf[at + 2 * nm : at + 3 * nm].view(np.int64) if stored else c
                multis.append((buf[at : at + nm], c, d))
                at += nm * (2 + stored)
            if nr:
                repeats.append(buf[at : at + nr])
                at += nr


def write_spill(path: Path, partials: dict[tuple[int, int], _Partials], parts: int, at: int) -> tuple[_Spill, int]:
    """Append ``partials`` to the spill file at ``path`` (now ``at`` bytes long), cut into
    ``parts`` value ranges; returns the spill's index and the file's new length.

    Per (group, n) and range, the slices of all sorted runs are written back to back, one range
    after the other: gathered into one buffer by ``kernels.gather`` (half the time of the
    alternative), or without the compiled loops as one gathered write per range.
    """
    edges = _edges(parts)
    regions: dict[tuple[int, int], tuple] = {}
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o600)
    try:
        for key, part in partials.items():
            singles, multis, repeats = part.singles, part.multis, part.repeats
            # doc_freq is not written when it is count itself in every run (see blocks._rows).
            stored = 0 if all(r[2] is r[1] for r in multis) else 1
            arrays = list(singles)
            scut = _cuts(singles, edges)
            mcut = _cuts([r[0] for r in multis], edges)
            rcut = _cuts(repeats, edges)
            for j in range(2 + stored):
                arrays += [r[j] for r in multis]
            arrays += list(repeats)
            cuts = np.concatenate([scut] + [mcut] * (2 + stored) + [rcut])
            sizes = (np.diff(scut, axis=1).sum(axis=0), np.diff(mcut, axis=1).sum(axis=0),
                     np.diff(rcut, axis=1).sum(axis=0))
            words = sizes[0] + sizes[1] * (2 + stored) + sizes[2]
            offsets = (at + 8 * np.concatenate([[0], np.cumsum(words)])).tolist()
            counts = [(x, y, stored, z) for x, y, z in zip(*(a.tolist() for a in sizes))]
            if kernels.LIB is not None:
                _gather_write(fd, arrays, cuts, words)
            else:
                cuts = cuts.tolist()
                for p in range(parts):
                    pieces = [(a, c[p], c[p + 1]) for a, c in zip(arrays, cuts) if c[p + 1] > c[p]]
                    _write_all(fd, [memoryview(a)[x:y] for a, x, y in pieces], [8 * (y - x) for _, x, y in pieces])
            at = offsets[-1]
            regions[key] = (offsets, counts, int(sum(int(a.sum()) for a in sizes)))
    finally:
        os.close(fd)
    return _Spill(regions), at


def _gather_write(fd: int, arrays: list[np.ndarray], cuts: np.ndarray, words: np.ndarray) -> None:
    """Write partition after partition: each one gathered from the slices of every run into one
    buffer by a compiled loop (a Python slice per run and partition costs more than the copy)."""
    if not arrays:
        return
    addrs = kernels.addresses(arrays)
    bounds = np.ascontiguousarray(cuts.T)  # (parts + 1, arrays): row p = where partition p starts
    buf = np.empty(int(words.max()) if len(words) else 0, np.uint64)
    for p in range(len(words)):
        m = kernels.gather(addrs, bounds[p], bounds[p + 1], buf)
        if m:
            _write_rest(fd, memoryview(buf[:m]).cast("B"))


def _write_all(fd: int, buffers: list, sizes: list[int]) -> None:
    """Write ``buffers`` (of ``sizes`` bytes) one after another: gathered writes (at most 512
    buffers per call) where the platform has them, so the slices need no copy into one buffer."""
    for i in range(0, len(buffers), 512):
        chunk = buffers[i : i + 512]
        done = os.writev(fd, chunk) if hasattr(os, "writev") else 0
        if done < sum(sizes[i : i + 512]):  # no writev, or a short write (rare): the rest plainly
            _write_rest(fd, memoryview(b"".join(chunk))[done:])


def _write_rest(fd: int, rest: memoryview) -> None:
    while len(rest):
        rest = rest[os.write(fd, rest) :]


def _read_exact(f, buf: np.ndarray, offset: int) -> None:
    """Fill ``buf`` from the (unbuffered) file ``f`` at ``offset``, straight into its memory."""
    view = memoryview(buf).cast("B")
    f.seek(offset)
    done = 0
    while done < len(view):
        k = f.readinto(view[done:])
        if not k:
            raise OSError(f"spill file {f.name} ended early: wanted {len(view)} bytes at {offset}, got {done}")
        done += k
