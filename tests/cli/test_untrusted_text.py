"""User text reaches the terminal literally: Rich markup is not obeyed, control codes are cut.

A protocol name is the user's: ``[/bold]`` in it used to crash validate, run, list and show
with Rich's MarkupError, and ``\\x1b[2J`` in it cleared the screen of whoever listed the runs.
"""

from __future__ import annotations

import re

import pytest

from engine.cli.console import plain_text, safe_text
from engine.model.protocol_loader import resolve_protocol_path
from engine.run_dir import RUN_ID_PATTERN
from tests.cli.test_cli import amdsim
from tests.helpers import V1_PROTOCOL

# (name as written in the YAML file, double-quoted; what the terminal must show)
NAMES = [
    pytest.param(r"Clinic [/bold] protocol", "Clinic [/bold] protocol", id="markup"),
    pytest.param(r"Clinic \e[2J protocol \e]0;owned\a", "Clinic  protocol ", id="escapes"),
]


def _protocol_named(tmp_path, yaml_name: str):
    text = resolve_protocol_path(V1_PROTOCOL).read_text()
    text = re.sub(r"(?m)^name: .*$", lambda _: f'name: "{yaml_name}"', text)
    path = tmp_path / "clinic.yaml"
    path.write_text(text)
    return path


def _assert_clean(result, shown: str) -> None:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "\x1b" not in result.stdout + result.stderr
    assert "\x07" not in result.stdout + result.stderr
    assert shown in result.stdout


@pytest.mark.parametrize(("yaml_name", "shown"), NAMES)
def test_markup_and_control_characters_in_a_protocol_name_are_printed_literally(
    tmp_path, yaml_name, shown
):
    """validate and a small run print the name as written, markup and all, controls cut."""
    path = _protocol_named(tmp_path, yaml_name)
    _assert_clean(amdsim("validate", str(path)), f"clinic.yaml: valid - {shown} (")
    small = amdsim("run", "--protocol", str(path), "--patients", "50", "--years", "1")
    _assert_clean(small, f"{shown}: 50 patients x 1 years")


@pytest.mark.parametrize(("yaml_name", "shown"), NAMES)
def test_a_streaming_run_lists_and_shows_a_protocol_name_with_markup_literally(
    tmp_path, yaml_name, shown
):
    """A completed streaming run exits 0 (it exited 1), and list and show print the name."""
    path = _protocol_named(tmp_path, yaml_name)
    streaming = amdsim(
        "run", "--protocol", str(path), "--patients", "1500", "--years", "1", "--workers", "1"
    )
    _assert_clean(streaming, f"{shown}: 1,500 patients x 1 years")
    (run_id,) = [d.name for d in (tmp_path / "runs").iterdir() if RUN_ID_PATTERN.match(d.name)]
    _assert_clean(amdsim("list"), shown.strip())
    _assert_clean(amdsim("show", run_id), f"{run_id}  {shown}: 1,500 patients")


def test_an_error_quoting_markup_is_printed_literally(tmp_path):
    result = amdsim("validate", str(tmp_path / "[/bold] missing.yaml"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {tmp_path}/[/bold] missing.yaml: no such file")


def test_safe_text_cuts_terminal_control_and_escapes_markup():
    assert plain_text("a\x1b[2Jb\x1b]0;title\x07c\x9b31md\re\tf\ng\x00") == "abcde\tf\ng"
    assert plain_text("link \x1b]8;;http://x\x1b\\here\x1b]8;;\x1b\\") == "link here"
    assert safe_text("[red]x[/] :smile:") == r"\[red]x\[/] :smile:"
    assert safe_text("trailing\\") == "trailing\\\\"
