"""`amdsim list`, `show`, `patient`, `delete`, `cleanup`, `resume` and `run --restart`."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

from engine.cli import main
from engine.errors import RunPathError
from engine.manifest import write_manifest
from engine.pipeline import resume_run
from engine.registry import Registry
from engine.results import ParquetResults
from ipc.segments import SHM_DIR
from tests.cli.test_cli import AMDSIM, amdsim
from tests.engine.test_registry import manifest as registry_manifest
from tests.read_only import read_only_directory

PATIENTS = 3_000


def start_run(runs: Path, seed: int, *extra: str) -> dict:
    result = amdsim(
        "run",
        "--patients",
        str(PATIENTS),
        "--years",
        "2",
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--runs-dir",
        str(runs),
        "--json",
        *extra,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, dict, dict]:
    """A runs root with two finished runs (seeds 1 and 2)."""
    root = tmp_path_factory.mktemp("runs")
    first = start_run(root, 1)
    time.sleep(1.0)  # run ids carry the second they were made in
    second = start_run(root, 2, "--protocol", "ranibizumab_prn_monthly")
    return root, first, second


def test_list_shows_every_run_newest_first_and_filters(runs):
    root, first, second = runs
    table = amdsim("list", "--runs-dir", str(root))
    assert table.returncode == 0, table.stderr
    assert table.stdout.index(second["run_id"]) < table.stdout.index(first["run_id"])
    assert "completed" in table.stdout and f"{PATIENTS:,} x 2y" in table.stdout

    def listed(*args: str) -> list[str]:
        result = amdsim("list", "--runs-dir", str(root), "--json", *args)
        assert result.returncode == 0, result.stderr
        return [entry["run_id"] for entry in json.loads(result.stdout)]

    assert listed() == [second["run_id"], first["run_id"]]
    assert listed("ranibizumab") == [second["run_id"]]
    assert listed("--status", "failed") == []
    assert listed("--status", "completed", first["run_id"][:-2]) in (
        [first["run_id"]],
        [second["run_id"], first["run_id"]],
    )
    assert listed("--since", "2000-01-01", "--until", "2999-12-31") == listed()
    assert listed("--until", "2000-01-01") == []
    assert listed("--min-size", "1G") == []
    assert listed("--max-size", "1G") == listed()
    bad = amdsim("list", "--runs-dir", str(root), "--min-size", "lots")
    assert bad.returncode == 2 and "is not a size" in bad.stderr


def test_show_prints_outcomes_distributions_and_storage(runs):
    root, first, _ = runs
    result = amdsim("show", first["run_id"], "--runs-dir", str(root))
    assert result.returncode == 0, result.stderr
    for label in (
        "Outcomes",
        "Mean final VA",
        "Distributions",
        "VA final (letters)",
        "injections per year",
        "Storage",
        "Parquet on disk",
        "Compression ratio",
        "Bytes per visit",
    ):
        assert label in result.stdout, label
    document = json.loads(amdsim("show", first["run_id"], "--runs-dir", str(root), "--json").stdout)
    assert document["storage"] == "parquet" and document["status"] == "completed"
    assert document["patients_stored"] == PATIENTS
    assert document["summary"]["visits"] == first["summary"]["visits"]
    assert document["bytes_on_disk"] == first["bytes_on_disk"]
    assert document["compression_ratio"] > 2
    quantiles = document["va_quantiles"]["final"]
    assert list(quantiles.values()) == sorted(quantiles.values())


def test_show_opens_saved_in_memory_results_as_memory_storage(tmp_path):
    saved = tmp_path / "small"
    made = amdsim("run", "--patients", "300", "--years", "1", "--out", str(saved))
    assert made.returncode == 0, made.stderr
    document = json.loads(amdsim("show", str(saved), "--json").stdout)
    assert document["storage"] == "memory"
    assert document["patients_stored"] == 300
    assert document["bytes_in_memory"] > 0 and document["bytes_on_disk"] > 0


def test_patient_prints_the_row_and_the_visit_timeline(runs):
    root, first, _ = runs
    result = amdsim("patient", first["run_id"], "1234", "--runs-dir", str(root))
    assert result.returncode == 0, result.stderr
    assert "Patient 1234" in result.stdout and "Visits" in result.stdout
    document = json.loads(
        amdsim("patient", first["run_id"], "1234", "--runs-dir", str(root), "--json").stdout
    )
    with ParquetResults(root / first["run_id"]) as results:
        record = results.get_patient(1234)
        # Float32 columns (a time-based run's age) are shown to two decimals.
        shown = {k: round(v, 2) if isinstance(v, float) else v for k, v in record.patient.items()}
        assert document["patient"] == shown
        assert document["visits"] == record.visits.to_pylist()
    missing = amdsim("patient", first["run_id"], str(PATIENTS), "--runs-dir", str(root))
    assert missing.returncode == 2
    assert f"patient {PATIENTS} is not in this run (ids 0..{PATIENTS - 1})" in missing.stderr


def test_runs_are_named_by_id_unique_prefix_or_path_and_bad_names_say_why(runs):
    root, first, second = runs
    by_path = amdsim("show", str(root / first["run_id"]), "--json")
    assert json.loads(by_path.stdout)["run_id"] == first["run_id"]
    a, b = first["run_id"], second["run_id"]
    shared = next(a[:i] for i in range(len(a), 0, -1) if b.startswith(a[:i]))
    ambiguous = amdsim("show", shared, "--runs-dir", str(root))
    assert ambiguous.returncode == 1 and "matches 2 runs" in ambiguous.stderr
    unknown = amdsim("show", "nope", "--runs-dir", str(root))
    assert unknown.returncode == 1 and "no run 'nope'" in unknown.stderr
    assert "Traceback" not in ambiguous.stderr + unknown.stderr


def test_resume_of_a_finished_run_says_there_is_nothing_to_resume(runs):
    root, first, _ = runs
    result = amdsim("resume", first["run_id"], "--runs-dir", str(root))
    assert result.returncode == 1
    assert "is already complete; there is nothing to resume" in result.stderr


def test_restart_reruns_a_run_with_its_own_settings(tmp_path):
    root = tmp_path / "runs"
    original = start_run(root, 7)
    clash = amdsim(
        "run", "--restart", original["run_id"], "--patients", "5000", "--runs-dir", str(root)
    )
    assert clash.returncode == 2 and "drop --patients" in clash.stderr
    result = amdsim("run", "--restart", original["run_id"], "--runs-dir", str(root), "--json")
    assert result.returncode == 0, result.stderr
    again = json.loads(result.stdout)
    assert again["run_id"] == original["run_id"] and again["status"] == "completed"
    assert again["summary"] == original["summary"]
    assert [p.name for p in root.iterdir() if p.is_dir()] == [original["run_id"]]


def test_delete_and_cleanup_remove_runs_orphans_and_nothing_else(tmp_path):
    root = tmp_path / "runs"
    doomed = start_run(root, 1)["run_id"]
    later = start_run(root, 2)["run_id"]
    kept = start_run(root, 3)["run_id"]
    orphan = root / "20200101-000000-abcd"
    orphan.mkdir()
    os.utime(orphan, (time.time() - 3600,) * 2)

    deleted = amdsim("delete", doomed, "--runs-dir", str(root))
    assert deleted.returncode == 0 and f"deleted {doomed}" in deleted.stdout
    assert not (root / doomed).exists()
    marked = amdsim("delete", later, "--later", "--runs-dir", str(root))
    assert marked.returncode == 0 and (root / later).exists()

    dry = amdsim("cleanup", "--dry-run", "--runs-dir", str(root))
    assert f"would remove marked run: {later}" in dry.stdout
    assert f"kept empty directory (remove with --orphans): {orphan.name}" in dry.stdout
    dry = amdsim("cleanup", "--dry-run", "--orphans", "--runs-dir", str(root))
    assert f"would remove orphan directory: {orphan.name}" in dry.stdout
    assert (root / later).exists() and orphan.exists()

    done = amdsim("cleanup", "--orphans", "--runs-dir", str(root))
    assert done.returncode == 0, done.stderr
    assert not (root / later).exists() and not orphan.exists() and (root / kept).exists()
    listed = json.loads(amdsim("list", "--json", "--runs-dir", str(root)).stdout)
    assert [entry["run_id"] for entry in listed] == [kept]
    again = amdsim("delete", doomed, "--runs-dir", str(root))
    assert again.returncode == 1 and "no run" in again.stderr


# -- issue 10: bad run names, unreadable directories, running runs, symbolic links ----------


def fake_run(root: Path, run_id: str, status: str = "completed", register: bool = True) -> Path:
    """A run directory holding only a manifest (enough for lookups; opening it fails)."""
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    write_manifest(run_dir / "manifest.json", registry_manifest(run_id, status=status))
    if register:
        Registry(root).register(registry_manifest(run_id, status=status))
    an_hour_ago = time.time() - 3600
    os.utime(run_dir, (an_hour_ago, an_hour_ago))  # not a run that is just starting
    return run_dir


def one_error_line(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert text in result.stderr, result.stderr


def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """`amdsim ARGS` run by `main` in this process: as the console script, without its
    start-up time (an unexpected exception would fail the test with its traceback)."""
    code = main(list(args))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(["amdsim", *args], code, captured.out, captured.err)


def run_commands(run: str, root: Path, tmp_path: Path) -> list[list[str]]:
    """Every command that takes a RUN, naming `run`."""
    where = ["--runs-dir", str(root)]
    return [
        ["show", run, *where],
        ["patient", run, "0", *where],
        ["resume", run, *where],
        ["delete", run, *where],
        ["delete", run, "--force", *where],
        ["delete", run, "--later", *where],
        ["report", run, "--out", str(tmp_path / "report.html"), *where],
        ["run", "--restart", run, *where],
    ]


@pytest.mark.parametrize("blank", ["", " \t"])
def test_delete_with_empty_id_is_an_error(tmp_path, capsys, blank):
    """Case 2: an empty or blank id named the only run (a prefix of every id); now exit 2."""
    root = tmp_path / "runs"
    only = fake_run(root, "20261202-101010-0a0a")
    one_error_line(amdsim("delete", blank, "--runs-dir", str(root)), 2, "the run name is empty")
    for command in run_commands(blank, root, tmp_path):
        one_error_line(in_process(capsys, *command), 2, "the run name is empty")
        assert only.is_dir() and (only / "manifest.json").is_file(), command
        assert not Registry(root).get(only.name).marked_for_cleanup, command


def unreadable_runs(root: Path, elsewhere: Path) -> dict[str, str]:
    """Directories amdsim cannot read, by run id, with a word of each reason."""
    newer = fake_run(root, "20261202-100001-0001", register=False)
    document = json.loads((newer / "manifest.json").read_bytes())
    (newer / "manifest.json").write_text(json.dumps({**document, "format_version": 99}))
    copied = fake_run(root, "20261202-100002-0002", register=False)
    write_manifest(copied / "manifest.json", registry_manifest("20261202-100009-0009"))
    (copied / "visits").mkdir()
    (copied / "visits" / "part-00000.parquet").write_bytes(b"PAR1 rows PAR1")
    truncated = fake_run(root, "20261202-100003-0003", register=False)
    data = (truncated / "manifest.json").read_bytes()
    (truncated / "manifest.json").write_bytes(data[: len(data) // 2])
    headless = root / "20261202-100004-0004"  # part files but no manifest
    (headless / "patients").mkdir(parents=True)
    (headless / "patients" / "part-00000.parquet").write_bytes(b"PAR1 rows PAR1")
    linked = root / "20261202-100005-0005"
    fake_run(elsewhere, linked.name, register=False)
    linked.symlink_to(elsewhere / linked.name)
    for path in (headless, headless / "patients"):
        os.utime(path, (time.time() - 3600,) * 2, follow_symlinks=False)
    return {
        newer.name: "format version 99",
        copied.name: "20261202-100009-0009",
        truncated.name: "not a valid manifest",
        headless.name: "no manifest.json",
        linked.name: "symbolic link",
    }


def test_cleanup_never_deletes_unreadable_runs_and_list_shows_them(tmp_path):
    """Case 3: cleanup rmtree'd runs it could not read; now they are listed and kept."""
    root = tmp_path / "runs"
    kept = fake_run(root, "20261202-100000-0000")
    unreadable = unreadable_runs(root, tmp_path / "elsewhere")
    empty = root / "20261202-100006-0006"  # died while starting: nothing in it
    empty.mkdir()
    os.utime(empty, (time.time() - 3600,) * 2)

    listing = amdsim("list", "--runs-dir", str(root))
    assert listing.returncode == 0, listing.stderr
    for run_id, reason in unreadable.items():
        line = next(line for line in listing.stdout.splitlines() if run_id in line)
        assert "unreadable" in line, line
        assert reason.split()[0] in listing.stdout, reason
    entries = json.loads(amdsim("list", "--json", "--runs-dir", str(root)).stdout)
    statuses = {entry["run_id"]: entry["status"] for entry in entries}
    assert statuses == {kept.name: "completed", **dict.fromkeys(unreadable, "unreadable")}
    reasons = {entry["run_id"]: entry.get("reason", "") for entry in entries}
    for run_id, reason in unreadable.items():
        assert reason in reasons[run_id], (run_id, reasons[run_id])
    only = json.loads(
        amdsim("list", "--json", "--status", "unreadable", "--runs-dir", str(root)).stdout
    )
    assert sorted(entry["run_id"] for entry in only) == sorted(unreadable)

    for command in (["cleanup"], ["cleanup", "--orphans"]):
        done = amdsim(*command, "--runs-dir", str(root))
        assert done.returncode == 0, done.stderr
        for run_id in unreadable:
            assert f"left unreadable directory: {run_id}" in done.stdout
            assert os.path.lexists(root / run_id), (command, run_id)
        assert "removed orphan" not in done.stdout or command == ["cleanup", "--orphans"]
    assert not empty.exists(), "--orphans removes a directory that holds nothing"
    assert "removed orphan directory: 20261202-100006-0006" in done.stdout
    assert (root / "20261202-100002-0002" / "visits" / "part-00000.parquet").is_file()
    assert (tmp_path / "elsewhere" / "20261202-100005-0005" / "manifest.json").is_file()
    assert kept.is_dir()


@pytest.mark.slow
def test_delete_force_cancels_a_running_run_then_deletes_it(tmp_path):
    """Case 6: --force on a running run tore its files away (FileNotFoundError traceback);
    now it is cancelled through its metrics socket, waited for, then deleted."""
    root = tmp_path / "runs"
    runner = subprocess.Popen(
        [
            AMDSIM,
            "run",
            "--patients",
            "2000000",
            "--years",
            "5",
            "--workers",
            "1",
            "--runs-dir",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        run_dir = wait_until_running(root, runner)
        refused = amdsim("delete", run_dir.name, "--runs-dir", str(root))
        one_error_line(refused, 1, "is running; cancel it first")
        assert "--force" in refused.stderr and (run_dir / "manifest.json").is_file()

        deleter = subprocess.Popen(
            [AMDSIM, "delete", "--force", run_dir.name, "--runs-dir", str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        runner.wait(timeout=90)  # reaps the supervisor as soon as the cancel has stopped it
        out, err = deleter.communicate(timeout=90)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    assert deleter.returncode == 0, err
    assert f"deleted {run_dir.name}" in out and "Traceback" not in err
    assert not run_dir.exists()
    run_err = runner.stderr.read()
    runner.stderr.close()
    assert "Traceback" not in run_err and "cancelled" in run_err, run_err
    assert json.loads(amdsim("list", "--json", "--runs-dir", str(root)).stdout) == []


def wait_until_running(root: Path, process: subprocess.Popen) -> Path:
    """The run directory of `process` once its registry entry says it is running."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (root / "registry.json").is_file():
            running = [e for e in Registry(root).list() if e.status == "running"]
            if running:
                return root / running[0].run_id
        if process.poll() is not None:
            pytest.fail(f"the run ended before it started: {process.stderr.read()}")
        time.sleep(0.02)
    pytest.fail("the run did not start within 60 s")


def test_symlinks_are_refused_and_never_followed(tmp_path, capsys):
    """Case 15: show/patient/report followed a run-id-named link out of the root, resume
    wrote run.lock outside it and deleted a foreign part file through a linked visits/,
    cleanup claimed to remove links it had not; now each is refused or left alone."""
    root = tmp_path / "runs"
    fake_run(root, "20261202-090000-0000")  # the root exists and has a registry
    foreign = fake_run(tmp_path / "elsewhere", "20261202-090001-0001", status="failed")
    link = root / foreign.name
    link.symlink_to(foreign)
    one_error_line(amdsim("show", link.name, "--runs-dir", str(root)), 2, "symbolic link")
    for command in run_commands(link.name, root, tmp_path):
        one_error_line(in_process(capsys, *command), 2, "symbolic link")
    for command in run_commands(str(link), root, tmp_path):  # named by its path
        one_error_line(in_process(capsys, *command), 2, "symbolic link")

    outside = fake_run(tmp_path / "other", "20261202-090002-0002", status="failed")
    for command in (["resume"], ["delete"], ["run", "--restart"]):
        path = os.path.relpath(outside, Path.cwd())
        result = in_process(capsys, *command, path, "--runs-dir", str(root))
        one_error_line(result, 2, "is not a run under the runs root")
    assert sorted(p.name for p in outside.iterdir()) == ["manifest.json"], "no run.lock"

    linked_visits = fake_run(root, "20261202-090003-0003", status="failed")
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "part-00099.parquet").write_bytes(b"someone else's")
    (linked_visits / "visits").symlink_to(precious)
    one_error_line(
        in_process(capsys, "resume", linked_visits.name, "--runs-dir", str(root)),
        2,
        "symbolic link",
    )
    with pytest.raises(RunPathError, match="symbolic link"):
        resume_run(linked_visits)
    assert (precious / "part-00099.parquet").read_bytes() == b"someone else's"

    Registry(root).mark_for_cleanup(linked_visits.name)  # before its visits/ became a link
    done = amdsim("cleanup", "--orphans", "--runs-dir", str(root))
    assert done.returncode == 0, done.stderr
    assert f"left unreadable directory: {link.name}" in done.stdout
    assert f"removed orphan directory: {link.name}" not in done.stdout
    assert link.is_symlink() and (foreign / "manifest.json").is_file()
    assert f"removed marked run: {linked_visits.name}" in done.stdout
    assert not linked_visits.exists(), "the run goes, its link only as a link"
    assert (precious / "part-00099.parquet").read_bytes() == b"someone else's"


def test_cleanup_removes_only_stale_segments_of_runs_under_its_own_root(tmp_path):
    """Case 15: cleanup unlinked every dead amdsim segment on the machine, other roots' too."""
    root = tmp_path / "runs"
    mine = fake_run(root, f"20261202-{secrets.randbelow(10**6):06d}-{secrets.token_hex(2)}")
    theirs = f"20261202-{secrets.randbelow(10**6):06d}-{secrets.token_hex(2)}"
    dead = subprocess.Popen(["true"])
    dead.wait()
    ours = SHM_DIR / f"amdsim-{mine.name}-{dead.pid}-0000abcd"
    other = SHM_DIR / f"amdsim-{theirs}-{dead.pid}-0000abcd"
    try:
        for path in (ours, other):
            path.write_bytes(bytes(16))
        dry = amdsim("cleanup", "--dry-run", "--runs-dir", str(root))
        assert f"would remove stale shared memory: {ours.name}" in dry.stdout
        assert other.name not in dry.stdout and ours.exists()
        done = amdsim("cleanup", "--runs-dir", str(root))
        assert done.returncode == 0, done.stderr
        assert f"removed stale shared memory: {ours.name}" in done.stdout
        assert other.name not in done.stdout
        assert not ours.exists() and other.exists()
    finally:
        ours.unlink(missing_ok=True)
        other.unlink(missing_ok=True)


# -- issue 10: small runs in the registry, the cap on runs, bad directories ---------------


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """`amdsim ARGS` in this process (fast; and patched file functions reach it)."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def the_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_out_or_runs_dir_naming_a_file_or_a_path_under_a_file_is_one_line(tmp_path, capsys):
    """Case 14: --out/--runs-dir naming a file, or a path under one: exit 2, one line."""
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    for option in ("--out", "--runs-dir"):
        for target in (a_file, a_file / "below"):
            for patients in ("100", "2000"):
                code, _, err = cli(
                    capsys, "run", "--patients", patients, "--years", "1", option, str(target)
                )
                assert code == 2, (option, target, patients)
                line = the_error_line(err)
                assert f"{option} {target}: {a_file} is a file, not a directory" in line
    for command in (["list"], ["cleanup"], ["delete", "20260101-000000-abcd"], ["show", "x"]):
        code, _, err = cli(capsys, *command, "--runs-dir", str(a_file / "below"))
        assert code == 2, command
        assert "is a file, not a directory" in the_error_line(err)
    code, _, err = cli(capsys, "report", "x", "--out", str(a_file / "report.html"))
    assert code == 2 and f"{a_file} is a file, not a directory" in the_error_line(err)
    code, _, err = cli(capsys, "report", "x", "--out", str(tmp_path))
    assert code == 2 and "is a directory; name the file to write" in the_error_line(err)
    assert a_file.read_text() == "mine"


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    with read_only_directory(tmp_path / "ro", monkeypatch) as directory:
        yield directory


def test_a_read_only_file_system_is_one_line_for_run_out_cleanup_delete_resume_report(
    read_only, capsys
):
    """Case 14: run, run --out, cleanup, delete, resume, report on a read-only file system."""
    root = read_only.path / "runs"
    streamed = start_run(root, 1)["run_id"]
    code, _, _ = cli(capsys, "run", "--patients", "100", "--years", "1", "--runs-dir", str(root))
    assert code == 0
    read_only.freeze()
    commands = [
        ["run", "--patients", "2000", "--years", "1", "--workers", "1", "--runs-dir", str(root)],
        ["run", "--patients", "100", "--years", "1", "--out", str(read_only.path / "saved")],
        ["run", "--patients", "2000", "--years", "1", "--out", str(read_only.path / "big")],
        ["cleanup", "--runs-dir", str(root)],
        ["cleanup", "--keep", "1", "--runs-dir", str(root)],
        ["delete", streamed, "--runs-dir", str(root)],
        ["delete", "--later", streamed, "--runs-dir", str(root)],
        ["resume", streamed, "--runs-dir", str(root)],
        ["report", streamed, "--out", str(read_only.path / "report.html"), "--runs-dir", str(root)],
    ]
    for command in commands:
        code, _, err = cli(capsys, *command)
        assert code == 1, command
        line = the_error_line(err)
        assert line.endswith("read-only file system") and str(read_only.path) in line, line
    code, out, _ = cli(capsys, "list", "--runs-dir", str(root))
    assert code == 0 and streamed in out  # reading still works
    assert (root / streamed / "manifest.json").is_file()


def test_a_small_run_is_listed_and_commands_say_it_was_not_saved(tmp_path, capsys):
    """Case 18: a run of <= 1000 patients is in `list`; show/patient/resume/delete say why."""
    root = tmp_path / "runs"
    code, out, _ = cli(capsys, "run", "--patients", "200", "--years", "1", "--runs-dir", str(root))
    assert code == 0 and "not saved" in out
    code, out, _ = cli(capsys, "list", "--json", "--runs-dir", str(root))
    [entry] = json.loads(out)
    run_id = entry["run_id"]
    assert (entry["status"], entry["storage"], entry["location"]) == ("completed", "memory", "")
    assert (entry["n_patients"], entry["patients"]) == (200, 200) and entry["visits"] > 0
    assert entry["protocol"] == "Aflibercept 2 mg treat-and-extend (ALTAIR, calibrated)"
    code, out, _ = cli(capsys, "list", "--runs-dir", str(root))
    assert run_id in out and "not saved" in out
    for command, says in (
        (["show", run_id], "ran in memory and was not saved: run it again with --out"),
        (["patient", run_id, "3"], "was not saved"),
        (["report", run_id, "--out", str(tmp_path / "r.html")], "was not saved"),
        (["resume", run_id], "ran in memory and is complete; there is nothing to resume"),
        (["run", "--restart", run_id], "there is nothing to restart"),
    ):
        code, _, err = cli(capsys, *command, "--runs-dir", str(root))
        assert code == 1, command
        assert says in the_error_line(err)
    code, out, _ = cli(capsys, "delete", run_id[:-1], "--runs-dir", str(root))
    assert code == 0 and f"deleted {run_id}" in out
    assert json.loads(cli(capsys, "list", "--json", "--runs-dir", str(root))[1]) == []


def test_a_small_run_saved_with_out_is_opened_from_its_folder_and_delete_leaves_it(
    tmp_path, capsys
):
    """Case 18: --out: the entry names the folder; show/patient read it; delete keeps it."""
    root, saved = tmp_path / "runs", tmp_path / "mine"
    args = ["run", "--patients", "150", "--years", "1", "--out", str(saved), "--json"]
    code, out, _ = cli(capsys, *args, "--runs-dir", str(root))
    assert code == 0
    summary = json.loads(out)
    run_id = summary["run_id"]
    assert summary["location"] == str(saved.resolve())
    [entry] = json.loads(cli(capsys, "list", "--json", "--runs-dir", str(root))[1])
    assert entry["location"] == str(saved.resolve()) and entry["bytes_on_disk"] > 0
    code, out, _ = cli(capsys, "show", run_id, "--json", "--runs-dir", str(root))
    assert code == 0 and json.loads(out)["patients_stored"] == 150
    code, out, _ = cli(capsys, "patient", run_id, "7", "--json", "--runs-dir", str(root))
    assert code == 0 and json.loads(out)["patient"]["patient_id"] == 7
    code, out, _ = cli(capsys, "delete", run_id, "--runs-dir", str(root))
    assert code == 0 and "left as they are" in out
    assert (saved / "results.json").is_file()


def test_a_small_run_on_a_read_only_runs_root_warns_and_still_prints_its_summary(read_only, capsys):
    """Case 18: registering never fails the run: one warning line, the summary, exit 0."""
    root = read_only.path / "runs"
    root.mkdir()
    read_only.freeze()
    code, out, err = cli(
        capsys, "run", "--patients", "100", "--years", "1", "--runs-dir", str(root)
    )
    assert code == 0
    assert "Mean final VA" in out
    assert err.strip().startswith("warning: this run is not listed in 'amdsim list'")
    assert "read-only file system" in err and len(err.strip().splitlines()) == 1


def test_keep_caps_the_runs_and_cleanup_removes_the_oldest_finished_ones(tmp_path, capsys):
    """Case 19: run --keep N stores the cap; older runs get marked; cleanup --keep removes."""
    root = tmp_path / "runs"
    small = ["run", "--patients", "100", "--years", "1", "--runs-dir", str(root), "--json"]
    ids = [json.loads(cli(capsys, *small)[1])["run_id"] for _ in range(3)]
    code, out, _ = cli(capsys, *small, "--keep", "2")
    assert code == 0
    ids.append(json.loads(out)["run_id"])
    listed = {
        e["run_id"]: e
        for e in json.loads(cli(capsys, "list", "--json", "--runs-dir", str(root))[1])
    }
    assert [i for i in ids if listed[i]["marked_for_cleanup"]] == ids[:2]
    code, out, _ = cli(capsys, "list", "--runs-dir", str(root))
    assert "keeping at most 2 runs; 2 marked for cleanup" in out

    code, out, _ = cli(capsys, "cleanup", "--keep", "1", "--dry-run", "--runs-dir", str(root))
    assert f"over the cap, marked for cleanup: {ids[2]}" in out
    assert f"would remove marked run: {ids[0]}" in out
    assert len(json.loads(cli(capsys, "list", "--json", "--runs-dir", str(root))[1])) == 4

    code, out, _ = cli(capsys, "cleanup", "--keep", "1", "--runs-dir", str(root))
    assert code == 0 and "at most 1 runs from now on" in out
    remaining = [
        e["run_id"] for e in json.loads(cli(capsys, "list", "--json", "--runs-dir", str(root))[1])
    ]
    assert remaining == [ids[3]]
    code, out, _ = cli(capsys, "cleanup", "--keep", "none", "--runs-dir", str(root))
    assert "no cap from now on" in out
    with pytest.raises(SystemExit) as refused:
        cli(capsys, *small, "--keep", "0")
    assert refused.value.code == 2 and "is not a number of runs" in capsys.readouterr().err
