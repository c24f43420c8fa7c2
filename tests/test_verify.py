"""The proxy-scale check of the compared mixtures: fresh seeds, the verdict on hand-computed
numbers, the words of the report and README, and the params it refuses."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from regmix.checks import check_params
from regmix.compose import composed
from regmix.config import ProxyConfig, VerifyConfig
from regmix.errors import UserError
from regmix.noise import REPLICATE_SEED_OFFSET
from regmix.report import readme_results
from regmix.swarm import run_seeds
from regmix.target import Target
from regmix.verify import doubts, judge, measured_targets, verify_seeds, verify_text
from conftest import REPO

MEASURED = {"regmix": [1.0, 1.2], "prior": [2.0, 2.2], "best_proxy": [1.1, 1.3]}
PREDICTED = {"regmix": 0.9, "prior": 2.1, "best_proxy": 1.0}


def test_seeds_are_fresh():
    for base in (0, 7):
        seeds = verify_seeds(3, base)
        assert len(set(seeds)) == 3
        assert not {base, base + REPLICATE_SEED_OFFSET} & set(seeds)  # the swarm's and its replicates' seeds
    assert verify_seeds(0, 0) == []


def test_judge_on_hand_computed_numbers():
    result = judge(MEASURED, {"17": [3.0, 3.2]}, PREDICTED, {"best_proxy": 0.8})
    # every pair of losses is 0.2 apart: squares 2 x 0.1^2 each, 4 pairs, 4 degrees of freedom
    assert result["seed_noise"] == {"std": pytest.approx(0.1 * math.sqrt(2)), "df": 4, "replicate_pairs": 1}
    assert result["seeds"] == 2
    chosen = result["mixtures"]["regmix"]
    assert chosen["measured"] == pytest.approx(1.1) and chosen["predicted"] == 0.9
    low, high = chosen["ci95"]
    assert low < 1.1 < high and high - 1.1 == pytest.approx(2.776 * 0.1, abs=1e-3)  # t(4) x std / sqrt(2)
    best = result["mixtures"]["best_proxy"]
    assert best["swarm"] == 0.8 and best["vs_regmix"]["difference"] == pytest.approx(0.1)
    assert best["vs_regmix"]["verdict"] == "not distinguishable"  # t = 0.1 / 0.1414 = 0.71
    gain = result["over_prior"]
    assert gain["measured"] == pytest.approx(1.0) and gain["predicted"] == pytest.approx(1.2)
    assert gain["verdict"] == "real" and gain["optimism"] == pytest.approx(0.2)
    json.dumps(result, allow_nan=False)


def test_a_choice_worse_than_the_prior_is_called_so():
    result = judge({"regmix": [2.0, 2.2], "prior": [1.0, 1.2]}, {}, PREDICTED)
    assert result["over_prior"]["verdict"] == "prior better"
    assert result["mixtures"]["prior"]["vs_regmix"]["verdict"] == "better"
    assert "`prior` is distinguishably better" in verify_text(result)


def test_doubts_name_what_speaks_against_the_choice():
    assert doubts(judge(MEASURED, {"17": [3.0, 3.2]}, PREDICTED)) == []  # a real gain, best_proxy a tie
    worse = doubts(judge({"regmix": [2.0, 2.2], "best_proxy": [1.0, 1.2], "prior": [2.1, 2.3]}, {}, PREDICTED))
    assert worse[0].startswith("`best_proxy` measured distinguishably better than `regmix`")
    assert "not confirmed" in worse[1] and "verify.seeds" in worse[-1]


def test_unknown_noise_judges_nothing():
    result = judge({"regmix": [1.0], "prior": [2.0]}, {}, PREDICTED)
    assert result["seed_noise"]["std"] is None and result["seed_noise"]["df"] == 0
    assert result["over_prior"]["verdict"] == "unknown" and result["over_prior"]["ci95"] == [None, None]
    json.dumps(result, allow_nan=False)
    assert "no difference can be judged" in verify_text(result)


def test_text_gives_every_figure_with_its_interval_and_n():
    text = verify_text(judge(MEASURED, {"17": [3.0, 3.2]}, PREDICTED, {"best_proxy": 0.8}))
    assert "(2 fresh seeds each" in text
    assert "`regmix` 1.100 [" in text and "(predicted 0.900)" in text
    assert "gain over `prior`: 1.000 [" in text and "1.200 predicted (real)" in text
    assert "`best_proxy` +0.100 [" in text and "its swarm loss 0.800" in text
    assert "4 degrees of freedom" in text and "1 replicate pairs" in text
    assert "verify.seeds: 0" in verify_text(judge({}, {}, {}))


def test_no_seeds_trains_nothing_and_says_so(tmp_path):
    table = run_seeds({"regmix": {"a": 1.0}}, ProxyConfig(), tmp_path / "no tokens needed", tmp_path / "store", [],
                      Target.parse("a"), ["a"])
    assert table.empty and list(table.columns) == ["mixture", "seed", "target"]
    assert measured_targets(table) == {} and not (tmp_path / "store").exists()
    assert "verify.seeds: 0" in verify_text(judge(measured_targets(table), {}, {}))


def test_readme_carries_the_check():
    proxies = {"proxies": 8, "params": 1000, "tokens_per_proxy": 100}
    fit = {"model": "lightgbm", "target": "mean", "cv": {"spearman": 0.5, "rmse": 0.1, "n": 8, "folds": 2}}
    mixture = {"train": {"a": 0.6, "b": 0.4}}
    verify = judge(MEASURED, {}, PREDICTED)
    assert verify_text(verify) in readme_results(None, proxies, fit, mixture, verify)
    assert "Measured again" not in readme_results(None, proxies, fit, mixture)


def test_bad_params_are_named():
    params = composed([], REPO / "conf")
    params["verify"]["seeds"] = -1
    with pytest.raises(UserError, match="verify.seeds is -1"):
        check_params(params)
    params["verify"].update(seeds=3, mixtures=["regmix", "priro"])
    with pytest.raises(UserError, match="verify.mixtures: unknown mixture.s. priro"):
        check_params(params, ["wikipedia", "news"])


def test_a_check_at_a_larger_scale_changes_only_what_it_names():
    proxy = ProxyConfig()
    assert VerifyConfig().at_proxy_scale and VerifyConfig().scale(proxy) == proxy
    check = VerifyConfig(optim={"steps": 512}, model={"d_model": 128})
    scaled = check.scale(proxy)
    assert not check.at_proxy_scale and check.changes() == {"model.d_model": 128, "optim.steps": 512}
    assert scaled.optim == replace(proxy.optim, steps=512) and scaled.model == replace(proxy.model, d_model=128)
    assert scaled.eval == proxy.eval and scaled.replicates == proxy.replicates
    with pytest.raises(UserError, match="unknown config key.s. verify.optim.stpes"):
        VerifyConfig(optim={"stpes": 512}).scale(proxy)


def test_bad_scale_params_are_named_before_any_compute():
    params = composed(["+verify.optim.steps=0"], REPO / "conf")
    with pytest.raises(UserError, match="verify.optim.steps is 0"):
        check_params(params)
    params = composed(["+verify.model.n_head=3"], REPO / "conf")
    with pytest.raises(UserError, match="verify.model"):
        check_params(params)
    check_params(composed(["+verify.optim.steps=512"], REPO / "conf"))


def test_a_check_at_its_own_scale_says_so_and_uses_only_its_seeds():
    result = judge(MEASURED, {}, PREDICTED, scale={"optim.steps": 512})
    assert result["scale"] == {"optim.steps": 512} and result["seed_noise"]["replicate_pairs"] == 0
    text = verify_text(result)
    assert text.startswith("Measured again at the check's scale (optim.steps 512) (2 fresh seeds each")
    assert "these seeds)" in text and "replicate pairs" not in text
    worse = doubts(judge({"regmix": [2.0, 2.2], "uniform": [1.0, 1.2]}, {}, PREDICTED, scale={"optim.steps": 512}))
    assert worse[0] == "`uniform` measured distinguishably better than `regmix` at the check's scale (optim.steps 512) (-1.000 nats)"
    assert "may not hold at a larger scale" in worse[-1]
    assert "(predicted 0.900 at the proxy scale)" in text
    assert judge(MEASURED, {}, PREDICTED)["scale"] == {}
    assert verify_text(judge(MEASURED, {}, PREDICTED)).startswith("Measured again at the proxy scale")
