"""The ``mkutano`` command's surface: version, help for everything, exit codes, progress."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from deploy import cli
from deploy.embedded import free_port

REPO = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def _parsers(parser: argparse.ArgumentParser, path: str = "mkutano"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                assert helps.get(name), f"{path} {name}: no help in the command list"
                yield from _parsers(child, f"{path} {name}")


def test_every_command_and_option_has_help() -> None:
    seen = 0
    for path, parser in _parsers(cli.parser()):
        assert parser.description, f"{path}: no description"
        assert "exit codes:" in (parser.epilog or ""), f"{path}: exit codes not shown"
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, (
                f"{path} {action.option_strings or action.dest}: no help"
            )
            seen += 1
    assert seen > 30


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mkutano {VERSION}"
    # The installed entry point too (pyproject's [project.scripts]).
    entry = Path(sys.executable).parent / "mkutano"
    out = subprocess.run([str(entry), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"mkutano {VERSION}"


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["api-keys"]) == cli.EXIT_USAGE
    assert cli.main(["no-such-command"]) == cli.EXIT_USAGE
    assert cli.main(["--url", "x=http://h", "status"]) == cli.EXIT_USAGE
    assert cli.main(["--help"]) == 0
    assert "exit codes:" in capsys.readouterr().out


def test_exit_code_of_each_answer() -> None:
    assert cli.exit_code_for(404) == cli.EXIT_NOT_FOUND
    for status in (400, 401, 403, 409, 413, 415, 422, 429):
        assert cli.exit_code_for(status) == cli.EXIT_REFUSED
    for status in (502, 503, 504):
        assert cli.exit_code_for(status) == cli.EXIT_UNREACHABLE
    assert cli.exit_code_for(500) == cli.EXIT_FAILED
    assert len(set(cli.EXIT_CODES)) == 6


def test_exit_codes_are_documented() -> None:
    text = (REPO / "docs" / "operations.md").read_text()
    for code, meaning in cli.EXIT_CODES.items():
        word = meaning.split(":")[0]
        assert re.search(rf"\| `{code}` \| {word}\b", text), f"exit code {code} ({word})"


def test_status_reports_every_service_when_all_are_down(
    capsys: pytest.CaptureFixture[str],
) -> None:
    urls = [f"--url={s}=http://127.0.0.1:{free_port()}" for s in cli.SERVICES]
    assert cli.main([*urls, "--admin-key", "mk_x", "status"]) == cli.EXIT_UNREACHABLE
    import json

    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["service"] for x in lines] == list(cli.SERVICES)
    assert all(x["reachable"] is False for x in lines)


def test_csv_records_counts_data_rows() -> None:
    assert cli.csv_records(b"a,b\n1,2\n\n3,4\n") == 2
    assert cli.csv_records('\ufeffa,b\n1,"x\ny"\n'.encode()) == 1
    assert cli.csv_records(b"\xff\xfe") is None
