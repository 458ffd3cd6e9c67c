"""The CLI called in the test's own process: the same output and exit codes as the console
script, without its ~2 s interpreter start, for tests that call it many times."""

from __future__ import annotations

import subprocess

import pytest

from engine.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """`amdsim ARGS` in this process: exit code, stdout and stderr, as `subprocess.run` gives."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["amdsim", *args], code, out, err)
