"""sql/ and schemas/ ship inside the wheel and are found from an installed package, not only a checkout."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO
from tests.stats.test_kernels import _compiler


def test_wheel_carries_sql_and_schemas_and_finds_them(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(REPO)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("collapse_curator-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    repo_sql = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "sql").rglob("*.sql"))
    repo_schemas = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "schemas").glob("*.json"))
    assert repo_sql and repo_schemas
    for rel in repo_sql + repo_schemas:
        assert f"curator/{rel}" in names, f"{rel} missing from the wheel"
    # Unpack the wheel alone (no checkout beside it) and resolve the resources from there.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import curator.resources as r, curator.store.catalog as c, curator.store.schema as s;"
        "assert str(r.sql_dir()).startswith(%r), r.sql_dir();"
        "assert len(c.catalogue()) >= 1; s.table_schema('samples'); print('ok')" % str(site)
    )
    if _compiler():
        # The statistics engine's C loops are compiled into the wheel (a platform wheel) and load from it.
        assert "curator/stats/_kernels.so" in names and not wheel.name.endswith("-none-any.whl"), wheel.name
        code += ";import curator.stats.kernels as k; assert k.status().startswith('compiled'), k.status()"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin"},
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
