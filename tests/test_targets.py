"""Targets over score records: sets, tasks, weighted means, the standardised aggregate, and the
bits-per-byte conversion behind `target_metric: bpb`."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_data import build_tokens
from tokenizers import Tokenizer

from regmix.errors import UserError
from regmix.target import Target, run_target
from regmix.train.scores import bits_per_byte, score_model, scoring_data, window_tokens_per_byte
from regmix.train.training import evaluate_loss

SWARM = pd.DataFrame(
    {
        "round": [0, 0, 0, 0, 1],
        "loss.web": [3.0, 3.2, 3.4, 3.6, 9.0],  # spread 0.2582
        "loss.code": [2.0, 2.0, 2.1, 2.1, 9.0],  # spread 0.0577
        "loss.news": [4.0, 5.0, 6.0, 7.0, 9.0],
        "bpb.web": [1.0, 1.1, 1.2, 1.3, 9.0],
        "task.cloze": [0.9, 0.8, 0.7, 0.6, 9.0],
    }
)


def test_zmean_on_a_hand_made_table():
    params = {"target": {"aggregate": "zmean", "over": ["web", "code"]}}
    target = run_target(params, ["web", "code"], SWARM)  # calibrated on round 0 only: the swarm
    assert target.name == "zmean(web,code)"
    web_c, code_c = 3.3, 2.05
    web_s, code_s = np.std([3.0, 3.2, 3.4, 3.6], ddof=1), np.std([2.0, 2.0, 2.1, 2.1], ddof=1)
    row = pd.DataFrame({"loss.web": [3.1], "loss.code": [2.2]})
    expected = ((3.1 - web_c) / web_s + (2.2 - code_c) / code_s) / 2
    assert target.values(row, "t")[0] == pytest.approx(expected)
    # the swarm's own rows average to 0, and a term the swarm barely moves counts as much as one it moves a lot
    assert target.values(SWARM[SWARM["round"] == 0], "t").mean() == pytest.approx(0.0)
    # without calibration it refuses rather than guess the scales
    with pytest.raises(UserError, match="calibrate"):
        Target.parse(params["target"]).values(row, "t")


def test_zmean_refuses_a_flat_term_and_a_short_list():
    flat = SWARM.assign(**{"loss.code": 2.0})
    with pytest.raises(UserError, match=r"no spread over the proxies for \['code'\]"):
        Target.parse({"aggregate": "zmean", "over": ["web", "code"]}).calibrate(flat)
    with pytest.raises(UserError, match="target.over: a list of at least two"):
        Target.parse({"aggregate": "zmean", "over": ["web"]})
    with pytest.raises(UserError, match="the one aggregate is"):
        Target.parse({"aggregate": "max", "over": ["web", "code"]})


def test_set_task_and_weighted_terms():
    row = SWARM.iloc[[0]]
    assert Target.parse("news").values(row, "t")[0] == 4.0  # a held-out set's loss
    assert Target.parse("task:cloze").values(row, "t")[0] == 0.9  # a task's gold bits per byte, whatever the metric
    bpb = Target.parse("web", metric="bpb")
    assert bpb.name == "web [bpb]" and bpb.values(row, "t")[0] == 1.0
    mixed = Target.parse({"web": 1, "task:cloze": 3})
    assert mixed.values(row, "t")[0] == pytest.approx((3.0 + 3 * 0.9) / 4)
    # `mean` is over the training domains, not every scored set
    assert Target.parse("mean", domains=["web", "code"]).values(row, "t")[0] == pytest.approx(2.5)
    with pytest.raises(UserError, match=r"names no set or task scored in t: \['task:qa'\]"):
        Target.parse("task:qa").values(row, "t")
    with pytest.raises(UserError, match="target_metric"):
        Target.parse("web", metric="bits")


def test_bits_per_byte_hand_computed():
    # 2 nats per token over text of 2 bytes per token: 1 nat per byte = 1 / ln 2 bits per byte
    assert bits_per_byte(2.0, 0.5) == pytest.approx(1 / math.log(2))
    assert bits_per_byte(math.log(2), 1.0) == pytest.approx(1.0)


def test_tokens_per_byte_of_windows(tmp_path):
    tokens = build_tokens(tmp_path / "tokens")
    tokenizer = Tokenizer.from_file(str(tokens / "tokenizer.json"))
    ids = tokenizer.encode("héllo world, héllo again").ids
    windows = torch.tensor([ids[:5], ids[1:6]])
    n_bytes = sum(len(tokenizer.decode(w[1:].tolist()).encode()) for w in windows)
    assert window_tokens_per_byte(windows, tokenizer) == pytest.approx(8 / n_bytes)


def test_score_model_records_every_set_in_loss_and_bpb(tmp_path):
    from regmix.config import ModelConfig
    from regmix.train.model import LLaMA

    tokens = build_tokens(tmp_path / "tokens")
    torch.manual_seed(0)
    model = LLaMA(ModelConfig(n_layer=1, n_head=2, d_model=16, d_ff=32, context=16, vocab_size=400))
    data = scoring_data(str(tokens), "valid", 16, 4)
    scores = score_model(model, data, batch_size=3)
    losses = evaluate_loss(model, data.windows, 4)
    for name, loss in losses.items():
        assert scores[f"loss.{name}"] == pytest.approx(loss)
        assert scores[f"bpb.{name}"] == pytest.approx(loss * data.tokens_per_byte[name] / math.log(2))
    test = scoring_data(str(tokens), "test", 16, 4)
    assert not torch.equal(test.windows["alpha"], data.windows["alpha"])  # the verdict reads other documents


def test_docs_show_the_committed_target_fits():
    """docs/benchmarks.md's table of fits per kind of target is the committed benchmark record's, and
    the ratios its prose quotes (the task's and a domain's CV error over the seed noise, each term
    fitted on its own against the aggregate) are the record's."""
    import json

    from conftest import REPO

    from benchmarks.bench_target_fits import docs_table, per_term_sentence

    record = json.loads((REPO / "benchmarks/results/target_fits.json").read_text())
    page = (REPO / "docs/benchmarks.md").read_text()
    assert docs_table(record) in page
    assert per_term_sentence(record) in " ".join(page.split())
    rows = {row["target"]: row for row in record["rows"]}
    for target in ("task:true_ending", "wikipedia"):
        assert f"{rows[target]['rmse_over_seed_std']:.1f} times" in page, target


def test_docs_state_the_cost_of_adding_an_evaluation_set():
    """The figures docs/benchmarks.md quotes for an evaluation set added to the finished demo are its record's."""
    import json

    from conftest import REPO

    added = json.loads((REPO / "benchmarks/results/held_out_targets/pydoc_eval_set/proxies.json").read_text())
    assert added["trained"] == 0 and added["scored"] == added["proxies"]
    page = " ".join((REPO / "docs/benchmarks.md").read_text().split())
    section = page[page.index("held_out_targets/pydoc_eval_set/") :]
    for figure in (f"{added['scored']} ", f"{added['scoring_seconds']:.1f} s", f"{added['proxy_seconds']:.1f} s"):
        assert figure in section[:300], figure


def test_each_term_fitted_on_its_own_rebuilds_the_aggregate():
    """bench_target_fits' per-term fit combines each term's out-of-fold predictions by the target's
    weights: exact where each term is linear in the weights; nothing for a target of one term."""
    import numpy as np
    import pandas as pd

    from benchmarks.bench_target_fits import per_term_fit
    from regmix.choose.regression import ProxyTable
    from regmix.config import RegressionConfig, from_dict

    W = np.random.default_rng(0).dirichlet(np.ones(3), 30)
    scores = pd.DataFrame({"loss.a": 5 - 2 * W[:, 0], "loss.b": 4 - 3 * W[:, 1] + W[:, 2]})
    table = ProxyTable([str(i) for i in range(30)], ["a", "b", "c"], W, scores, "hand-made")
    cfg = from_dict(RegressionConfig, {"model": "linear", "cv_folds": 3, "params": {}})
    fit = per_term_fit(table, Target.parse({"a": 1, "b": 3}), cfg, 0)
    assert fit["spearman"] == pytest.approx(1.0) and fit["rmse"] == pytest.approx(0.0, abs=1e-9)
    assert per_term_fit(table, Target.parse("a"), cfg, 0) is None
