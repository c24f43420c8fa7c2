"""`regmix plan`: the training stages' tokens from the params alone, rated by the last run of
the same shape or a warm-up, nothing trained and nothing written."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import REPO

from regmix import cost
from regmix.choose.mixture_files import seeds_of
from regmix.compose import composed
from regmix.train import large, swarm

TINY = composed(["experiment=tiny"], conf_dir=REPO / "conf")


def train_tokens_of(section: dict) -> int:
    """Tokens one run of a `proxy` or `large` params section trains: steps x batch x context."""
    optim = section["optim"]
    return optim["steps"] * optim["batch_size"] * section["model"]["context"]


def test_the_plan_counts_every_training_stage_from_the_params(tmp_path):
    proxies, verify, large = cost.pipeline_plan(TINY, tmp_path / "no_tokens_yet")
    swarm = TINY["sample"]["n_mixtures"] + TINY["proxy"]["replicates"]  # active rounds are off in the preset
    assert TINY["active"]["rounds"] == 0 and proxies.tokens == swarm * train_tokens_of(TINY["proxy"])
    checked = [n for n in TINY["verify"]["mixtures"] if n in TINY["large"]["mixtures"]]
    assert verify.tokens == TINY["verify"]["seeds"] * len(checked) * train_tokens_of(
        TINY["proxy"]
    )  # the preset's own scale
    seeds = seeds_of(TINY["large"]["mixtures"], TINY["large"]["seeds"], TINY["large"]["replicate"], TINY["seed"])
    assert large.tokens == sum(map(len, seeds.values())) * train_tokens_of(TINY["large"])
    for plan in (proxies, verify, large):  # nothing measured here before: a timed warm-up each
        assert "warm-up" in plan.rate.source and plan.eta_s == pytest.approx(plan.tokens / plan.rate.tokens_per_s)
    total = cost.describe([proxies, verify, large])[-1]
    assert total.startswith("total: ETA ") and "evaluate are not counted" in total


def remembered(monkeypatch, tokens_per_s: float) -> None:
    """Every shape measured before on this machine at `tokens_per_s`."""
    for module in (swarm, large):
        monkeypatch.setattr(module, "remembered_rate", lambda key: tokens_per_s)


def test_a_shape_run_before_is_rated_by_that_run(tmp_path, monkeypatch):
    remembered(monkeypatch, 1000.0)
    plans = cost.pipeline_plan(TINY, tmp_path)
    assert all(p.rate.source == "last run" and p.eta_s == p.tokens / 1000.0 for p in plans)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the confirmation is for CPU plans")
def test_a_cpu_plan_over_an_hour_says_it_needs_confirming(tmp_path, monkeypatch):
    remembered(monkeypatch, 0.01)  # 0.01 tokens/s: days
    lines = cost.describe(cost.pipeline_plan(TINY, tmp_path))
    assert "REGMIX_YES=1" in lines[-1] and any(line.startswith("  warning: proxies: ETA") for line in lines)


def test_regmix_plan_prints_the_plan_and_writes_nothing(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "regmix.cli", "plan", "-S", "experiment=tiny", "--conf", str(REPO / "conf")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "plan for conf/ with -S experiment=tiny (nothing runs):"
    assert [line.split(":")[0] for line in lines[1:4]] == ["proxies", "verify", "train"]
    assert lines[-1].startswith("total: ETA")
    assert list(tmp_path.iterdir()) == []
