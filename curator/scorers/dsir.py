"""DSIR importance weights (Xie et al. 2023, "Data Selection for Language Models via Importance
Resampling"), as ToEdit used them: how much more likely a sample is under a bag-of-hashed-n-grams
model of the human reference than under one of the candidate pool.

Features. A document's features are its word_v1 unigrams and bigrams (``curator.stats.tokenize``
and the n-gram hashes of ``curator.stats.ngrams``: bigrams never cross documents), each mapped to
``bucket = ngram_hash % buckets`` in one shared space of ``buckets`` (10,000) buckets, as DSIR's
``get_ngram_counts`` does with its unigram and bigram strings. Because the hashes and the modulus
are those of the n-gram statistics, bucket b here is bucket b of the ``ngram_buckets`` tables
(n = 1 and 2). A document of L tokens has ``n_features = L + max(L - 1, 0)`` feature occurrences.

Fit (``fit``, on the driver). Over the reference R (generation ``reference_generation``, origin
``reference_origin``: the human data) and the pool P (the samples of the generations being scored,
``context.target_generations``; every sample when that is None), count feature occurrences per
bucket, ``c_R[b]`` and ``c_P[b]``, and smooth with add-one (Laplace)::

    p_R(b) = (c_R[b] + 1) / (sum_b c_R + buckets)        p_P(b) likewise

Score. For a document x with feature occurrences f_1..f_k (buckets, repeats counted)::

    log_weight(x) = sum_{i=1..k} [log p_R(f_i) - log p_P(f_i)] = log (p_R(x) / p_P(x))

the log importance weight of x under the two bag-of-n-grams (naive Bayes) models; 0 for a document
without features. Higher = more reference-like. DSIR resamples the pool with probabilities
proportional to exp(log_weight) (Gumbel top-k); ToEdit found that selecting by these weights does
NOT undo the shift of synthetic data, so read them as a diagnostic and a baseline selector.
DSIR's own code adds 1e-8 inside the logs instead of smoothing counts; with add-one smoothing no
probability is 0, so nothing else is needed.

Provenance. The config hash covers the options (``reference_generation``, ``reference_origin``,
``buckets``), not the data the fit saw: the reference and the pool change as generations are added,
and scoring the same samples again under the same config can give other weights. So a ``dsir_v1``
row belongs to the run that wrote it (its ``run_id``) and to the reference generation in its config;
compare weights only within one run, and fit once per run over the generations being scored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import UsageError
from .base import ScoreContext, Scorer
from .registry import register

# Documents per tokenizer call while fitting: bounds the tokenizer's temporaries on a big reference.
_FIT_ROWS = 1 << 13


@dataclass(frozen=True)
class DsirConfig:
    reference_generation: int = 0  # the generation holding the target (human) distribution
    reference_origin: str = "human"  # the origin of the reference rows inside that generation
    buckets: int = 10_000  # hashed feature space shared by unigrams and bigrams (DSIR, ToEdit: 10,000)

    def __post_init__(self) -> None:
        if self.buckets < 1:
            raise ValueError(f"buckets must be >= 1, got {self.buckets}")


def features(texts: pa.Array | pa.ChunkedArray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Feature buckets of N documents: (buckets int64, document index int64), one entry per
    unigram and bigram occurrence (see the module doc), unigrams first."""
    from ..stats.tokenize import WordTokenizer
    from ..stats.values import ngram_hashes

    batch = WordTokenizer().encode(texts)
    offsets = np.asarray(batch.doc_offsets, dtype=np.int64)
    parts_bucket, parts_doc = [], []
    for n in (1, 2):
        hashes, pos = ngram_hashes(batch.hashes, offsets, n)
        parts_bucket.append((hashes % np.uint64(buckets)).astype(np.int64))
        # The document of an n-gram is the one its first token lies in.
        parts_doc.append(np.searchsorted(offsets, pos, side="right") - 1)
    return np.concatenate(parts_bucket), np.concatenate(parts_doc).astype(np.int64)


def bucket_counts(texts: pa.Array | pa.ChunkedArray, buckets: int) -> np.ndarray:
    """Feature occurrences per bucket (int64, length ``buckets``) over all the documents."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    counts = np.zeros(buckets, np.int64)
    for start in range(0, len(texts), _FIT_ROWS):
        b, _ = features(texts.slice(start, _FIT_ROWS), buckets)
        counts += np.bincount(b, minlength=buckets)
    return counts


def smoothed_log_probs(counts: np.ndarray) -> np.ndarray:
    """log p(b) = log((c_b + 1) / (sum c + B)): add-one (Laplace) smoothing, float64."""
    counts = np.asarray(counts, dtype=np.float64)
    return np.log(counts + 1.0) - np.log(counts.sum() + len(counts))


@register
class Dsir(Scorer):
    """DSIR log importance weight against the human reference (see the module doc)."""

    name = "dsir_v1"
    batch_size = 8192  # numpy over hashed features: large batches amortise the per-call cost
    description = ("DSIR log importance weight: sum over a document's hashed unigram+bigram features of "
                   "log p_reference - log p_pool (add-one smoothed bags of n-grams); higher = more reference-like")
    inputs = ("text",)
    columns = (pa.field("log_weight", pa.float64()), pa.field("n_features", pa.int64()))
    Config = DsirConfig

    def __init__(self, config: Any = None, **options: Any) -> None:
        super().__init__(config, **options)
        self.log_p_reference: np.ndarray | None = None
        self.log_p_pool: np.ndarray | None = None
        self.reference_counts: np.ndarray | None = None
        self.pool_counts: np.ndarray | None = None
        # What the fit saw (documents per side, the pool's generations), for the run's record.
        self.fit_summary: dict[str, Any] = {}

    def fit(self, context: ScoreContext) -> None:
        cfg = self.config
        reference = context.samples(generations=[cfg.reference_generation], origins=[cfg.reference_origin],
                                    columns=["text"])
        if reference.num_rows == 0:
            raise UsageError(f"scorer {self.name}: no reference samples in generation {cfg.reference_generation} "
                             f"with origin '{cfg.reference_origin}'; set reference_generation / reference_origin "
                             "to where the human data is")
        targets = context.target_generations
        pool = context.samples(generations=None if targets is None else list(targets), columns=["text"])
        self.fit_counts(reference.column("text"), pool.column("text"))
        self.fit_summary = {
            "reference_generation": cfg.reference_generation,
            "reference_origin": cfg.reference_origin,
            "reference_documents": reference.num_rows,
            "pool_generations": None if targets is None else list(targets),
            "pool_documents": pool.num_rows,
        }

    def fit_counts(self, reference_texts: pa.Array | pa.ChunkedArray, pool_texts: pa.Array | pa.ChunkedArray) -> None:
        """Fit from the two text columns directly (what `fit` does after reading them)."""
        buckets = self.config.buckets
        self.reference_counts = bucket_counts(reference_texts, buckets)
        self.pool_counts = bucket_counts(pool_texts, buckets)
        self.log_p_reference = smoothed_log_probs(self.reference_counts)
        self.log_p_pool = smoothed_log_probs(self.pool_counts)

    def score(self, batch: pa.Table) -> pa.Table:
        if self.log_p_reference is None or self.log_p_pool is None:
            raise UsageError(f"scorer {self.name} is not fitted: call fit(context) before score(batch)")
        n = batch.num_rows
        buckets, docs = features(batch.column("text"), self.config.buckets)
        log_diff = self.log_p_reference - self.log_p_pool
        # One weighted bincount sums every document's per-occurrence log ratios at once.
        log_weight = np.bincount(docs, weights=log_diff[buckets], minlength=n).astype(np.float64)
        n_features = np.bincount(docs, minlength=n).astype(np.int64)
        return pa.table({"log_weight": pa.array(log_weight, pa.float64()),
                         "n_features": pa.array(n_features, pa.int64())})
