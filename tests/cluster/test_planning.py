"""Choosing a cluster and cutting a run into tasks: parsing ``--cluster``, sizing tasks to the
workers' memory, refusing a directory the workers cannot see, and never loading Dask locally."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.cluster.connect import ClusterSpec, cluster_spec
from engine.cluster.run import ClusterRun
from engine.cluster.sizing import MEMORY_SHARE, plan_tasks, task_memory_bytes, worker_limits
from engine.errors import ClusterError, ParameterError
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import DEFAULT_PROTOCOL, load_protocol
from tests.cli.test_cli import amdsim

MiB = 1 << 20


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("local:3", ClusterSpec(local_workers=3)),
        ("tcp://10.0.0.5:8786", ClusterSpec(address="tcp://10.0.0.5:8786")),
        ("scheduler.example.org:8786", ClusterSpec(address="tcp://scheduler.example.org:8786")),
        ("tls://head:8786", ClusterSpec(address="tls://head:8786")),
    ],
)
def test_cluster_texts_name_a_scheduler_or_local_workers(text, expected) -> None:
    assert cluster_spec(text) == expected


@pytest.mark.parametrize("text", ["local:0", "local:x", "tcp://a b", "http://host/path/x"])
def test_bad_cluster_texts_are_refused(text) -> None:
    with pytest.raises(ParameterError, match="--cluster"):
        cluster_spec(text)


def test_the_environment_names_the_cluster_when_the_option_does_not(monkeypatch) -> None:
    monkeypatch.setenv("AMDSIM_CLUSTER", "local:2")
    assert cluster_spec(None) == ClusterSpec(local_workers=2)
    assert cluster_spec("tcp://h:1") == ClusterSpec(address="tcp://h:1")
    monkeypatch.delenv("AMDSIM_CLUSTER")
    assert cluster_spec(None) is None


def test_blocks_cover_every_shard_once_in_consecutive_runs() -> None:
    params = RunParameters(n_patients=1_000_000, years=5.0, shard_size=4096)
    missing = [s for s in range(params.shard_count) if s % 50 != 7]  # as after a resume
    plan = plan_tasks(params, missing, threads=6, limit_bytes=None, visits_per_patient=20)
    flat = [s for block in plan.blocks for s in block]
    assert flat == missing
    assert all(b == list(range(b[0], b[-1] + 1)) for b in plan.blocks)
    assert all(len(b) >= 1 for b in plan.blocks)
    assert len(plan.blocks) >= 6 * 4  # enough tasks to balance the workers


def test_a_small_memory_limit_lowers_the_shards_simulated_at_once() -> None:
    params = RunParameters(n_patients=1_000_000, years=10.0, shard_size=4096)
    roomy = plan_tasks(params, range(10), threads=2, limit_bytes=64 << 30, visits_per_patient=40)
    tight_limit = 2 * task_memory_bytes(params, 2, 40)  # room for two shards at once
    tight = plan_tasks(params, range(10), threads=2, limit_bytes=tight_limit, visits_per_patient=40)
    assert tight.batch_shards < roomy.batch_shards
    assert tight.task_memory_bytes <= MEMORY_SHARE * tight_limit


def test_workers_too_small_for_one_shard_are_refused_with_the_figures() -> None:
    params = RunParameters(n_patients=1_000_000, years=10.0, shard_size=65_536)
    with pytest.raises(ClusterError, match="smaller --shard-size"):
        plan_tasks(params, range(4), threads=2, limit_bytes=256 * MiB, visits_per_patient=40)


def test_worker_limits_read_the_scheduler_info() -> None:
    info = {
        "workers": {
            "tcp://a:1": {"nthreads": 4, "memory_limit": 8 << 30},  # 2 GiB per thread
            "tcp://b:1": {"nthreads": 1, "memory_limit": 4 << 30},
            "tcp://c:1": {"nthreads": 1, "memory_limit": 0},  # no limit advertised
        }
    }
    assert worker_limits(info) == (6, 2 << 30)
    assert worker_limits({"workers": {}}) == (0, None)


class _BlindClient:
    """A client whose second worker does not see the run directory."""

    def run(self, function, *args):
        return {"tcp://a:1": function(*args), "tcp://b:1": ""}


def test_a_run_directory_some_workers_cannot_see_is_refused(tmp_path) -> None:
    run = ClusterRun(
        _BlindClient(), load_protocol(DEFAULT_PROTOCOL), RunParameters(n_patients=10, years=1.0),
        tmp_path / "run",
    )  # fmt: skip
    run.paths.root.mkdir()
    (run.paths.root / "cluster-token").write_text(run._token)
    with pytest.raises(ClusterError, match=r"tcp://b:1.*cannot see the run directory"):
        run._check_workers_see_run()


def test_a_local_streaming_run_never_imports_dask(tmp_path) -> None:
    code = (
        "import sys\n"
        "from engine.cli import main\n"
        f"code = main(['run', '--patients', '20000', '--years', '1', '--runs-dir', {str(tmp_path)!r}])\n"
        "assert code == 0, code\n"
        "loaded = [m for m in ('dask', 'distributed') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_bad_cluster_option_is_one_line_with_exit_2(tmp_path) -> None:
    done = amdsim(
        "run", "--patients", "20000", "--cluster", "local:zero", "--runs-dir", str(tmp_path)
    )
    assert done.returncode == 2
    assert "--cluster 'local:zero'" in done.stderr and "Traceback" not in done.stderr


def test_any_resume_removes_the_token_so_a_dead_clients_tasks_stop(tmp_path) -> None:
    from engine.manifest import Checkpoint
    from engine.resume import discard_unlisted_files
    from engine.run_dir import RunPaths

    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    paths.cluster_token.write_text("a dead client's token")
    removed = discard_unlisted_files(paths, Checkpoint(run_id="run"))
    assert "cluster-token" in removed and not paths.cluster_token.exists()
