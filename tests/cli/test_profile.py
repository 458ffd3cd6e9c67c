"""`amdsim run --profile DIR`: one readable speedscope profile per process, whatever the end,
no temporary file, no process left behind; a bad DIR is refused before anything starts."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from engine.manifest import read_manifest
from ipc.metrics import MetricsSubscriber
from tests.cli.test_cli import AMDSIM, amdsim

SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"


class _Run:
    """The CLI in a subprocess, with every descendant it had, sampled every 20 ms from a
    thread until it exits (children can come and go between two looks)."""

    def __init__(self, *args: str) -> None:
        if AMDSIM is None:
            pytest.fail("the amdsim console script is not installed (pip install -e .)")
        self.process = subprocess.Popen(
            [AMDSIM, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.descendants: set[int] = set()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        parent = psutil.Process(self.process.pid)
        while self.process.poll() is None:
            with contextlib.suppress(psutil.Error):
                self.descendants.update(c.pid for c in parent.children(recursive=True))
            time.sleep(0.02)

    def wait(self, timeout_s: float = 120.0) -> str:
        """Its stderr, once it has exited."""
        _, err = self.process.communicate(timeout=timeout_s)
        self._sampler.join()
        return err

    def alive_descendants(self, timeout_s: float = 5.0) -> set[int]:
        """Descendants still running after `timeout_s` (zombies count as gone)."""
        deadline = time.monotonic() + timeout_s
        alive = set(self.descendants)
        while alive and time.monotonic() < deadline:
            alive = {pid for pid in alive if _running(pid)}
            time.sleep(0.05)
        return alive


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _profiles(directory: Path, html: bool = False) -> dict[str, dict]:
    """Every speedscope file in `directory` by name stem, checked to be speedscope with
    samples; fails on any other file (a temporary one, or an HTML page not asked for)."""
    names = sorted(p.name for p in directory.iterdir())
    stems = {n.removesuffix(".speedscope.json") for n in names if n.endswith(".speedscope.json")}
    suffixes = (".speedscope.json", ".html") if html else (".speedscope.json",)
    assert names == sorted(f"{s}{suffix}" for s in stems for suffix in suffixes)
    documents = {}
    for stem in stems:
        document = json.loads((directory / f"{stem}.speedscope.json").read_text())
        assert document["$schema"] == SPEEDSCOPE_SCHEMA
        assert document["shared"]["frames"], stem
        assert all(profile["events"] for profile in document["profiles"]), stem
        documents[stem] = document
    return documents


def _frame_names(document: dict) -> set[str]:
    return {frame["name"] for frame in document["shared"]["frames"]}


def test_profile_writes_one_speedscope_file_per_process_and_leaves_nothing_running(tmp_path):
    profiles = tmp_path / "profiles"
    run = _Run(
        "run",
        "--patients",
        "40000",
        "--years",
        "2",
        "--workers",
        "2",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--profile",
        str(profiles),
        "--profile-html",
    )
    err = run.wait()
    assert run.process.returncode == 0, err
    assert len(run.descendants) >= 3, "the run's processes were not seen"
    assert not run.alive_descendants()
    documents = _profiles(profiles, html=True)
    assert set(documents) == {"supervisor", "worker-1", "worker-2", "writer"}
    assert "pyinstrument" in (profiles / "worker-1.html").read_text()
    for worker in ("worker-1", "worker-2"):
        assert "_serve" in _frame_names(documents[worker])
    assert "_loop" in _frame_names(documents["supervisor"])
    # The writer's file holds its main thread and each lane thread.
    assert [p["name"] for p in documents["writer"]["profiles"]][1:] == ["writer-lane-0"]
    assert f"4 profiles in {profiles}" in err


def test_ctrl_c_still_writes_every_process_profile(tmp_path):
    profiles = tmp_path / "profiles"
    runs = tmp_path / "runs"
    run = _Run(
        "run",
        "--patients",
        "5000000",
        "--workers",
        "1",
        "--runs-dir",
        str(runs),
        "--profile",
        str(profiles),
    )
    _wait_for_progress(runs)
    run.process.send_signal(signal.SIGINT)
    err = run.wait(timeout_s=60)
    assert run.process.returncode == 130, err
    assert not run.alive_descendants()
    assert set(_profiles(profiles)) == {"supervisor", "worker-1", "writer"}


def _wait_for_progress(runs: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        manifests = list(runs.glob("*/manifest.json"))
        if manifests:
            try:
                subscriber = MetricsSubscriber(read_manifest(manifests[0]).metrics_address)
            except (OSError, ValueError):
                time.sleep(0.05)
                continue
            with subscriber:
                for sample in subscriber:
                    if sample.patients_done > 0:
                        return
            pytest.fail("the run ended before it made progress")
        time.sleep(0.05)
    pytest.fail("the run made no progress within 60 s")


def test_a_second_run_into_the_same_directory_keeps_the_first_ones_profiles(tmp_path):
    profiles = tmp_path / "profiles"
    for _ in range(2):
        result = amdsim("run", "--patients", "300", "--years", "1", "--profile", str(profiles))
        assert result.returncode == 0, result.stderr
    stems = set(_profiles(profiles))
    assert len(stems) == 2 and "supervisor" in stems
    (second,) = stems - {"supervisor"}
    assert second.startswith("supervisor-pid")


@pytest.mark.parametrize("under", ["", "/sub"], ids=["is-a-file", "under-a-file"])
def test_profile_into_a_file_prints_one_line_exits_2_and_starts_nothing(tmp_path, under):
    in_the_way = tmp_path / "notes.txt"
    in_the_way.write_text("not a directory")
    runs = tmp_path / "runs"
    result = amdsim(
        "run", "--patients", "5000", "--runs-dir", str(runs), "--profile", f"{in_the_way}{under}"
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: --profile {in_the_way}{under}: {in_the_way} is a file, not a directory"
    ]
    assert not runs.exists()


@pytest.mark.parametrize("flag", [["--profile-html"], ["--profile-interval", "5"]])
def test_profile_settings_without_profile_are_refused(flag):
    result = amdsim("run", "--patients", "300", *flag)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {flag[0]} needs --profile DIR"]


def test_a_profile_interval_that_is_not_milliseconds_is_a_usage_error(tmp_path):
    result = amdsim("run", "--profile", str(tmp_path), "--profile-interval", "0")
    assert result.returncode == 2
    assert "'0' is not a number of milliseconds (0-1000]" in result.stderr
