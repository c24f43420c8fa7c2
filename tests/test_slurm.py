"""The Slurm backend, run through submitit's local executor: the same proxies as the local
backend, a killed array resumed without retraining, and clear errors for bad settings."""

from __future__ import annotations

import json
import sys
import time

import pandas as pd
import pytest
from test_proxies import CFG, snapshot, swarm, tokens  # noqa: F401 (tokens: the shared fixture)

from regmix.errors import UserError
from regmix.train import slurm
from regmix.train.backends import Placement, placement_from_env, train_chunk
from regmix.train.proxy import plan, resolve_config
from regmix.train.swarm import run_swarm

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NEEDS_SUBMITIT = "the Slurm backend needs submitit: pip install -e '.[slurm]'"


@pytest.fixture
def on_local_cluster(tmp_path) -> Placement:
    """The slurm backend, with its array run by submitit's local executor."""
    pytest.importorskip("submitit", reason=NEEDS_SUBMITIT)
    return Placement(backend="slurm", slurm_cluster="local", slurm_logs=str(tmp_path / "logs"))


@pytest.fixture
def submissions(monkeypatch) -> list[list[list]]:
    """The chunks of every array submitted (one list per array)."""
    arrays = []
    real = slurm.submit

    def recording(fn, chunks, placement, name):
        arrays.append(chunks)
        return real(fn, chunks, placement, name)

    monkeypatch.setattr(slurm, "submit", recording)
    return arrays


def stored(folder) -> dict[str, dict]:
    """Every stored proxy's JSON, less its run time."""
    return {
        p.name: {k: v for k, v in json.loads(p.read_text()).items() if k != "seconds"}
        for p in sorted(folder.glob("*.json"))
    }


def test_slurm_backend_matches_local_bit_for_bit(tokens, tmp_path, on_local_cluster, submissions, monkeypatch):
    local, _ = run_swarm(swarm(3), CFG, tokens, tmp_path / "local", seed=0, placement=Placement(workers=1))
    monkeypatch.setenv("REGMIX_STORE", str(tmp_path / "empty_store"))  # trained again, not taken from the store
    placement = Placement(**{**vars(on_local_cluster), "slurm_chunk": 2})
    remote, stats = run_swarm(swarm(3), CFG, tokens, tmp_path / "slurm", seed=0, placement=placement)
    pd.testing.assert_frame_equal(local, remote)
    assert stored(tmp_path / "slurm") == stored(tmp_path / "local")  # the same files, the same content
    assert [len(chunk) for chunk in submissions[0]] == [2, 1]
    assert stats["trained"] == 3 and stats["backend"] == "slurm"


def test_killed_array_resumes_without_retraining(tokens, tmp_path, on_local_cluster, submissions, monkeypatch):
    out = tmp_path / "proxies"
    real = slurm.submit

    def kill_all_but_the_first(fn, chunks, placement, name):
        """The first task trains its chunk; the others are killed while they run. An hour's sleep
        stands in for their work, so none can finish before it is killed, however loaded the machine."""
        first = real(fn, chunks[:1], placement, name)
        killed = real(time.sleep, [3600] * (len(chunks) - 1), placement, name)
        for job in killed:
            job.cancel()
        return first + killed

    with monkeypatch.context() as patch:
        patch.setattr(slurm, "submit", kill_all_but_the_first)
        with pytest.raises(UserError, match="2 of 3 still missing") as error:
            run_swarm(swarm(3), CFG, tokens, out, seed=0, placement=on_local_cluster)
    assert str(tmp_path / "logs") in str(error.value)  # the failed tasks' log files
    first = snapshot(out)
    assert len(first) == 1

    table, stats = run_swarm(swarm(3), CFG, tokens, out, seed=0, placement=on_local_cluster)
    assert stats["trained"] == 2
    trained, killed, rerun = submissions
    assert len(trained) + len(killed) == 3 and len(rerun) == 2  # one proxy per task; the rerun only the missing
    assert not {f"{job.key}.json" for chunk in rerun for job in chunk} & first.keys()
    assert {k: v for k, v in snapshot(out).items() if k in first} == first  # the finished proxy untouched
    local, _ = run_swarm(swarm(3), CFG, tokens, tmp_path / "local", seed=0, placement=Placement(workers=1))
    pd.testing.assert_frame_equal(local, table)


def test_a_requeued_task_trains_only_what_is_missing(tokens, tmp_path):
    cfg = resolve_config(CFG, tokens)
    jobs = plan(swarm(2), cfg, tokens, seed=0)
    out = tmp_path / "proxies"
    assert train_chunk(jobs[:1], cfg, str(tokens), str(out), 0, 1) == [jobs[0].key]
    before = snapshot(out)
    assert train_chunk(jobs, cfg, str(tokens), str(out), 0, 1) == [jobs[1].key]
    assert snapshot(out)[f"{jobs[0].key}.json"] == before[f"{jobs[0].key}.json"]


def test_a_preempted_task_is_requeued_with_its_chunk():
    pytest.importorskip("submitit", reason=NEEDS_SUBMITIT)
    task = slurm.ArrayTask(len)
    again = task.checkpoint([1, 2])
    assert again.function is task and again.args == ([1, 2],)
    assert task([1, 2]) == 2


def test_placement_from_env(monkeypatch):
    for name, value in {
        "REGMIX_BACKEND": "slurm",
        "REGMIX_SLURM_PARTITION": "gpu",
        "REGMIX_SLURM_TIME": "90",
        "REGMIX_SLURM_GPUS": "1",
        "REGMIX_SLURM_CPUS": "8",
        "REGMIX_SLURM_PARALLELISM": "16",
        "REGMIX_SLURM_CHUNK": "4",
        "REGMIX_SLURM_LOGS": "/scratch/logs",
        "REGMIX_SLURM_CLUSTER": "local",
    }.items():
        monkeypatch.setenv(name, value)
    assert placement_from_env() == Placement(
        backend="slurm",
        slurm_partition="gpu",
        slurm_minutes=90,
        slurm_gpus=1,
        slurm_cpus=8,
        slurm_parallelism=16,
        slurm_chunk=4,
        slurm_logs="/scratch/logs",
        slurm_cluster="local",
    )
    for name in (
        "REGMIX_SLURM_PARTITION",
        "REGMIX_SLURM_TIME",
        "REGMIX_SLURM_GPUS",
        "REGMIX_SLURM_CPUS",
        "REGMIX_SLURM_PARALLELISM",
        "REGMIX_SLURM_CHUNK",
        "REGMIX_SLURM_LOGS",
        "REGMIX_SLURM_CLUSTER",
    ):
        monkeypatch.delenv(name)
    assert placement_from_env() == Placement(backend="slurm")


@pytest.mark.parametrize(
    "name, value",
    [
        ("REGMIX_BACKEND", "pbs"),
        ("REGMIX_SLURM_TIME", "02:00:00"),
        ("REGMIX_SLURM_TIME", "0"),
        ("REGMIX_SLURM_GPUS", "-1"),
        ("REGMIX_SLURM_GPUS", "a100"),
        ("REGMIX_SLURM_CPUS", "0"),
        ("REGMIX_SLURM_PARALLELISM", "many"),
        ("REGMIX_SLURM_CHUNK", "1.5"),
        ("REGMIX_SLURM_CLUSTER", "pbs"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, name, value):
    monkeypatch.setenv("REGMIX_BACKEND", "slurm")
    monkeypatch.setenv(name, value)
    with pytest.raises(UserError, match=name):
        placement_from_env()


def test_clear_errors_without_submitit_or_sbatch(monkeypatch, tmp_path):
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "submitit", None)  # as if not installed
        with pytest.raises(UserError, match=r"submitit.*\.\[slurm\]"):
            slurm.executor(Placement(backend="slurm"), "proxies")
    pytest.importorskip("submitit", reason=NEEDS_SUBMITIT)
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    with pytest.raises(UserError, match="sbatch.*REGMIX_SLURM_CLUSTER=local"):
        slurm.executor(Placement(backend="slurm"), "proxies")
