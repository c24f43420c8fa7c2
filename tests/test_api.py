"""regmix.api: the example of its docstring runs as written, and its results make sense."""

from __future__ import annotations

import re
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO

from regmix import api
from regmix.choose.regression import FitReport
from regmix.config import ProxyConfig, SampleConfig
from regmix.errors import UserError
from regmix.tables import loss_columns, weight_columns, write_csv

DOMAINS = ["arithmetic", "code", "logs", "prose"]  # tests/fixtures/tiny_corpus


def example() -> str:
    """The one ```python block of regmix.api's docstring."""
    blocks = re.findall(r"```python\n(.*?)```", api.__doc__, re.S)
    assert len(blocks) == 1, "regmix.api's docstring has one example block"
    return textwrap.dedent(blocks[0])


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> dict:
    """The namespace the docstring example leaves, run from the repository root."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        mp.setenv("REGMIX_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("TMPDIR", str(tmp_path_factory.mktemp("work")))  # the example's tempfile.mkdtemp()
        for name in ("REGMIX_BACKEND", "REGMIX_RAY_ADDRESS"):
            mp.delenv(name, raising=False)
        namespace: dict = {}
        threads = torch.get_num_threads()  # one in-process proxy worker sets its own
        try:
            exec(compile(example(), "regmix/api.py (docstring example)", "exec"), namespace)
        finally:
            torch.set_num_threads(threads)
    return namespace


def test_prepare_gives_the_corpus_domains(ran):
    domains = ran["domains"]
    assert sorted(domains) == DOMAINS
    assert all(d["train_tokens"] > 0 and d["valid_tokens"] > 0 for d in domains.values())


def test_sampled_mixtures_sum_to_one(ran):
    mixtures = ran["mixtures"]
    assert len(mixtures) == 8 and list(mixtures.columns) == ["id", *DOMAINS]
    weights = mixtures[DOMAINS].to_numpy()
    assert (weights >= 0).all() and np.allclose(weights.sum(axis=1), 1.0)


def test_proxies_table(ran):
    proxies, mixtures = ran["proxies"], ran["mixtures"]
    assert proxies.shape == (8, 1 + 3 * len(DOMAINS))  # id, weights, loss and bpb of each domain
    assert weight_columns(proxies) == DOMAINS
    assert loss_columns(proxies) == [f"loss.{d}" for d in DOMAINS]
    pd.testing.assert_frame_equal(proxies[mixtures.columns], mixtures)
    assert np.isfinite(proxies[loss_columns(proxies)].to_numpy()).all()
    assert proxies.attrs["stats"]["proxies"] == 8


def test_fit_report(ran):
    fitted = ran["fitted"]
    assert isinstance(fitted, FitReport)
    assert fitted.regressor.domains == DOMAINS and fitted.regressor.target == "mean"
    assert fitted.metrics["cv"]["n"] == 8 and "resolution" in fitted.metrics
    assert len(fitted.predictions) == 8


def test_fit_with_replicates_and_from_a_file(ran, tmp_path, one_torch_thread):
    """Two swarm rows again with seed + 1: the seed noise beside the CV error; a proxies.csv fits alike."""
    proxies, work = ran["proxies"], ran["work"]
    again = api.train_swarm(
        ran["mixtures"].iloc[:2],
        f"{work}/tokens",
        ran["tiny"],
        store=f"{work}/proxies",
        seed=1,
        placement=api.Placement(workers=1),
    )
    report = api.fit(proxies, "mean", {"cv_folds": 2}, replicates=again)
    assert report.metrics["resolution"]["seed_std"] >= 0
    write_csv(tmp_path / "proxies.csv", proxies)
    from_file = api.fit(tmp_path / "proxies.csv", "mean", {"cv_folds": 2})
    assert from_file.metrics["cv"] == report.metrics["cv"]


def test_chosen_mixture_over_the_corpus_domains(ran):
    choice = ran["choice"]
    assert sorted(choice.mixture) == DOMAINS
    assert min(choice.mixture.values()) >= 0 and abs(sum(choice.mixture.values()) - 1) < 1e-4
    assert np.isfinite(choice.summary["predicted_target"])
    assert {"uniform", "prior"} <= set(choice.summary["baselines"])
    # the proxies given: the choice's distance to the nearest trained one, as the stage reports it
    nearest = np.abs(ran["proxies"][DOMAINS].to_numpy() - [choice.mixture[d] for d in DOMAINS]).sum(axis=1).min()
    assert choice.summary["evidence"]["nearest_l1"] == pytest.approx(nearest, abs=1e-5)
    assert set(choice.summary["usage"]) == set(DOMAINS)


def test_verify_measures_each_mixture_with_fresh_seeds(ran):
    checked = ran["checked"]
    table = checked["table"]
    assert sorted(table["mixture"].unique()) == ["regmix", "uniform"] and sorted(table["seed"].unique()) == [2, 3]
    assert checked["seeds"] == 2 and checked["seed_noise"]["df"] == 2
    entry = checked["mixtures"]["uniform"]
    assert entry["measured"] == pytest.approx(table.query("mixture == 'uniform'")["target"].mean())
    assert entry["predicted"] == pytest.approx(ran["choice"].summary["baselines"]["uniform"]["predicted_target"])
    assert checked["mixtures"]["regmix"]["predicted"] == ran["choice"].summary["predicted_target"]  # the search's
    assert entry["vs_regmix"]["verdict"] in ("better", "worse", "not distinguishable")
    # the search's decision steps, then verify's pick; the answer names the mixture to use
    steps = [s["step"] for s in checked["decision"]["steps"]]
    assert steps == ["rule", "incumbent", "prior_guard", "verified_pick"]
    assert checked["answer"]["search_proposal"] == ran["choice"].mixture
    assert checked["answer"]["mixture"] in (ran["choice"].mixture, {d: 1 / len(DOMAINS) for d in DOMAINS})


def test_verify_with_the_swarm_tables(ran, one_torch_thread):
    proxies = ran["proxies"]
    means = proxies[[c for c in proxies.columns if c.startswith("loss.")]].mean(axis=1)
    best = proxies.loc[means.idxmin(), DOMAINS].to_dict()
    checked = api.verify(
        {"best_proxy": best},
        ran["work"] + "/tokens",
        "mean",
        ran["tiny"],
        seeds=1,
        store=ran["work"] + "/proxies",
        placement=api.Placement(workers=1),
        proxies=proxies,
        replicates=proxies.iloc[:2],
    )
    assert checked["mixtures"]["best_proxy"]["swarm"] == pytest.approx(means.min())
    assert checked["seed_noise"] == {"std": 0.0, "df": 2, "replicate_pairs": 2}  # a table paired with itself


def test_megatron_blend_names_every_nonzero_domain(ran):
    blend, mixture = ran["blend"], ran["choice"].mixture
    args = [line for line in blend.splitlines() if not line.startswith("#")]
    assert len(args) == 1 and args[0].startswith("--data-path ")
    pairs = args[0].split()[1:]
    weights = dict(zip(pairs[1::2], map(float, pairs[0::2])))
    kept = [d for d in DOMAINS if mixture[d] > 0]
    assert list(weights) == [f"/data/{d}_text_document" for d in kept]
    assert abs(sum(weights.values()) - 1) < 1e-9


def test_other_formats_splits_budget_and_cap(ran):
    domains, mixture = ran["domains"], ran["choice"].mixture
    split = api.export(
        mixture, domains, splits=["train", "valid"], tokens=10**5, prefix_template="/data/{split}/{domain}"
    )
    assert [line.split()[0] for line in split.splitlines() if not line.startswith("#")] == [
        "--train-data-path",
        "--valid-data-path",
    ]
    olmo = api.export(
        mixture, domains, to="olmo-core", tokens=10**5, prefixes={d: f"s3://b/{d}/*.npy" for d in domains}
    )
    assert "requested_tokens: 100000" in olmo
    # without tokens: the large run's budget, steps x batch x context of large_cfg
    hf = api.export(mixture, domains, to="hf-datasets", large_cfg={"optim": {"steps": 7}}, max_epochs=1e9)
    assert (
        "token budget: 14,336 tokens (large.optim.steps 7 x large.optim.batch_size 16 x large.model.context 128"
    ) in hf
    with pytest.warns(UserWarning, match="epochs, more than 0.001"):
        api.export(mixture, domains, to="litdata", tokens=10**5, max_epochs=0.001)
    with pytest.raises(UserError, match="to="):
        api.export(mixture, domains, to="nemo-aligner")


def test_configs_from_dicts_keep_the_other_defaults():
    cfg = api.as_config(ProxyConfig, {"optim": {"steps": 3}, "model": {"context": 16}})
    assert cfg.optim.steps == 3 and cfg.optim.precision == ProxyConfig().optim.precision == "auto"
    assert cfg.model.context == 16 and cfg.model.d_model == ProxyConfig().model.d_model
    assert api.as_config(SampleConfig, None) == SampleConfig()
    same = SampleConfig(n_mixtures=5)
    assert api.as_config(SampleConfig, same) is same
    with pytest.raises(UserError, match="sample.n_mixture"):
        api.as_config(SampleConfig, {"n_mixture": 5}, "sample.")
    with pytest.raises(UserError, match="proxy.optim.stepz"):
        api.as_config(ProxyConfig, {"optim": {"stepz": 5}}, "proxy.")


def test_sample_from_a_token_share():
    share = {"web": 0.6, "code": 0.3, "math": 0.1}
    cfg = {"n_mixtures": 16, "max_epochs": None}  # caps need token counts, a share has none
    swarm = api.sample(share, cfg, seed=1)
    assert list(swarm.columns) == ["id", *share] and len(swarm) == 16
    pd.testing.assert_frame_equal(swarm, api.sample(share, cfg, seed=1))
    with pytest.raises(UserError, match="sample.max_epochs: caps are epochs of the large run"):
        api.sample(share, {"n_mixtures": 16})
