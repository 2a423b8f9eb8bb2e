"""Corpus statistics: tokenizers (``tokenize``) and n-gram statistics per group (``ngrams``)."""
from curator.stats.ngrams import (
    ALL_GROUPS,
    BUCKETS_SCHEMA,
    SAMPLE_SCHEMA,
    TOP_SCHEMA,
    TOTALS_SCHEMA,
    NgramAccumulator,
    NgramStats,
    compute_ngram_stats,
    ngram_hashes,
)
from curator.stats.tokenize import (
    HFTokenizer,
    TokenBatch,
    Tokenizer,
    WordTokenizer,
    get_tokenizer,
    mix64,
    tokenizer_choices,
    word_char_ranges,
)

__all__ = [
    "ALL_GROUPS",
    "BUCKETS_SCHEMA",
    "SAMPLE_SCHEMA",
    "TOP_SCHEMA",
    "TOTALS_SCHEMA",
    "HFTokenizer",
    "NgramAccumulator",
    "NgramStats",
    "TokenBatch",
    "Tokenizer",
    "WordTokenizer",
    "compute_ngram_stats",
    "get_tokenizer",
    "mix64",
    "ngram_hashes",
    "tokenizer_choices",
    "word_char_ranges",
]
