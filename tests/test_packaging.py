"""Packaging: the metadata, the licence and the declared dependencies tell the truth."""

from __future__ import annotations

import ast
import configparser
import re
import subprocess
import sys
from importlib.metadata import metadata, packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("amdsim", "engine", "ipc", "viz")


def _install_requires(extra: str | None = None) -> set[str]:
    """Distributions `install_requires` names (or, given `extra`, that optional extra)."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "setup.cfg")
    if extra is None:
        lines = config["options"]["install_requires"].split("\n")
    else:
        lines = config["options.extras_require"][extra].split("\n")
    return {re.split(r"[<>=!~ \[]", line.strip())[0].lower() for line in lines if line.strip()}


def _imported_top_level_names() -> dict[str, str]:
    """Every module imported anywhere in the shipped packages -> one file that imports it."""
    names: dict[str, str] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    found = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found = [node.module]
                else:
                    continue
                for name in found:
                    names.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return names


def test_python_dash_m_amdsim_runs_the_command_line():
    """`python -m amdsim` is the same command line as the `amdsim` console script."""
    done = subprocess.run(
        [sys.executable, "-m", "amdsim", "validate", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "usage: amdsim validate" in done.stdout
    version = subprocess.run(
        [sys.executable, "-m", "amdsim", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert version.returncode == 0 and version.stdout.startswith("amdsim ")


def test_the_license_file_matches_the_metadata():
    """The LICENSE file is the licence the package metadata names."""
    meta = metadata("amdsim")
    assert meta["License"] == "MIT"
    assert "License :: OSI Approved :: MIT License" in meta.get_all("Classifier")
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_the_classifiers_say_posix_only():
    """amdsim needs POSIX (fork, Unix sockets, /dev/shm): the classifiers say so."""
    systems = [c for c in metadata("amdsim").get_all("Classifier") if "Operating System" in c]
    assert systems and all(":: POSIX" in c or ":: MacOS" in c for c in systems)


def test_every_third_party_import_is_a_declared_dependency():
    """A module the shipped code imports comes from the stdlib, the project, install_requires
    or the optional `cluster` extra (Dask, imported only when a cluster is asked for: the test
    tests/cluster/test_planning.py checks that a local run never loads it)."""
    declared = _install_requires() | _install_requires("cluster")
    distributions = packages_distributions()
    undeclared = {}
    for name, where in _imported_top_level_names().items():
        if name in sys.stdlib_module_names or name in PACKAGES or name == "__future__":
            continue
        providers = {d.lower() for d in distributions.get(name, [name])}
        if not providers & declared:
            undeclared[name] = where
    assert not undeclared, f"imported but not in install_requires: {undeclared}"


def _pytest_addopts() -> list[str]:
    import shlex

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return shlex.split(config["tool:pytest"]["addopts"])


def test_coverage_names_engine_ipc_and_viz_and_never_a_bare_cov():
    """A bare --cov makes pytest-cov drop every --cov=PACKAGE: measure the three by name."""
    options = _pytest_addopts()
    assert "--cov" not in options
    assert {"--cov=engine", "--cov=ipc", "--cov=viz"} <= set(options)


def test_the_default_run_is_the_fast_suite_and_ci_runs_the_slow_one_after_it():
    """`pytest` deselects `slow`; .ci/run runs the README's command, then `pytest -m slow`."""
    options = _pytest_addopts()
    assert options[options.index("-m") + 1] == "not slow"
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index('bash -c "$test_command"') < ci.index("pytest -m slow")
