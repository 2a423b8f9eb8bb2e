"""The `tokens` format: a flat token file per shard, document offsets and a provenance sidecar.

Per shard `shard-00000`:

- `shard-00000.bin`: every document's tokens followed by the tokenizer's eos token, documents back to back
  (nanoGPT's `train.bin`: read it with `np.memmap(path, dtype=manifest["tokenizer"]["dtype"], mode="r")`).
  uint16 when every id fits (vocabulary of at most 65,536), else uint32; little-endian.
- `shard-00000.idx`: int64 little-endian, documents + 1 values: document d is tokens ``[idx[d], idx[d+1])``
  of the `.bin` (Megatron-style start offsets, plus the end, so a reader needs no other file); the eos
  belongs to the document it ends.
- `shard-00000.sidecar.parquet`: one row per document in shard order: sample_id, copy, token_start,
  token_end (the same ranges as the `.idx`), so every token maps back to the sample it came from.

Documents are encoded without special tokens (`add_special_tokens=False`), truncation and padding off; eos
is appended by the exporter. A sample repeated by its weight is encoded once per shard and its tokens copied.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import UsageError

# Names of the end-of-text token in common tokenizers, tried when the folder's config does not name one.
_EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", "<|im_end|>", "[SEP]")
# Documents per encode_batch call: bounds the memory of the tokenizer's Encoding objects.
ENCODE_BATCH = 2048
SIDECAR_SCHEMA = pa.schema([
    pa.field("sample_id", pa.string(), nullable=False),
    pa.field("copy", pa.int32(), nullable=False),
    pa.field("token_start", pa.int64(), nullable=False),
    pa.field("token_end", pa.int64(), nullable=False),
])


@dataclass
class TokenizerInfo:
    tokenizer: Any           # a `tokenizers.Tokenizer`
    path: str
    name: str                # hf:<folder>@<sha256(tokenizer.json)[:12]>, as curator's n-gram tokenizer names it
    eos_token: str
    eos_id: int
    vocab_size: int
    dtype: str               # "uint16" or "uint32"

    def manifest(self) -> dict[str, Any]:
        return {"path": self.path, "name": self.name, "eos_token": self.eos_token, "eos_id": self.eos_id,
                "vocab_size": self.vocab_size, "dtype": self.dtype}


def _eos_from_config(folder: Path) -> str | None:
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        f = folder / name
        if f.is_file():
            try:
                eos = json.loads(f.read_text(encoding="utf-8")).get("eos_token")
            except (OSError, ValueError):
                continue
            if isinstance(eos, dict):
                eos = eos.get("content")
            if isinstance(eos, str) and eos:
                return eos
    return None


def load_tokenizer(path: str | Path) -> TokenizerInfo:
    """A Hugging Face `tokenizers` tokenizer from a folder holding tokenizer.json (or the file itself).

    The eos token is the folder's `tokenizer_config.json` eos_token, else the first of the usual names the
    vocabulary has."""
    from tokenizers import Tokenizer

    p = Path(path)
    file = p / "tokenizer.json" if p.is_dir() else p
    if not file.is_file():
        raise UsageError(f"no tokenizer at '{path}': expected a folder holding tokenizer.json, or the file itself")
    raw = file.read_bytes()
    try:
        tok = Tokenizer.from_str(raw.decode("utf-8"))
    except Exception as exc:  # tokenizers raises a bare Exception on a malformed file
        raise UsageError(f"cannot load tokenizer '{file}': {exc}") from exc
    # Shipped tokenizer.json files often enable truncation or padding, which would cut or pad documents.
    tok.no_truncation()
    tok.no_padding()
    eos = _eos_from_config(file.parent)
    if eos is None or tok.token_to_id(eos) is None:
        eos = next((c for c in _EOS_CANDIDATES if tok.token_to_id(c) is not None), None)
    if eos is None:
        raise UsageError(f"tokenizer '{file}' has no eos token: expected eos_token in tokenizer_config.json or "
                         f"one of {', '.join(_EOS_CANDIDATES)} in its vocabulary")
    vocab = tok.get_vocab_size(with_added_tokens=True)
    return TokenizerInfo(tokenizer=tok, path=str(file.resolve()),
                         name=f"hf:{file.resolve().parent.name}@{hashlib.sha256(raw).hexdigest()[:12]}",
                         eos_token=eos, eos_id=int(tok.token_to_id(eos)), vocab_size=vocab,
                         dtype="uint16" if vocab <= 1 << 16 else "uint32")


def encode(info: TokenizerInfo, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of `texts`, each followed by eos, flat; and the (len+1) document offsets."""
    dtype = np.dtype(info.dtype)
    parts, lengths = [], []
    for lo in range(0, len(texts), ENCODE_BATCH):
        # The tokenizer's batch API is list in, Encoding per document out: there is no columnar path.
        encodings = info.tokenizer.encode_batch_fast(texts[lo:lo + ENCODE_BATCH], add_special_tokens=False)
        n = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        ids = np.fromiter(chain.from_iterable(e.ids for e in encodings), dtype=dtype, count=int(n.sum()))
        parts.append((ids, n))
        lengths.append(n)
    lens = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    offsets = np.zeros(len(lens) + 1, np.int64)
    np.cumsum(lens + 1, out=offsets[1:])
    flat = np.full(int(offsets[-1]), info.eos_id, dtype=dtype)
    # Scatter each batch's ids into place, leaving the eos slot after every document.
    doc = 0
    for ids, n in parts:
        if len(n):
            dst = np.repeat(offsets[doc:doc + len(n)] - np.concatenate(([0], np.cumsum(n)[:-1])), n)
            flat[dst + np.arange(len(ids))] = ids
        doc += len(n)
    return flat, offsets


def gather(flat: np.ndarray, offsets: np.ndarray, which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Documents `which` (indices into the encoded set, repeats allowed) laid out back to back."""
    lens = offsets[1:][which] - offsets[:-1][which]
    out_off = np.zeros(len(which) + 1, np.int64)
    np.cumsum(lens, out=out_off[1:])
    src = np.repeat(offsets[:-1][which] - out_off[:-1], lens) + np.arange(int(out_off[-1]), dtype=np.int64)
    return flat[src], out_off


def write_shard(info: TokenizerInfo, texts: list[str], which: np.ndarray, sample_ids: pa.Array, copy: np.ndarray,
                stem: Path) -> dict[str, Path]:
    """Encode the shard's distinct `texts` once, lay out documents `which`, write .bin/.idx/.sidecar.parquet."""
    import pyarrow.parquet as pq

    flat, offsets = encode(info, texts)
    tokens, out_off = gather(flat, offsets, which)
    paths = {"bin": stem.with_suffix(".bin"), "idx": stem.with_suffix(".idx"),
             "sidecar": stem.with_suffix(".sidecar.parquet")}
    tokens.astype(tokens.dtype.newbyteorder("<"), copy=False).tofile(paths["bin"])
    out_off.astype("<i8", copy=False).tofile(paths["idx"])
    sidecar = pa.table({"sample_id": sample_ids, "copy": pa.array(copy, pa.int32()),
                        "token_start": pa.array(out_off[:-1]), "token_end": pa.array(out_off[1:])},
                       schema=SIDECAR_SCHEMA)
    pq.write_table(sidecar, paths["sidecar"], compression="zstd", compression_level=3, row_group_size=1 << 16,
                   write_statistics=["token_start", "token_end"], data_page_version="1.0", version="2.6")
    return paths
