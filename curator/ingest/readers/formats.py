"""Format names, their aliases and file extensions, and ``discover`` (files and folders -> (path, format))."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from curator.errors import InputError, UsageError

FORMATS = ("jsonl", "csv", "tsv", "parquet", "text")
_FORMAT_ALIASES = {"jsonl": "jsonl", "json": "jsonl", "ndjson": "jsonl", "csv": "csv", "tsv": "tsv",
                   "parquet": "parquet", "text": "text", "txt": "text"}
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet",
               ".csv": "csv", ".tsv": "tsv", ".txt": "text", ".text": "text", ".md": "text"}
_COMPRESSIONS = (".gz", ".zst", ".bz2")


def _known_formats_text() -> str:
    exts = ", ".join(sorted(_EXTENSIONS))
    return (f"known extensions: {exts} (jsonl/csv/tsv/text may end in {', '.join(_COMPRESSIONS)}); "
            f"or name the format with --format ({', '.join(FORMATS)})")


def normalise_format(fmt: str) -> str:
    name = _FORMAT_ALIASES.get(fmt.strip().lower())
    if name is None:
        raise UsageError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return name


def _format_from_name(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if not suffixes:
        return None
    compressed = suffixes[-1] in _COMPRESSIONS
    if compressed:
        suffixes = suffixes[:-1]
        if not suffixes:
            return None
    fmt = _EXTENSIONS.get(suffixes[-1])
    if fmt == "parquet" and compressed:
        return None  # parquet compresses internally; a .parquet.gz cannot be read in a stream
    return fmt


def discover(paths: Sequence[str | Path], fmt: str | None = None) -> list[tuple[Path, str]]:
    """Expand files and folders into ``[(path, format)]``.

    Folders are walked recursively in sorted order, skipping hidden entries and (without ``fmt``) files of
    unknown extension. A file named directly must have a known extension unless ``fmt`` is given.
    The same file named twice is listed once.
    """
    forced = normalise_format(fmt) if fmt is not None else None
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[tuple[Path, str]] = []
    seen: set[Path] = set()

    def add(p: Path, f: str) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append((p, f))

    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise InputError("no such file or folder", file=str(p))
        if p.is_dir():
            found = 0
            for child in sorted(p.rglob("*")):
                rel = child.relative_to(p)
                if any(part.startswith(".") for part in rel.parts) or not child.is_file():
                    continue
                f = forced or _format_from_name(child)
                if f is None:
                    continue
                add(child, f)
                found += 1
            if not found:
                raise InputError(f"folder has no readable files; {_known_formats_text()}", file=str(p))
        elif p.is_file():
            f = forced or _format_from_name(p)
            if f is None:
                raise InputError(f"unknown file extension {''.join(p.suffixes) or '(none)'!r}; "
                                 f"{_known_formats_text()}", file=str(p))
            add(p, f)
        else:
            raise InputError("not a regular file or folder", file=str(p))
    return out
