"""Nothing finished is lost, whatever command ran the pipeline: a real SIGINT (or SIGKILL) during
the proxies stage under `dvc repro`, `dvc exp run` and `dvc exp run --temp` (a queued experiment's
copy of the workspace), then the same command again, trains only the proxies that had not finished.

Each waits on events (a proxy kept in the machine store, the process's exit), never on time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_pipeline import commit, new_project

from regmix.compose import compose

PROXIES = 12
# the tiny preset with a swarm that takes a while (`dvc exp run` composes params.yaml from these)
OVERRIDES = ["experiment=tiny", f"sample.n_mixtures={PROXIES}", "proxy.optim.steps=60", "proxy.replicates=0"]


@pytest.fixture
def project(tmp_path) -> Path:
    """The longer swarm's params, committed with no run yet."""
    root = new_project(tmp_path / "project")
    compose(root / "params.yaml", OVERRIDES, root / "conf")
    commit(root, "a longer swarm")
    return root


def environment(root: Path) -> dict[str, str]:
    return dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        REGMIX_CACHE=str(root / ".cache"),
        REGMIX_STORE=str(root / ".cache/store"),
        REGMIX_WORKERS="1",
    )


HUNG_S = 600  # a run that neither keeps a proxy nor exits this long is hung, whatever the load


def kept(root: Path) -> set[str]:
    """Keys of the proxies in the machine store."""
    return {p.stem for p in (root / ".cache/store/proxies").glob("*.json")}


def stop_after_first_proxy(command: list[str], root: Path, sig: int) -> int:
    """Run `command` in a process group of its own, send `sig` to the group once a proxy is kept,
    wait for the exit: the number of proxies kept then."""
    proc = subprocess.Popen(
        command,
        cwd=root,
        env=environment(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + HUNG_S  # waits on the event; the deadline only catches a hung run
    while not kept(root):
        assert proc.poll() is None, f"{command} ended before any proxy was kept:\n{proc.communicate()[0]}"
        assert time.monotonic() < deadline, f"no proxy kept in {HUNG_S} s: hung"
        time.sleep(0.05)
    os.killpg(proc.pid, sig)  # what Ctrl-C in a terminal does: every process of the foreground group
    output, _ = proc.communicate(timeout=HUNG_S)
    assert proc.returncode != 0, output
    return len(kept(root))


def trained_by(command: list[str], root: Path) -> dict:
    """Run `command` to the end: the proxies stage's metrics."""
    proc = subprocess.run(command, cwd=root, env=environment(root), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    metrics = root / "metrics/proxies.json"
    if not metrics.exists():  # an experiment in a copy of the workspace: its metrics are the experiment's
        shown = subprocess.run(
            [sys.executable, "-m", "dvc", "exp", "show", "--json"],
            cwd=root,
            env=environment(root),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return newest_experiment_metrics(json.loads(shown))
    return json.loads(metrics.read_text())


def newest_experiment_metrics(shown: list) -> dict:
    experiments = [e for e in shown[-1].get("experiments") or [] if e.get("revs")]
    data = experiments[0]["revs"][0]["data"]
    return data["metrics"]["metrics/proxies.json"]["data"]


EXP_RUN = ["dvc", "exp", "run", *(a for o in OVERRIDES for a in ("-S", o))]


@pytest.mark.parametrize(
    "command, sig",
    [
        (["dvc", "repro", "proxies"], signal.SIGINT),
        ([*EXP_RUN, "proxies"], signal.SIGINT),
        ([*EXP_RUN, "--temp", "proxies"], signal.SIGINT),
        (["dvc", "repro", "proxies"], signal.SIGKILL),  # a stage that dies without a word
    ],
    ids=["repro", "exp_run", "exp_run_temp", "repro_killed"],
)
def test_a_rerun_keeps_every_finished_proxy(project, command, sig):
    command = [sys.executable, "-m", *command]
    done = stop_after_first_proxy(command, project, sig)
    assert 1 <= done < PROXIES
    metrics = trained_by(command, project)
    assert metrics["proxies"] == PROXIES
    assert metrics["trained"] == PROXIES - done  # the finished ones came back from the store


def test_a_failed_prepare_keeps_the_last_good_tokens(project):
    """A corpus file that stops prepare (a line that is not JSON) leaves the last good data/tokens and
    results/domains.json in place: fixing the file costs no tokenisation."""
    dvc = [sys.executable, "-m", "dvc", "repro"]
    prepared = subprocess.run([*dvc, "prepare"], cwd=project, env=environment(project), capture_output=True, text=True)
    assert prepared.returncode == 0, prepared.stderr
    before = {
        p: p.read_bytes()
        for p in [project / "results/domains.json", *sorted((project / "data/tokens").rglob("*"))]
        if p.is_file()
    }
    corpus = sorted((project / "tests/fixtures/tiny_corpus/train").glob("*.jsonl"))[0]
    good = corpus.read_text()
    corpus.write_text(good + "not json\n")
    failed = subprocess.run(
        [*dvc, "-f", "prepare"], cwd=project, env=environment(project), capture_output=True, text=True
    )
    assert failed.returncode != 0 and f"{corpus.name}:" in failed.stdout + failed.stderr
    assert {p: p.read_bytes() for p in before if p.exists()} == before  # every file there, unchanged
    corpus.write_text(good)
    status = subprocess.run(
        [sys.executable, "-m", "dvc", "status"], cwd=project, env=environment(project), capture_output=True, text=True
    )
    assert "prepare:" not in status.stdout, status.stdout  # nothing to tokenise again (the later stages never ran)
