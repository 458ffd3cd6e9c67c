"""Fixtures for PSA tests: a bundled time-based protocol and a writer of uncertainty files."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.model.protocol_loader import load_protocol

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "engine" / "protocols" / "aflibercept_treat_and_extend_altair.yaml"
CALIBRATION = ROOT / "engine" / "protocols" / "aflibercept_2mg" / "calibration.json"
EXAMPLE = ROOT / "engine" / "psa" / "examples" / "aflibercept_uncertainty.yaml"


@pytest.fixture(scope="session")
def protocol():
    return load_protocol(PROTOCOL)


@pytest.fixture
def write_file(tmp_path):
    def write(text: str, name: str = "uncertainty.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
