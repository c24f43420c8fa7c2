"""Ctrl-C during the proxies stage: out without training any proxy it had not started, every
finished proxy kept whole, nothing leaked, and a rerun trains only what is missing. The tests
wait on events (a proxy stored, the process gone), never on the machine's speed: the timeouts
only keep a hung run from hanging the suite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from tiny_data import SENTENCES, build_tokens, write_domains

from regmix.compose import composed
from regmix.config import ProxyConfig, from_dict
from regmix.train.proxy import plan, resolve_config

PROXIES = 40  # x 400 steps on 2 workers: SIGINT comes after the first, with most of the work left
STEPS = 400
WORKERS = 2
HUNG_S = 600  # a run that neither stores a proxy nor exits this long is hung, whatever the load


@pytest.fixture
def stage(tmp_path):
    """A stage's folder (tokens, mixtures, params of the tiny preset) and how to run it there."""
    tokens = build_tokens(tmp_path / "tokens")
    weights = np.random.default_rng(0).dirichlet(np.ones(len(SENTENCES)), size=PROXIES)
    mixtures = pd.DataFrame(weights, columns=list(SENTENCES))
    mixtures.insert(0, "id", range(PROXIES))
    mixtures.to_csv(tmp_path / "mixtures.csv", index=False)
    write_domains(tmp_path / "domains.json", tokens)
    params = composed(["experiment=tiny"], conf_dir=REPO / "conf")
    params["proxy"]["optim"]["steps"] = STEPS
    params["proxy"]["replicates"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {
        **os.environ,
        "REGMIX_WORKERS": str(WORKERS),
        "REGMIX_PROXY_THREADS": "1",
        "REGMIX_BACKEND": "local",
        "REGMIX_CACHE": str(tmp_path / "cache"),
    }

    def start(mixtures_csv: str = "mixtures.csv") -> subprocess.Popen:
        """The stage in a process group of its own (a terminal's Ctrl-C reaches the whole group)."""
        paths = [
            tokens,
            tmp_path / "domains.json",
            tmp_path / mixtures_csv,
            tmp_path / "store",
            tmp_path / "proxies.csv",
            tmp_path / "replicates.csv",
            tmp_path / "spread.csv",
            tmp_path / "proxy_run.json",
            tmp_path / "metrics.json",
        ]
        return subprocess.Popen(
            [sys.executable, "-m", "stages.proxies", *map(str, paths), "--params", str(tmp_path / "params.yaml")],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    return tmp_path, start, params


def interrupt(proc: subprocess.Popen, store, whole_group: bool) -> tuple[float, int, str]:
    """Wait for the first stored proxy, send SIGINT; seconds to exit, the proxies stored when the
    signal went, and the stage's stderr."""
    deadline = time.monotonic() + HUNG_S
    while not list(store.glob("*.json")):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, f"no proxy stored in {HUNG_S} s: hung"
        time.sleep(0.05)
    at_signal = len(list(store.glob("*.json")))
    sent = time.monotonic()
    if whole_group:  # what Ctrl-C in a terminal does: every process of the foreground group
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=HUNG_S)
    except subprocess.TimeoutExpired:  # the workers too: they hold the pipes open
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    return time.monotonic() - sent, at_signal, err


@pytest.mark.parametrize("whole_group", [False, True], ids=["driver", "terminal_group"])
def test_sigint_stops_the_swarm_and_keeps_finished_proxies(stage, whole_group):
    folder, start, params = stage
    store = folder / "store"
    proc = start()
    seconds, at_signal, err = interrupt(proc, store, whole_group)
    assert proc.returncode == 130, err
    print(f"exited {seconds:.2f} s after SIGINT")  # its speed is measured, not asserted: a loaded machine is slower
    assert err.rstrip().endswith("interrupted")
    assert "leaked semaphore" not in err and "Traceback" not in err, err
    stored = sorted(store.glob("*.json"))
    assert at_signal <= len(stored) <= at_signal + WORKERS  # at most the proxies in flight finished: none started
    for path in stored:  # whole JSON, never a partial write, and its weights beside it
        assert {k for k in json.loads(path.read_text())["scores"] if k.startswith("loss.")} == {
            f"loss.{d}" for d in SENTENCES
        }
        assert path.with_suffix(".safetensors").exists()
    assert not [p for p in store.iterdir() if p.suffix not in (".json", ".safetensors")]  # no temporary file left
    if whole_group:
        return

    # A rerun over the stored mixtures and two missing ones trains exactly the two.
    cfg = resolve_config(from_dict(ProxyConfig, params["proxy"], "proxy."), folder / "tokens")
    mixtures = pd.read_csv(folder / "mixtures.csv")
    keys = [job.key for job in plan(mixtures, cfg, folder / "tokens", params["seed"])]
    done = {p.stem for p in stored}
    missing = [i for i, key in enumerate(keys) if key not in done][:2]
    rows = [i for i, key in enumerate(keys) if key in done] + missing
    mixtures.iloc[rows].to_csv(folder / "rerun.csv", index=False)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in stored}
    rerun = start("rerun.csv")
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["proxies"] == len(rows) and metrics["trained"] == 2
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in store.glob("*.json")}
    assert {k: after[k] for k in before} == before  # the finished proxies were not touched
    assert set(after) - set(before) == {f"{keys[i]}.json" for i in missing}
