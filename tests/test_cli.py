"""Every command has help text and appears in the README; errors are one clear line with an exit code."""
from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from curator.cli import cli
from tests.conftest import REPO, run_cli, write_jsonl

COMMANDS = sorted(cli.commands)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_and_is_in_readme(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"], obj={})
    assert result.exit_code == 0, result.output
    assert cli.commands[command].help and len(cli.commands[command].help.strip()) > 20
    readme = (REPO / "README.md").read_text()
    assert re.search(rf"curator( --store \S+)? {command}\b", readme), f"`curator {command}` is not documented in README.md"


def test_top_level_help() -> None:
    result = CliRunner().invoke(cli, ["--help"], obj={})
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


def test_errors_are_one_line_with_exit_codes(tmp_path) -> None:
    proc = run_cli("--store", str(tmp_path / "none"), "sql", "SELECT 1", check=False)
    assert proc.returncode == 3 and proc.stderr.startswith("error: no curator store")
    bad = write_jsonl(tmp_path / "x.jsonl", [{"text": "fine"}])
    bad.write_text(bad.read_text() + "{not json\n")
    proc = run_cli("--store", str(tmp_path / "s"), "ingest", str(bad), "-g", "0", "--origin", "human", check=False)
    assert proc.returncode == 2
    assert f"{bad}:2:" in proc.stderr
    assert "Traceback" not in proc.stderr
