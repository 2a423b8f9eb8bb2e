"""Render a page in headless Chromium: a PNG screenshot (decoded here, stdlib + numpy) and the page's console
messages (Chromium logs each one, errors and uncaught exceptions included, as a `CONSOLE` line on stderr)."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> str | None:
    """The browser to use: $CHROMIUM, else the first of BINARIES on PATH."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env
    return next((path for name in BINARIES if (path := shutil.which(name))), None)


def render(binary: str, page: Path, png: Path, *, width: int = 1200, height: int = 1600) -> list[str]:
    """Screenshot `page` into `png`; returns the console messages the page produced."""
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--disable-extensions", "--enable-logging=stderr", "--v=0", f"--window-size={width},{height}",
           f"--screenshot={png}", page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HOME": str(png.parent)})  # a writable profile folder
    if not png.exists():
        raise AssertionError(f"chromium wrote no screenshot (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


def read_png(path: Path) -> np.ndarray:
    """An 8-bit RGB or RGBA PNG (non-interlaced, what Chromium writes) as a (height, width, channels) array."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    width, height, depth, ctype, _, _, interlace = header
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError(f"{path}: unsupported PNG (bit depth {depth}, colour type {ctype}, interlace {interlace})")
    bpp = 3 if ctype == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8).reshape(height, 1 + width * bpp)
    filters, rows = raw[:, 0], raw[:, 1:].astype(np.int32)
    out = np.zeros((height, width * bpp), dtype=np.int32)
    prev = np.zeros(width * bpp, dtype=np.int32)
    for y in range(height):
        line, f = rows[y], filters[y]
        if f == 0:
            cur = line
        elif f == 2:  # up
            cur = (line + prev) & 255
        elif f == 1:  # sub: a running sum per channel
            cur = (np.cumsum(line.reshape(width, bpp), axis=0) & 255).ravel()
        else:  # average, paeth: sequential along the row (plain lists: numpy scalar indexing is slow)
            cur_l, prev_l, n = line.tolist(), prev.tolist(), width * bpp
            for i in range(n):
                a = cur_l[i - bpp] if i >= bpp else 0
                b = prev_l[i]
                if f == 3:
                    cur_l[i] = (cur_l[i] + ((a + b) >> 1)) & 255
                else:
                    c = prev_l[i - bpp] if i >= bpp else 0
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    cur_l[i] = (cur_l[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            cur = np.array(cur_l, dtype=np.int32)
        out[y] = cur
        prev = cur
    return out.reshape(height, width, bpp).astype(np.uint8)
