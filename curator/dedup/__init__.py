"""Near-duplicate detection: MinHash signatures, LSH band keys and duplicate clusters (``minhash``)."""
from __future__ import annotations

from .minhash import MinHashConfig, band_keys, duplicate_of, jaccard, signatures

__all__ = ["MinHashConfig", "band_keys", "duplicate_of", "jaccard", "signatures"]
