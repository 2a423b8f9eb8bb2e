"""Build hook: compile the statistics engine's C loops (curator/stats/_kernels.c) at install time.

The result is a plain shared library loaded with ctypes (no Python headers, no ABI tag of its
own). A wheel carries it as curator/stats/_kernels.so and is tagged for the platform; an editable
install writes it beside the source. Without a working C compiler the build goes on with a warning
and curator uses its numpy code (same results, slower): see curator/stats/kernels.py.
Set CC to choose the compiler, CURATOR_NO_KERNELS=1 to skip the build.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sysconfig
import tempfile
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("curator/stats/_kernels.c")
TARGET = "curator/stats/_kernels.so"
FLAGS = ["-O3", "-std=c99", "-fPIC", "-shared", "-Wall"]


def compile_kernels(root: Path, out: Path) -> str | None:
    """Compile the kernels into ``out``; returns None on success, else why it failed."""
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    cmd = [*cc, *FLAGS, "-o", str(out), str(root / SOURCE)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{shlex.join(cmd)}: {exc}"
    if done.returncode != 0:
        return f"{shlex.join(cmd)} exited {done.returncode}: {done.stderr.strip()[-2000:]}"
    return None


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel" or os.environ.get("CURATOR_NO_KERNELS") == "1":
            return
        root = Path(self.root)
        if version == "editable":
            out = root / TARGET
            error = compile_kernels(root, out)
        else:
            self._tmp = tempfile.TemporaryDirectory()
            out = Path(self._tmp.name) / "_kernels.so"
            error = compile_kernels(root, out)
            if error is None:
                build_data["force_include"][str(out)] = TARGET
                build_data["pure_python"] = False
                build_data["infer_tag"] = True
        if error is not None:
            self.app.display_warning(f"curator: compiled kernels not built, the numpy code will be used ({error})")

    def finalize(self, version: str, build_data: dict, artifact_path: str) -> None:
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            tmp.cleanup()
