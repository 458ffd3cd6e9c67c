"""`engine.profiling`: a profile is written whole, under a free name, with each thread it
was told about; writing one never fails the work it profiled."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import msgspec
import pytest

from engine.cli.profile_option import check_profile_dir
from engine.errors import FileSystemError, WorkerCrashedError, WriterFailedError
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol
from engine.pipeline import PipelineOptions, run_pipeline
from engine.profiling import ProcessProfile, ProfileTarget, merge_speedscope, write_new_file
from tests.helpers import V1_PROTOCOL


def _busy(seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        sum(i * i for i in range(1000))


def test_a_profile_of_the_same_name_never_replaces_an_earlier_one(tmp_path):
    first = write_new_file(tmp_path, ["worker-1", "worker-1-pid7"], ".speedscope.json", b"1")
    second = write_new_file(tmp_path, ["worker-1", "worker-1-pid7"], ".speedscope.json", b"2")
    assert (first.name, second.name) == (
        "worker-1.speedscope.json",
        "worker-1-pid7.speedscope.json",
    )
    assert first.read_bytes() == b"1" and second.read_bytes() == b"2"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, second.name])


def test_a_process_profile_names_a_second_one_after_its_pid(tmp_path):
    for _ in range(2):
        with ProcessProfile.of_process(
            ProfileTarget(directory=str(tmp_path), html=True, interval_s=0.001), "writer"
        ):
            _busy(0.02)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{stem}{suffix}"
        for stem in ("writer", f"writer-pid{os.getpid()}")
        for suffix in (".speedscope.json", ".html")
    )


def test_threads_registered_with_the_profile_are_profiles_of_the_same_file(tmp_path):
    profile = ProcessProfile.of_process(
        ProfileTarget(directory=str(tmp_path), interval_s=0.001), "writer"
    )
    with profile:

        def lane() -> None:
            with profile.thread("writer-lane-0"):
                _busy(0.05)

        thread = threading.Thread(target=lane)
        thread.start()
        _busy(0.05)
        thread.join()
    document = json.loads((tmp_path / "writer.speedscope.json").read_text())
    names = [p["name"] for p in document["profiles"]]
    assert names == [threading.current_thread().name, "writer-lane-0"]
    frames = document["shared"]["frames"]
    lane_frames = {frames[e["frame"]]["name"] for e in document["profiles"][1]["events"]}
    assert "lane" in lane_frames and "_busy" in lane_frames


def test_merging_shifts_each_documents_frames_past_those_before_it():
    def document(names: list[str]) -> dict:
        events = [{"type": "O", "at": 0.0, "frame": i} for i in range(len(names))]
        return {
            "$schema": "s",
            "shared": {"frames": [{"name": n} for n in names]},
            "profiles": [{"name": "x", "events": events}],
        }

    merged = merge_speedscope([("a", document(["f", "g"])), ("b", document(["h"]))])
    assert [f["name"] for f in merged["shared"]["frames"]] == ["f", "g", "h"]
    assert [p["name"] for p in merged["profiles"]] == ["a", "b"]
    assert merged["profiles"][1]["events"][0]["frame"] == 2


def test_a_profile_without_a_directory_does_nothing(tmp_path):
    with ProcessProfile.of_process(None, "worker-1") as profile:
        _busy(0.01)
    assert not profile.enabled and profile.written == []


def test_a_profile_that_cannot_be_written_warns_and_lets_the_work_end(tmp_path, caplog):
    gone = tmp_path / "gone"
    gone.mkdir()
    with (
        caplog.at_level(logging.WARNING),
        ProcessProfile.of_process(ProfileTarget(directory=str(gone)), "worker-1"),
    ):
        gone.rmdir()
    assert "could not write the profile" in caplog.text
    assert not gone.exists()


def test_an_unwritable_profile_directory_is_one_line_naming_the_option(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "p"))

    monkeypatch.setattr("tempfile.TemporaryFile", refuse)
    with pytest.raises(FileSystemError) as caught:
        check_profile_dir(tmp_path / "p")
    assert str(caught.value) == f"--profile {tmp_path / 'p'}: {tmp_path / 'p'}: permission denied"


def test_a_profile_directory_is_created_and_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checked = check_profile_dir(Path("deep/profiles"))
    assert checked == tmp_path / "deep/profiles" and checked.is_dir()
    assert list(checked.iterdir()) == []  # the probe file is gone


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (
            PipelineOptions(workers=2, worker_fail_shard=3, worker_fail_attempts=99),
            WorkerCrashedError,
        ),
        (
            PipelineOptions(workers=2, roll_bytes=100_000, writer_fail_after_bytes=350_000),
            WriterFailedError,
        ),
    ],
    ids=["worker-fails", "writer-fails"],
)
def test_a_failed_run_still_writes_every_process_profile(tmp_path, options, error):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    options = msgspec.structs.replace(options, profile=ProfileTarget(directory=str(profiles)))
    params = RunParameters(n_patients=12_000, years=3, seed=17, shard_size=1000)
    with pytest.raises(error):
        run_pipeline(load_protocol(V1_PROTOCOL), params, tmp_path / "run", options)
    names = sorted(p.name for p in profiles.iterdir())
    stems = sorted({n.split(".")[0] for n in names})
    assert "writer" in stems and "worker-1" in stems, names
    assert all(not n.startswith(".") for n in names), names
    for stem in stems:  # each readable; an idle worker may end before its first sample
        document = json.loads((profiles / f"{stem}.speedscope.json").read_text())
        assert document["profiles"][0]["events"] or stem != "writer", stem
