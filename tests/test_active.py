"""Active rounds: proposals within the generator's caps and apart from trained proxies, rounds 0 is
the one-shot swarm, the round column, resume after a kill, the stage, the benchmark."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from test_proxies import CFG, snapshot, stage_argv
from tiny_data import SENTENCES, build_tokens, write_domains

from regmix.checks import check_active
from regmix.choose.active import fit_acquisition, propose, run_rounds
from regmix.choose.rules import l1_nearest, proxy_spacing
from regmix.choose.sampling import accepted_draws, make_generator, sample_mixtures
from regmix.config import ACQUISITION_RULES, ActiveConfig, RegressionConfig, SampleConfig
from regmix.errors import UserError
from regmix.tables import LOSS_PREFIX, ROUND, mixture_frame, read_csv
from regmix.target import Target
from regmix.train.backends import Placement
from regmix.train.swarm import run_swarm

DATA = REPO.parent / "shared" / "regmix_data"
SHARE = {"web": 0.5, "code": 0.2, "books": 0.15, "wiki": 0.1, "math": 0.05}
FAST = ActiveConfig(
    batch_size=4,
    candidates=2000,
    regression=RegressionConfig(
        model="lightgbm", n_bootstrap=4, params={"n_estimators": 60, "learning_rate": 0.1, "early_stopping_rounds": 0}
    ),
)
WEB = Target.parse("web")

pytestmark = pytest.mark.usefixtures("one_torch_thread", "private_cache")


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REGMIX_CACHE", str(tmp_path / "cache"))


def losses(W: np.ndarray) -> pd.DataFrame:
    """Synthetic proxies' losses: web's loss falls with web and wiki, rises with code."""
    return pd.DataFrame({"web": 4.0 - W[:, 0] - 0.5 * W[:, 3] + 0.3 * W[:, 1]})


def test_proposals_respect_caps_and_keep_their_distance():
    # a large run of 1,000 tokens at 3 epochs: caps of 3x the share (math 0.15, wiki 0.3, ...)
    gen = make_generator(SampleConfig(max_epochs=3.0), SHARE, {d: 1000 * w for d, w in SHARE.items()}, 1000)
    assert (gen.caps < gen.units).sum() == 4
    trained = sample_mixtures(gen, SampleConfig(n_mixtures=24), seed=0)
    fitted = fit_acquisition(trained, losses(trained)["web"].to_numpy(), gen.domains, WEB, FAST, seed=0)
    draws = gen.weights(accepted_draws(gen, np.random.default_rng(1), FAST.candidates))
    members = np.array([m.predict(draws) for m in fitted.members])
    radius = FAST.spacing * np.median(proxy_spacing(trained))
    free = l1_nearest(draws, trained, 1)[0][:, 0] >= radius
    picks = {}
    for rule in ACQUISITION_RULES:
        rows = propose(fitted, draws, trained, dataclasses.replace(FAST, rule=rule))
        picks[rule] = set(rows.tolist())
        chosen = draws[rows]
        assert len(rows) == FAST.batch_size == len(set(rows.tolist()))
        units = chosen * gen.units
        assert np.allclose(units, np.rint(units)) and (np.rint(units) <= gen.caps).all()  # grid and caps
        assert (l1_nearest(chosen, trained, 1)[0] >= radius).all()
        apart = np.abs(chosen[:, None] - chosen[None]).sum(axis=2)
        assert (apart[~np.eye(len(rows), dtype=bool)] >= radius).all()
        # the first is the draws' optimum: the lowest members' mean + kappa x std among the free
        upper_bound = members.mean(axis=0) + FAST.kappa * members.std(axis=0)
        assert rows[0] == np.flatnonzero(free)[np.argmin(upper_bound[free])]
    assert picks["lower_confidence"] != picks["disagreement"]
    # explore: after the optimum, that share of the batch where the members disagree most of all
    rows = propose(fitted, draws, trained, dataclasses.replace(FAST, batch_size=5, explore=0.5))
    std = members.std(axis=0)
    assert std[rows[1]] == std[free].max() and std[rows[2]] >= np.quantile(std[free], 0.99)

    with pytest.raises(UserError, match="active.spacing binds"):
        propose(fitted, draws, trained, dataclasses.replace(FAST, spacing=50.0))


@pytest.mark.parametrize(
    "change, key",
    [
        ({"rounds": -1}, "active.rounds"),
        ({"rule": "ucb"}, "active.rule"),
        ({"batch_size": 0}, "active.batch_size"),
        ({"promising": 0.0}, "active.promising"),
        ({"explore": 1.5}, "active.explore"),
        ({"rounds": 1, "regression": RegressionConfig(n_bootstrap=0)}, "active.regression.n_bootstrap"),
    ],
)
def test_bad_settings_name_their_key(change, key):
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        check_active(dataclasses.replace(FAST, **change))


def test_zero_rounds_is_the_one_shot_swarm():
    gen = make_generator(SampleConfig(max_epochs=None), SHARE)
    W = sample_mixtures(gen, SampleConfig(n_mixtures=8), seed=0)
    initial = pd.concat([mixture_frame(range(8), gen.domains, W), losses(W).add_prefix(LOSS_PREFIX)], axis=1)

    def train(batch: pd.DataFrame) -> pd.DataFrame:
        raise AssertionError("rounds 0 trains nothing more")

    table = run_rounds(initial, gen, dataclasses.replace(FAST, rounds=0), WEB, 0, train)
    assert table[ROUND].tolist() == [0] * 8
    pd.testing.assert_frame_equal(table.drop(columns=ROUND), initial)


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    return build_tokens(tmp_path_factory.mktemp("data") / "tokens")


def test_rounds_resume_after_a_kill_without_retraining_a_finished_proxy(tokens, tmp_path):
    """Killed in round 2 after one of its proxies: the rerun proposes the same mixtures, trains
    only round 2's missing ones and leaves every stored proxy untouched."""
    gen = make_generator(SampleConfig(max_epochs=None), {d: 1 / len(SENTENCES) for d in SENTENCES})
    swarm = mixture_frame(range(6), gen.domains, sample_mixtures(gen, SampleConfig(n_mixtures=6), seed=0))
    cfg = dataclasses.replace(FAST, rounds=2, batch_size=2, candidates=500)
    store, mean = tmp_path / "proxies", Target.parse("mean")
    trained = []

    def train(batch: pd.DataFrame, stop_after: int | None = None) -> pd.DataFrame:
        table, stats = run_swarm(batch.iloc[:stop_after], CFG, tokens, store, seed=0, placement=Placement(workers=1))
        trained.append(stats["trained"])
        if stop_after is not None:
            raise KeyboardInterrupt
        return table

    def killed(batch: pd.DataFrame) -> pd.DataFrame:
        return train(batch, stop_after=1 if len(trained) == 2 else None)  # the third call: round 2

    with pytest.raises(KeyboardInterrupt):
        run_rounds(train(swarm), gen, cfg, mean, 0, killed)
    assert trained == [6, 2, 1]
    before = snapshot(store)
    assert len(before) == 9

    trained.clear()
    table = run_rounds(train(swarm), gen, cfg, mean, 0, train)
    assert trained == [0, 0, 1]  # the same proposals: only round 2's second proxy trains
    after = snapshot(store)
    assert {k: after[k] for k in before} == before and len(after) == 10
    assert table[ROUND].tolist() == [0] * 6 + [1] * 2 + [2] * 2
    assert table["id"].tolist() == list(range(10))
    assert table[[LOSS_PREFIX + d for d in SENTENCES]].notna().all().all()


def test_stage_with_rounds(tokens, tmp_path, monkeypatch):
    """The proxies stage: round 0 the swarm, then the rounds' proxies; metrics count each round."""
    (tmp_path / "results").mkdir()
    gen = make_generator(SampleConfig(max_epochs=None), {d: 1 / len(SENTENCES) for d in SENTENCES})
    mixture_frame(range(5), gen.domains, sample_mixtures(gen, SampleConfig(n_mixtures=5), seed=0)).to_csv(
        tmp_path / "results" / "mixtures.csv", index=False
    )
    write_domains(tmp_path / "results" / "domains.json", tokens)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params.update(
        proxy={**dataclasses.asdict(CFG), "replicates": 1},
        seed=0,
        target="mean",
        active=dataclasses.asdict(dataclasses.replace(FAST, rounds=2, batch_size=2, candidates=500)),
    )
    params["large"]["optim"].update(steps=10, batch_size=4)  # a 1,280-token large run: caps these tokens allow
    params["large"]["model"]["context"] = 32
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REGMIX_WORKERS", "1")
    monkeypatch.setattr(sys, "argv", stage_argv(str(tokens)))
    from stages.proxies import main

    main()
    table = read_csv("results/proxies.csv")
    metrics = json.loads((tmp_path / "results" / "proxy_run.json").read_text())
    assert list(table.columns[:2]) == ["id", ROUND] and table[ROUND].tolist() == [0] * 5 + [1] * 2 + [2] * 2
    assert metrics["proxies"] == metrics["trained"] == 9
    assert [r["trained"] for r in metrics["rounds"]] == [5, 2, 2]
    assert metrics["proxy_tokens_per_s"] == round(metrics["tokens_per_proxy"] / metrics["proxy_seconds"], 1)
    assert read_csv("results/replicates.csv")["id"].tolist() == [0]


@pytest.mark.slow  # about 20 s of LightGBM fits
@pytest.mark.skipif(not (DATA / "train_mixture_1m.csv").exists(), reason="RegMix's released CSVs not in ../shared")
def test_bench_prints_json_last():
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_active",
            "--released",
            str(DATA),
            "--seeds",
            "1",
            "--start",
            "32",
            "--batch",
            "8",
            "--rounds",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["proxies"] == 40 and set(result) == {"proxies", "random", "active"}
    for strategy in ("random", "active"):
        assert -1 <= result[strategy]["spearman"] <= 1 and result[strategy]["regret"] >= 0
