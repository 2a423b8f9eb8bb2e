"""datatrove's duplicate n-gram scan (``find_all_duplicate``), followed for every document of a slice at once.

For one n, datatrove walks the positions of a document left to right with a set of seen keys: at a key
seen before (a *hit*) it adds the n-gram's characters and jumps n words ahead, without recording the keys
it jumps over; at a new key it records the key and moves one word.

Three facts make that walk computable with a few numpy passes:

1. Only copies of keys that occur twice or more can be hits, and a copy is a hit exactly when the walk
   lands on it after some copy of its key was *visited* (landed on, not jumped over). Call a copy a
   *candidate* when an earlier copy of its key is visited. Given the candidates, the hits are a chain:
   the first candidate, then the first candidate at or after hit + n, and so on (``_chain``). The chain
   of one document never runs into the next one's: a document's last n-gram ends where the next one's
   first n-gram starts.
2. The chain moves n positions at a time through candidates, so it is followed per *column* (positions
   with the same remainder modulo n): a run of candidates p, p + n, p + 2n, ... is landed on from where
   the chain enters it to its end, and from the end the chain goes to the first candidate at or after
   end + n, in another column. ``_chain`` follows the runs by pointer doubling, from *sure* hits: a
   candidate with no candidate in the n - 1 positions before it is a hit whatever happens before it.
   On text looping on itself nearly every position is a candidate: the runs are long, and far fewer
   than the positions.
3. To know the candidates one needs the visited copies, which depend on the chain. Start from the guess
   "every copy after the first is a candidate": the first copy of a key is then visited unless a jump
   covers it, and the guess is wrong only for keys whose first copy is covered. Each wrong decision is
   fixed (a *correction*; a hit that becomes a record is followed by steps of one, and the copies there
   whose keys were not visited before are predicted to be records too), the chain is recomputed from the
   last hit before it to where it meets the old chain again, and the decisions that may be wrong now are
   checked: the copies whose visited state changed, the predictions, and the first visited copies of the
   keys where that moved (``_correct``). A document's walk depends only on what lies before, so the
   leftmost wrong decision of every document is right after its correction: the rounds end, at the
   latest, after as many rounds as a document has wrong decisions, and in practice after a handful (one
   or two for natural text). The rounds take every n at once: the n-grams of each n are a block of one
   position space.

Everything is exact: the result is the walk's only consistent state (every visited copy decided as its
key's visited copies before it say), which the rounds stop at.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .ngram_keys import Ngrams

__all__ = ["scan"]

_NONE = np.iinfo(np.int64).max  # "no position"
_SPARSE = 8  # fewer candidates than 1 position in this many: follow the chain candidate by candidate


def scan(ng: Ngrams, repeated: Iterable[tuple[int, np.ndarray, np.ndarray]]) -> dict[int, np.ndarray]:
    """datatrove's find_all_duplicate(words, n) for every document of the slice: characters per document,
    for each n.

    ``repeated`` yields (n, copies, starts): the positions of the n-grams whose key (their words
    concatenated) occurs twice or more in their document, key after key and ascending inside a key, and
    where each key's copies start in that list. (A key seen once is never a hit.)
    """
    state = _State(ng, list(repeated))
    fixes = state.wrong
    while len(fixes):
        fixes = _correct(state, fixes)
    out = {}
    for b, n in enumerate(state.ns.tolist()):
        hits = np.flatnonzero(state.hit[b * state.block : (b + 1) * state.block])
        out[n] = ng.per_doc(hits, ng.span_chars(hits, n).astype(np.float64))
    return out


class _State:
    """The walks of every n in one position space: block b holds the n-grams of n = ``ns[b]`` (position
    b * block + i is the n-gram at word i), followed by non-candidates.

    ``cand``, ``hit`` and ``visited`` (not inside a jump) are bools per position; ``sure`` (ascending)
    lists the hits that no candidate before them can change. The copies of repeated keys are listed key
    after key, ascending inside a key: key k's copies are ``copies[starts[k]:starts[k+1]]``,
    ``first_visited[k]`` is its first visited copy (``_NONE`` if none), and ``key_table`` gives the key of
    each copy (-1 elsewhere). Built under the guess "every copy after the first is a candidate"; ``wrong``
    lists the visited copies where that guess is wrong.
    """

    def __init__(self, ng: Ngrams, parts: list[tuple[int, np.ndarray, np.ndarray]]) -> None:
        self.ns = np.array([n for n, _, _ in parts], np.int64)
        top = int(self.ns.max(initial=1))
        self.block = block = (ng.n_words // top + 2) * top  # whole rows of n past the last n-gram, every n
        self.left = ng.left  # words left in the document from each word on
        size = block * len(parts)
        self.cand = np.zeros(size, bool)
        self.hit = np.zeros(size, bool)
        self.visited = np.ones(size, bool)
        self.key_table = np.full(size, -1, np.int32)
        all_copies, all_starts, all_sure, all_firsts, wrong = [], [], [], [], []
        keys = listed = 0
        for b, (n, copies, starts) in enumerate(parts):
            lo = b * block
            rows = (block - top) // n * n + n  # whole rows of n, the last one past the last n-gram
            key_of = self.key_table[lo : lo + block]
            key_of[copies] = np.repeat(np.arange(keys, keys + len(starts), dtype=np.int32),
                                       np.diff(np.append(starts, len(copies))))
            cand = self.cand[lo : lo + rows]
            np.greater_equal(key_of[:rows], 0, out=cand)
            cand[copies[starts]] = False
            hits, sure = _chain(cand, n)
            hit = self.hit[lo : lo + block]
            hit[hits] = True
            self.visited[lo : lo + block] = ~_jumped(hit, n)
            copies = copies + lo
            firsts = copies[starts]
            # The guess is wrong only for keys whose first copy is jumped over: their first visited copy is
            # a hit where it should be a record.
            hidden = np.flatnonzero(~self.visited[firsts])
            if len(hidden):
                firsts = firsts.copy()
                firsts[hidden] = _first_visited(copies, np.append(starts, len(copies)), hidden, self.visited)
                wrong.append(firsts[hidden][firsts[hidden] != _NONE])
            all_copies.append(copies)
            all_starts.append(starts + listed)
            all_sure.append(sure + lo)
            all_firsts.append(firsts)
            keys += len(starts)
            listed += len(copies)
        self.copies = np.concatenate(all_copies) if parts else np.zeros(0, np.int64)
        self.starts = np.append(np.concatenate(all_starts), listed) if parts else np.zeros(1, np.int64)
        self.sure = np.concatenate(all_sure) if parts else np.zeros(0, np.int64)
        self.first_visited = np.concatenate(all_firsts) if parts else np.zeros(0, np.int64)
        self.wrong = np.concatenate(wrong) if wrong else np.zeros(0, np.int64)

    def key_of(self, positions: np.ndarray) -> np.ndarray:
        """The key index of each position, -1 where it is not a copy."""
        return self.key_table[positions]


def _first_visited(copies: np.ndarray, starts: np.ndarray, keys: np.ndarray, visited: np.ndarray) -> np.ndarray:
    """The first visited copy of each key (``_NONE`` if every copy is jumped over)."""
    lo, hi = starts[keys], starts[keys + 1]
    at = copies[_ranges(lo, hi)]
    found = np.where(visited[at], at, _NONE)
    return np.minimum.reduceat(found, np.cumsum(hi - lo) - (hi - lo))


def _correct(state: _State, fixes: np.ndarray) -> np.ndarray:
    """Flip the candidate state of the positions ``fixes`` (visited copies decided wrongly), recompute the
    chain where that changes it, and return the positions decided wrongly now."""
    cand, block = state.cand, state.block
    fixes = _unique(fixes)
    records = fixes[cand[fixes]]
    cand[fixes] = ~cand[fixes]
    # A hit that becomes a record is followed by a step, not a jump: the next positions are records too
    # as long as their keys have no visited copy before (ahead of the rounds that would find them one by
    # one). They are predictions, checked like the other changes.
    guessed = _records_after(state, records)
    cand[guessed] = False
    fixes = _unique(np.concatenate((fixes, guessed)))
    n = state.ns[fixes // block]
    _update_sure(state, fixes, n)
    sure = state.sure
    # Before a fix nothing changes: the chain is recomputed from its last hit before the first fix of a
    # window (or the sure hit before it, if later) to the first sure hit more than n after the last fix (a
    # sure hit depends on the n - 1 positions before it only). Windows that overlap are merged.
    bounds = np.concatenate(([0], sure, [len(cand)]))  # bounds[j + 1] = sure[j], with both ends
    lo = np.maximum(bounds[np.searchsorted(sure, fixes)], _hit_before(state.hit, fixes, n))
    hi = bounds[np.searchsorted(sure, fixes + n, side="right") + 1]
    hi = np.minimum(hi, (fixes // block + 1) * block)
    hi = np.maximum.accumulate(hi)
    new = np.ones(len(lo), bool)
    new[1:] = lo[1:] >= hi[:-1]
    start = np.flatnonzero(new)
    last = np.append(start[1:], len(fixes)) - 1
    lo, hi, n = lo[start], hi[last], n[start]
    first_fix, last_fix = fixes[start], fixes[last]
    hits, window, until = _rechain(state, lo, hi, last_fix, n)
    none = until == _NONE
    until[none] = hi[none]
    # Only the positions from the first fix to where the new chain meets the old one (if it does before the
    # window's end) change.
    hits = hits[(hits >= first_fix[window]) & (hits < until[window])]
    where = _ranges(first_fix, until)
    was_visited = state.visited[where]
    state.hit[where] = False
    state.hit[hits] = True
    now_visited = np.ones(len(where), bool)
    n_where = state.ns[where // block]
    for j in range(1, int(state.ns.max())):
        now_visited &= ~state.hit[where - j] | (j >= n_where)  # (a block starts with no hit before it)
    state.visited[where] = now_visited

    changed = where[was_visited != now_visited]
    key = state.key_of(changed)
    changed, key = changed[key >= 0], key[key >= 0]
    # A key's first visited copy moves earlier where a copy before it became visited; it must be looked up
    # again where it was jumped over.
    first_visited = state.first_visited
    seen = state.visited[changed]
    lost = _unique(key[~seen & (first_visited[key] == changed)])
    keys = _unique(key)
    old = first_visited[keys]
    np.minimum.at(first_visited, key[seen], changed[seen])
    if len(lost):
        first_visited[lost] = _first_visited(state.copies, state.starts, lost, state.visited)
    moved = first_visited[keys] != old
    # Decisions to check: copies whose visited state changed, and the old and new first visited copies of
    # the keys whose first visited copy moved (every copy strictly between them is jumped over).
    check = np.concatenate((changed[seen], old[moved], first_visited[keys[moved]], guessed))
    check = check[check != _NONE]
    check = check[state.visited[check]]
    want = first_visited[state.key_of(check)] < check
    return check[cand[check] != want]


def _records_after(state: _State, records: np.ndarray) -> np.ndarray:
    """The candidates in the steps after each new record that are records as well: reached one position
    at a time after it, with no copy of their key visited before the record nor in the steps between."""
    if not len(records):
        return records
    reach = 2 * int(state.ns.max())
    ahead = records[:, None] + np.arange(1, reach + 1)
    ahead = np.minimum(ahead, len(state.cand) - 1)
    key = state.key_of(ahead)
    cand = state.cand[ahead]
    seen_before = state.first_visited[np.maximum(key, 0)] < records[:, None]
    # a key met earlier in the steps (or at the record itself) was recorded there: a hit
    keys_so_far = np.concatenate((state.key_of(records)[:, None], key), axis=1)
    again = ((key[:, :, None] == keys_so_far[:, None, :]) & np.tri(reach, reach + 1, dtype=bool)).any(axis=2)
    hit = cand & (seen_before | again)
    word = ahead % state.block
    hit |= state.left[np.minimum(word, len(state.left) - 1)] < state.ns[ahead // state.block]  # the document ends
    going = np.logical_and.accumulate(~hit, axis=1)
    return ahead[going & cand]


def _rechain(state: _State, lo: np.ndarray, hi: np.ndarray, last_fix: np.ndarray,
             n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The chain over the candidates of the windows [lo, hi) (each starting at a hit or a sure hit, so
    with a known state): its hits, their window, and per window the first hit after its last fix that
    the old chain has too (``_NONE`` if none)."""
    # The windows' candidates side by side: a window never reaches into the next.
    where = _ranges(lo, hi)
    is_cand = state.cand[where]
    at = where[is_cand]
    window = np.repeat(np.arange(len(lo)), hi - lo)[is_cand]
    hit = _chain_sparse(at, n[window], window)
    hits, window = at[hit], window[hit]
    until = np.full(len(lo), _NONE)
    common = (hits > last_fix[window]) & state.hit[hits]
    np.minimum.at(until, window[common], hits[common])
    return hits, window, until


def _update_sure(state: _State, fixes: np.ndarray, n: np.ndarray) -> None:
    """Whether a position is a sure hit (a candidate with no candidate in the n - 1 positions before it)
    changes only within n positions after a changed candidate: look again there."""
    cand, top = state.cand, int(state.ns.max())
    # Around each fix, positions fix - top + 1 .. fix + top, and the candidates strictly before each.
    offsets = np.arange(-top + 1, top + 1)
    around = fixes[:, None] + offsets
    c = cand[np.maximum(around, 0)] & (around >= 0)
    before = np.cumsum(c, axis=1)
    before -= c
    k = np.arange(top - 1, 2 * top)  # columns of fix .. fix + top
    back = before[:, k] - np.take_along_axis(before, np.maximum(k - n[:, None] + 1, 0), axis=1)
    near = around[:, k]
    is_sure = c[:, k] & (back == 0)
    look = offsets[k] <= n[:, None]  # fix .. fix + n
    add = _unique(near[look & is_sure])
    near = np.sort(near[look])  # (with repeats where fixes are close)
    sure = state.sure
    at = np.searchsorted(near, sure)
    stale = near[np.minimum(at, len(near) - 1)] == sure
    sure = sure[~stale]
    state.sure = np.insert(sure, np.searchsorted(sure, add), add)


def _hit_before(hit: np.ndarray, positions: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The last hit in the 4n positions before each position (0 where there is none)."""
    back = positions[:, None] - np.arange(1, 4 * int(n.max()) + 1)
    found = hit[np.maximum(back, 0)] & (back >= 0) & (back >= positions[:, None] - 4 * n[:, None])
    first = found.argmax(axis=1)
    return np.where(found.any(axis=1), back[np.arange(len(positions)), first], 0)


def _chain(cand: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The hits of the walk over the candidates ``cand`` (bool per position; a multiple of n long, the last
    n entries False): the first candidate, then repeatedly the first candidate at or after hit + n.
    Returns the hits (unordered) and the sure hits (ascending).

    Runs of candidates in one column (p, p + n, ...) are the nodes: the chain lands on a run from where it
    enters to its end, then goes to the run of the first candidate at or after end + n. A run whose first
    candidate has no candidate in the n - 1 positions before it is entered there whatever comes before:
    it is sure, and the runs reached from the sure ones by doubling are the chain's.
    """
    count = np.count_nonzero(cand)
    if count * _SPARSE < len(cand):
        at = np.flatnonzero(cand)
        hits = at[_chain_sparse(at, np.full(len(at), n), None)]
        sure = np.ones(len(at), bool)
        sure[1:] = np.diff(at) >= n
        return hits, at[sure]
    rows = len(cand) // n
    # Column-major, a False before each column: runs of True in `flat` are the runs of the columns.
    grid = np.zeros((n, rows + 1), bool)
    grid[:, 1:] = cand.reshape(rows, n).T
    flat = grid.ravel()
    change = flat[1:] != flat[:-1]
    edges = np.flatnonzero(change) + 1
    run_start, run_end = edges[0::2], edges[1::2] - 1  # flat indices of each run's first and last element
    change &= flat[1:]
    run_of = np.cumsum(change, dtype=np.int32)  # run_of[f - 1] - 1: the run holding flat index f
    col = run_start // (rows + 1)
    head = (run_start % (rows + 1) - 1) * n + col
    tail = (run_end % (rows + 1) - 1) * n + col
    runs = len(head)
    # Runs of consecutive candidates (row-major): the first candidate at or after a non-candidate is one's start.
    step = np.flatnonzero(cand[1:] != cand[:-1]) + 1
    if cand[0]:
        step = np.concatenate(([0], step))
    block_start, block_end = step[0::2], step[1::2]
    # From a run's tail the chain goes to tail + n (not a candidate), then to the next block's start.
    k = np.searchsorted(block_start, tail + n)
    more = k < len(block_start)
    land = block_start[np.minimum(k, len(block_start) - 1)]
    succ = np.full(runs + 1, runs)  # `runs`: past the end, maps to itself
    succ[:runs][more] = run_of[(land[more] % n) * (rows + 1) + land[more] // n] - 1
    sure = np.ones(len(block_start), bool)
    sure[1:] = block_start[1:] - block_end[:-1] >= n - 1
    sure_pos = block_start[sure]
    on = np.zeros(runs + 1, bool)
    on[run_of[(sure_pos % n) * (rows + 1) + sure_pos // n] - 1] = True
    on[runs] = True
    members = _reach(succ, on)
    # Where each run on the chain is entered: from its predecessor on the chain, or at its head if sure.
    entry = head.copy()
    from_run = members[succ[members] < runs]
    entry[succ[from_run]] = land[from_run]
    count = (tail[members] - entry[members]) // n + 1
    first = np.cumsum(count) - count
    hits = np.repeat(entry[members] - n * first, count) + n * np.arange(int(count.sum()))
    return hits, sure_pos


def _chain_sparse(cand: np.ndarray, n: np.ndarray, group: np.ndarray | None) -> np.ndarray:
    """``_chain`` candidate by candidate: the indices of the hits among the candidates ``cand`` (ascending
    positions; n per candidate). The first candidate (of each ``group``, if given) is a hit, and the one
    after a hit at p is the first candidate at or after p + n (in its group)."""
    m = len(cand)
    if not m:
        return np.zeros(0, np.int64)
    on = np.zeros(m + 1, bool)
    on[0] = on[m] = True  # m: past the end, maps to itself
    np.greater_equal(np.diff(cand), n[1:], out=on[1:m])  # nothing within n before: a sure hit
    jump = np.append(np.searchsorted(cand, cand + n), m)
    if group is not None:
        # A group's chain starts at its first candidate and stops at its last (the next group's first is
        # marked already: jumping there reaches nothing new).
        new = np.flatnonzero(group[1:] != group[:-1]) + 1
        on[new] = True
        bounds = np.concatenate(([0], new, [m]))
        np.minimum(jump[:m], np.repeat(bounds[1:], np.diff(bounds)), out=jump[:m])
    if on.all():
        return np.arange(m)
    return _reach(jump, on)


def _reach(succ: np.ndarray, on: np.ndarray) -> np.ndarray:
    """The nodes reached from the nodes marked in ``on`` (changed) along ``succ`` (a forward graph whose
    last node maps to itself), ascending.

    Invariant: ``members`` holds every node reached from a marked node in fewer than 2**j steps and
    ``jump`` takes 2**j steps; reaching nothing new means every node reached is a member."""
    jump = succ
    members = np.flatnonzero(on[:-1])
    while True:
        reached = jump[members]
        fresh = reached[~on[reached]]
        if not len(fresh):
            return members
        on[fresh] = True
        members = np.flatnonzero(on[:-1])
        jump = jump[jump]


def _jumped(hit: np.ndarray, n: int) -> np.ndarray:
    """Bool per position: inside the jump of a hit (hit < position < hit + n)."""
    out = np.zeros(len(hit), bool)
    for j in range(1, n):
        out[j:] |= hit[:-j]
    return out


def _unique(values: np.ndarray) -> np.ndarray:
    """The distinct values, ascending (a sort: numpy's hash-based unique is slow on small arrays)."""
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if len(values) else values


def _ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The concatenated ranges lo[i]..hi[i]-1."""
    length = hi - lo
    first = np.cumsum(length) - length
    return np.repeat(lo - first, length) + np.arange(int(length.sum()))
