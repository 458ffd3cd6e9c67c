"""Every public name of every package imports and says what it is."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
from pathlib import Path

import pytest

PACKAGES = ["engine", "engine.results", "ipc", "viz"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_imports_and_has_a_docstring(package):
    module = importlib.import_module(package)
    assert module.__doc__, f"{package} has no module docstring"
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{package}.{name} has no docstring"


def test_engine_exports_the_run_and_results_entry_points():
    import engine

    assert {
        "run_simulation",
        "SimulationResults",
        "InMemoryResults",
        "load_protocol",
        "AmdsimError",
    } <= set(engine.__all__)


def test_ci_runs_the_readme_test_command_and_the_readme_has_two_quick_start_commands():
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", quick_start, flags=re.S)
    assert len(blocks) == 2 and all(len(b.strip().splitlines()) == 1 for b in blocks)
    assert "amdsim run" in blocks[0] and "pytest" in blocks[1]
    ci = subprocess.run(
        ["bash", ".ci/run", "--print-test-command"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    )
    assert ci.stdout.strip() == blocks[1].strip()
