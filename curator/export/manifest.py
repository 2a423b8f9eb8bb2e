"""The manifest of an export (`_manifest.json` in its folder) and `verify`, which checks the files against it.

    {"manifest_version": 1, "export_id": ..., "selection": ..., "store": ..., "store_version": 7,
     "format": "parquet", "seed": 0, "tokenizer": null | {...}, "documents": N, "selected_rows": M,
     "shards": [{"shard": 0, "path": "shard-00000.parquet", "rows": ..., "bytes": ..., "sha256": ...,
                 "files": [{"path": ..., "bytes": ..., "sha256": ...}, ...]}, ...]}

Paths are relative to the folder, so an export can be moved or copied whole. `files` lists every file of
the shard (for tokens: the .bin, .idx and .sidecar.parquet; otherwise just the shard file); the shard's own
`path`/`bytes`/`sha256` are those of its main file (the one the `exports` table records).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CuratorError, UsageError

# A leading underscore: pyarrow and `datasets` skip it when they read the export folder as a Parquet dataset.
MANIFEST = "_manifest.json"
MANIFEST_VERSION = 1
_CHUNK = 1 << 20


class VerifyError(CuratorError):
    """An export's files do not match its manifest (exit status 1; the message names the files)."""


def file_digest(path: Path) -> tuple[int, str]:
    """(size in bytes, hex sha256) of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def file_entry(folder: Path, path: Path) -> dict[str, Any]:
    size, digest = file_digest(path)
    return {"path": path.relative_to(folder).as_posix(), "bytes": size, "sha256": digest}


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    path = folder / MANIFEST
    path.write_text(json.dumps({"manifest_version": MANIFEST_VERSION, **manifest}, indent=1, sort_keys=True) + "\n")
    return path


def read_manifest(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise UsageError(f"no export at '{folder}': {MANIFEST} not found")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise VerifyError(f"{path}: not valid JSON ({exc})") from exc
    version = manifest.get("manifest_version")
    if version != MANIFEST_VERSION:
        raise UsageError(f"{path}: manifest version {version!r}, this curator reads version {MANIFEST_VERSION}")
    return manifest


@dataclass
class VerifyReport:
    folder: str
    files: int = 0                      # files checked
    bytes: int = 0                      # bytes read
    problems: list[tuple[str, str]] = field(default_factory=list)  # (relative path, what is wrong)

    @property
    def ok(self) -> bool:
        return not self.problems

    def message(self) -> str:
        if self.ok:
            return f"ok: {self.files} file(s), {self.bytes:,} bytes match {Path(self.folder) / MANIFEST}"
        lines = [f"{len(self.problems)} of {self.files} file(s) in {self.folder} do not match {MANIFEST}:"]
        lines += [f"  {path}: {why}" for path, why in self.problems]
        return "\n".join(lines)


def verify(folder: str | Path) -> VerifyReport:
    """Recompute the size and sha256 of every file the manifest lists; report each one that differs."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    report = VerifyReport(str(folder))
    for shard in manifest.get("shards", []):
        for entry in shard.get("files") or [shard]:
            report.files += 1
            rel = entry["path"]
            path = folder / rel
            if not path.is_file():
                report.problems.append((rel, "missing"))
                continue
            size, digest = file_digest(path)
            report.bytes += size
            if size != entry["bytes"]:
                report.problems.append((rel, f"size {size:,} bytes, manifest says {entry['bytes']:,}"))
            elif digest != entry["sha256"]:
                report.problems.append((rel, f"sha256 {digest[:16]}..., manifest says {entry['sha256'][:16]}..."))
    return report
