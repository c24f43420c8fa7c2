"""The proxy-scale check of the compared mixtures: fresh seeds, the verdict on hand-computed
numbers, the words of the report and the results sections, and the params it refuses; and the benchmark of
how the proxies' order transfers to the large runs (benchmarks.bench_transfer)."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from dataclasses import replace

import pandas as pd
import pytest
import yaml
from conftest import REPO
from tiny_data import SENTENCES, build_tokens

from benchmarks.bench_decision_large import by_check, check_rows, check_summary, check_table, replay
from benchmarks.bench_decision_large import measure as decision_large_record
from benchmarks.bench_decision_large import replay_table as decision_large_replay_table
from benchmarks.bench_decision_large import summary as decision_large_summary
from benchmarks.bench_decision_large import table as decision_large_table
from benchmarks.bench_large_targets import (
    ONE_SHOT,
    by_term_pairs,
    by_term_sentence,
    evaluation_file,
    experiment_records,
    interior_sources,
    interior_summary,
    interior_table,
    load,
    machine_sources,
    machine_summary,
    most_seeded,
    near_top,
    near_top_records,
    near_top_sentence,
    rounds_sources,
    rounds_summary,
    rounds_table,
    sources,
    summary,
    table,
)
from benchmarks.bench_swarm_size import against_cheap, cheap_summary, cheap_table, power_law, scale_slope, seeds_needed
from benchmarks.bench_swarm_size import summary as swarm_size_summary
from benchmarks.bench_swarm_size import table as swarm_size_table
from benchmarks.bench_swarm_size import targets as swarm_size_targets
from benchmarks.bench_transfer import COMMITTED, docs_sentences, large_losses, transfer
from regmix.checks import check_params
from regmix.choose.noise import REPLICATE_SEED_OFFSET
from regmix.choose.verify import (
    judge,
    measured_targets,
    proposed_mixtures,
    run_verify,
    trained,
    verified_step,
    verify_seeds,
)
from regmix.choose.verify_text import doubts, verify_text
from regmix.compose import composed
from regmix.config import ProxyConfig, VerifyConfig
from regmix.errors import UserError
from regmix.judge.readme import readme_results
from regmix.statistics import compare, pooled_noise
from regmix.target import Target
from regmix.train.swarm import run_seeds

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
    # its own two seeds: std 0.1414 with 1 df; t(0.975, 1) = 12.706; 0.1414 / sqrt(2) = 0.1
    assert low < 1.1 < high and high - 1.1 == pytest.approx(12.706 * 0.1, abs=1e-3)
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
    measured = {"regmix": [2.0, 2.2], "best_proxy": [1.0, 1.2], "prior": [2.1, 2.3]}
    worse = doubts(judge(measured, {}, PREDICTED, choose=False))
    assert worse[0].startswith("`best_proxy` measured distinguishably better than `regmix`")
    assert "not confirmed" in worse[1] and "verify.seeds" in worse[-1]
    taken = doubts(judge(measured, {}, PREDICTED))  # the check trains best_proxy's mixture as regmix instead
    assert taken[0].startswith(
        "the large runs train `best_proxy`'s mixture as `regmix`, not the search's choice: it measured -1.000 ["
    ) and taken[0].endswith("(better)")
    assert not any(line.startswith("`best_proxy` measured") for line in taken)


def test_a_verified_mixture_replaces_the_choice_only_when_distinguishably_lower():
    candidates = {"regmix": {"a": 1.0, "b": 0.0}, "uniform": {"a": 0.5, "b": 0.5}, "prior": {"a": 0.8, "b": 0.2}}
    # uniform lower by 0.1 on seeds that spread 0.14: lowest, not distinguishable: the choice stays (a warning)
    lower = judge({"regmix": [2.0, 2.2], "uniform": [1.9, 2.1], "prior": [2.5, 2.7]}, {}, PREDICTED)
    assert lower["choice"] == {"mixture": "regmix", "by": "search", "lowest": "uniform"}
    assert lower["mixtures"]["uniform"]["vs_regmix"]["verdict"] == "not distinguishable"
    assert trained(candidates, lower) == candidates
    assert any(
        line.startswith("`uniform` measured lower than `regmix`") and "the search's choice is kept" in line
        for line in doubts(lower)
    )
    step = verified_step(lower, candidates, PREDICTED, choose=True)
    assert (step["step"], step["changed"], step["mixture"]) == ("verified_pick", False, "regmix")
    assert "not distinguishable, Holm-adjusted p" in step["says"]
    assert "No verified mixture measured distinguishably lower" in verify_text(lower)
    # distinguishably lower (Welch, Holm over two comparisons): replaced, and the step says by how much
    clear = judge(
        {"regmix": [2.0, 2.02, 2.04], "uniform": [1.5, 1.52, 1.54], "prior": [2.5, 2.52, 2.54]}, {}, PREDICTED
    )
    assert clear["choice"] == {"mixture": "uniform", "by": "measured", "lowest": "uniform"}
    assert clear["mixtures"]["uniform"]["vs_regmix"]["p_holm"] < 0.05
    assert trained(candidates, clear) == {**candidates, "regmix": candidates["uniform"]}
    step = verified_step(clear, candidates, {**PREDICTED, "uniform": 1.4}, choose=True)
    assert step["changed"] and step["l1"] == pytest.approx(1.0) and step["mixture"] == "uniform"
    assert step["predicted_change"] == pytest.approx(1.4 - PREDICTED["regmix"])
    assert "The large runs train `uniform`'s mixture as `regmix`" in verify_text(clear)
    # a proposal that is not a candidate is trained from the verified mixtures' weights
    proposal = judge({"regmix": [2.0, 2.02, 2.04], "incumbent": [1.5, 1.52, 1.54]}, {}, PREDICTED)
    assert trained(candidates, proposal, {"incumbent": {"a": 0.1, "b": 0.9}})["regmix"] == {"a": 0.1, "b": 0.9}
    for kept in (
        judge({"regmix": [2.0, 2.2], "uniform": [2.0, 2.2]}, {}, PREDICTED),  # a tie keeps the search's
        judge({"regmix": [2.0, 2.02, 2.04], "uniform": [1.0, 1.02, 1.04]}, {}, PREDICTED, choose=False),
        judge({"uniform": [1.0, 1.2], "prior": [2.0, 2.2]}, {}, PREDICTED),
    ):  # regmix not verified
        assert kept["choice"]["mixture"] == "regmix" and trained(candidates, kept) == candidates


def test_proposals_are_verified_once_under_their_own_name():
    verified = {"regmix": {"a": 1.0, "b": 0.0}, "best_proxy": {"a": 0.2, "b": 0.8}, "prior": {"a": 0.6, "b": 0.4}}
    choice = {"proposals": {"incumbent": {"a": 0.2, "b": 0.8}, "prior_guard": {"a": 0.6, "b": 0.4}}}
    assert proposed_mixtures(choice, verified) == {}  # the incumbent's proxy is best_proxy; the prior is verified
    choice = {"proposals": {"incumbent": {"a": 0.3, "b": 0.7}, "prior_guard": {"a": 0.6, "b": 0.4}}}
    assert proposed_mixtures(choice, {"regmix": verified["regmix"]}) == {
        "incumbent": {"a": 0.3, "b": 0.7},
        "prior": {"a": 0.6, "b": 0.4},
    }


def test_run_verify_measures_the_proposals_decides_and_answers():
    """The stage's check on a stand-in trainer: the prior guard's proposal measured beside the choice
    replaces it when distinguishably lower, and the answer names the step that decided."""
    compared = {"regmix": {"a": 1.0, "b": 0.0}, "uniform": {"a": 0.5, "b": 0.5}, "human": {"a": 0.9, "b": 0.1}}
    losses = {"regmix": [2.0, 2.02, 2.04], "uniform": [2.1, 2.12, 2.14], "prior": [1.5, 1.52, 1.54]}
    rule = {"step": "rule", "changed": False, "says": "top_k"}
    choice = {
        "train": compared["regmix"],
        "decision": {"steps": [rule]},
        "proposals": {"prior_guard": {"a": 0.6, "b": 0.4}},
    }
    trained_on = []

    def train(mixtures):
        trained_on.append(dict(mixtures))
        return pd.DataFrame(
            [
                {"mixture": n, "seed": s, "target": losses[n][k]}
                for k, s in enumerate(verify_seeds(3, 0))
                for n in mixtures
            ]
        )

    verified = run_verify(
        compared, ["regmix", "uniform"], train, Target.parse("mean", domains=["a", "b"]), choice=choice
    )
    assert trained_on == [{**{n: compared[n] for n in ("regmix", "uniform")}, "prior": {"a": 0.6, "b": 0.4}}]
    assert len(verified.table) == 9 and verified.record["choice"]["mixture"] == "prior"
    assert [s["step"] for s in verified.record["decision"]["steps"]] == ["rule", "verified_pick"]
    assert verified.record["decision"]["decided_by"] == "verified_pick"
    assert verified.compared == {**compared, "regmix": {"a": 0.6, "b": 0.4}}  # human is kept, not measured
    assert verified.answer["mixture"] == {"a": 0.6, "b": 0.4} and not verified.answer["is_search_proposal"]
    assert run_verify(compared, ["uniform"], train, Target.parse("mean", domains=["a", "b"])).answer is None


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
    table = run_seeds(
        {"regmix": {"a": 1.0}},
        ProxyConfig(),
        tmp_path / "no tokens needed",
        tmp_path / "store",
        [],
        Target.parse("a"),
        ["a"],
    )
    assert table.empty and list(table.columns) == ["mixture", "seed", "target"]
    assert measured_targets(table) == {} and not (tmp_path / "store").exists()
    assert "verify.seeds: 0" in verify_text(judge(measured_targets(table), {}, {}))


def test_results_page_carries_the_check():
    proxies = {"proxies": 8, "params": 1000, "tokens_per_proxy": 100}
    fit = {"model": "lightgbm", "target": "mean", "cv": {"spearman": 0.5, "rmse": 0.1, "n": 8, "folds": 2}}
    mixture = {"train": {"a": 0.6, "b": 0.4}}
    verify = judge(MEASURED, {}, PREDICTED)
    assert verify_text(verify) in readme_results(None, proxies, fit, mixture, verify).page
    assert "Measured again" not in readme_results(None, proxies, fit, mixture).page


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
    worse = doubts(
        judge({"regmix": [2.0, 2.2], "uniform": [1.0, 1.2]}, {}, PREDICTED, scale={"optim.steps": 512}, choose=False)
    )
    assert (
        worse[0]
        == "`uniform` measured distinguishably better than `regmix` at the check's scale (optim.steps 512) (-1.000 nats)"
    )
    assert "may not hold at a larger scale" in worse[-1]
    assert "(predicted 0.900 at the proxy scale)" in text
    assert judge(MEASURED, {}, PREDICTED)["scale"] == {}
    assert verify_text(judge(MEASURED, {}, PREDICTED)).startswith("Measured again at the proxy scale")


def test_transfer_scores_the_proxies_order_against_the_large_runs():
    evaluation = {
        "regmix": {"domain_loss": {"a": 2.0, "b": 4.0}},
        "best_proxy": {"domain_loss": {"a": 2.0, "b": 4.0}, "runs_of": "regmix"},
        "uniform": {"domain_loss": {"a": 3.0, "b": 2.0}},
        "prior": {"domain_loss": {"a": 4.0, "b": 3.0}},
        "summary": {"seed_noise": {}},
    }
    large = large_losses(evaluation)
    assert list(large) == ["regmix", "uniform", "prior"]  # best_proxy is regmix's runs: counted once
    same_order = {"regmix": {"a": 5.0, "b": 7.0}, "uniform": {"a": 6.0, "b": 5.0}, "prior": {"a": 7.0, "b": 6.0}}
    a = transfer(same_order, large, Target.parse("a"))
    assert (a["spearman"], a["n"], a["regret"], a["proxy_pick"], a["large_best"]) == (1.0, 3, 0.0, "regmix", "regmix")
    # mean: large regmix 3.0, uniform 2.5, prior 3.5; the proxies: regmix 6.0, uniform 6.3, prior 6.5
    mean = transfer({**same_order, "uniform": {"a": 6.0, "b": 6.6}}, large, Target.parse("mean"))
    assert mean["spearman"] == pytest.approx(0.5)
    assert (mean["proxy_pick"], mean["large_best"], mean["regret"]) == ("regmix", "uniform", pytest.approx(0.5))


def test_bench_transfer_on_a_tiny_run(tmp_path):
    """The benchmark on a committed run's files (tiny tokens, three evaluated mixtures): one block
    per budget and the JSON last, every target scored over the three mixtures."""
    build_tokens(tmp_path / "data" / "tokens")
    params = composed(["experiment=tiny"], conf_dir=REPO / "conf")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    mixtures = {"regmix": [0.6, 0.2, 0.2], "uniform": [1 / 3, 1 / 3, 1 / 3], "prior": [0.2, 0.2, 0.6]}
    (tmp_path / "results" / "compare").mkdir(parents=True)
    evaluation = {}
    for i, (name, weights) in enumerate(mixtures.items()):
        mixture = dict(zip(SENTENCES, weights))
        (tmp_path / "results" / "compare" / f"{name}.json").write_text(
            json.dumps({"name": name, "seeds": [0], "mixture": mixture})
        )
        evaluation[name] = {"domain_loss": {d: 3.0 + i + j for j, d in enumerate(SENTENCES)}}
    (tmp_path / "results" / "evaluation.json").write_text(json.dumps(evaluation))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_transfer",
            "--steps",
            "4,8",
            "--seeds",
            "2",
            "--store",
            str(tmp_path / "store"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "REGMIX_WORKERS": "1"},
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[0].startswith("optim.steps 4: mean Spearman") and any(
        line.startswith("optim.steps 8:") for line in lines
    )
    result = json.loads(lines[-1])
    assert result["mixtures"] == list(mixtures) and set(result["budgets"]) == {"4", "8"}
    for budget in result["budgets"].values():
        assert set(budget["targets"]) == {*SENTENCES, "mean"}
        assert all(t["n"] == 3 and -1 <= t["spearman"] <= 1 and t["regret"] >= 0 for t in budget["targets"].values())
        assert budget["seed_noise"]["df"] == 3  # 3 mixtures x (2 seeds - 1)
    assert len(list((tmp_path / "store").glob("*.json"))) == 3 * 2 * 2  # mixtures x seeds x budgets


WIKIPEDIA_RUN = "the demo's run while its target was `wikipedia` (`benchmarks/results/large_targets/wikipedia/`)"
BENCHMARKS_PAGE = REPO / "docs/benchmarks.md"


def benchmarks_page() -> str:
    """docs/benchmarks.md, its whitespace folded (prose wraps anywhere)."""
    return " ".join(BENCHMARKS_PAGE.read_text().split())


def test_docs_state_the_committed_transfer_result():
    """docs/benchmarks.md's bench_transfer figures are the committed result's, and that result is the
    run recorded beside it: the same distinct evaluated mixtures."""
    result = json.loads((REPO / COMMITTED).read_text())
    evaluation = json.loads((REPO / COMMITTED).with_name("evaluate.json").read_text())
    assert result["mixtures"] == list(large_losses(evaluation))
    target = "wikipedia"  # the demo's target when that run was made
    page = benchmarks_page()
    assert docs_sentences(result, target, WIKIPEDIA_RUN) in page
    # how many of the mixtures lie within 0.1 nats of each other at the large scale
    losses = sorted(domains[target] for domains in large_losses(evaluation).values())
    close = max(sum(low <= x <= low + 0.1 for x in losses) for low in losses)
    assert f"{close} of the {len(losses)} lie within 0.1 nats" in page


def test_docs_state_the_mean_target_study():
    """The figures docs/benchmarks.md quotes for `target=mean` are those of the committed experiments' files."""

    def read(run: str, name: str) -> dict:
        return json.loads((REPO / "benchmarks/results/mean_target" / run / f"{name}.json").read_text())

    page = benchmarks_page()
    section = page[page.index("## The check on target `mean`") : page.index("## Other targets at the large scale")]
    claims = []
    for run, steps in (("check_proxy_scale", None), ("check_512_steps", 512)):
        verify = read(run, "verify")
        assert verify["scale"] == ({"optim.steps": steps} if steps else {})
        assert verify["choice"]["mixture"] == "uniform"
        gain = verify["over_prior"]
        claims += [
            f"{gain['measured']:.3f}{_interval(gain['ci95'])}",
            f"`uniform` {verify['mixtures']['uniform']['vs_regmix']['difference']:.3f}",
        ]
    claims.append(f"{gain['predicted']:.3f} nats")
    chosen, searched = read("check_512_steps", "evaluate"), read("search_choice", "evaluate")
    assert read("search_choice", "verify")["choice"]["by"] == "search"
    for evaluation in (chosen, searched):
        summary = evaluation["summary"]
        ranked = len(summary["ranking"]) - len(summary["runs_of_regmix"])
        claims += [
            f"{evaluation['regmix']['target_loss']:.3f}{_interval(evaluation['regmix']['target_loss_ci95'])}",
            f"{summary['regmix_rank']} of {ranked}",
        ]
    for name in ("prior", "best_proxy"):
        vs = chosen[name]["vs_regmix"]
        claims.append(f"`{name}` {vs['difference']:+.3f}{_interval(vs['ci95'])}")
    assert all(searched[n]["vs_regmix"]["difference"] < 0 for n in ("uniform", "prior"))
    a, b = (e["regmix"]["target_loss_per_seed"] for e in (chosen, searched))
    c = compare(b, a, pooled_noise({"chosen": a, "searched": b}))
    claims += [
        f"{c.difference:.3f} nats",
        _interval((c.low, c.high)),
        f"{len(a)} + {len(b)} seeds",
        f"p = {c.p_value:.3f}",
    ]
    for claim in claims:
        assert claim in section, claim


def test_docs_show_the_targets_measured_at_scale():
    """docs/benchmarks.md's table of targets measured at the large scale is the one the committed files
    give, and the figures its prose quotes are theirs."""
    measured = load(sources(REPO))
    assert len(measured) >= 4
    assert table(measured) in BENCHMARKS_PAGE.read_text()
    page = benchmarks_page()
    assert summary(measured) in page
    # dialogue's check, and news's and legal's seed spread against the other domains'
    check = measured["`dialogue`"][0]["mixtures"]["best_proxy"]["vs_regmix"]["difference"]
    assert f"`best_proxy` {check:+.3f}" in page
    spread = {
        label: statistics.stdev(e["regmix"]["target_loss_per_seed"])
        for label, (_, e) in measured.items()
        if "best_proxy" in e["summary"]["runs_of_regmix"]
    }
    news, legal = spread.pop("`news`"), spread.pop("`legal`")
    assert f"{news:.2f} and {legal:.2f}" in page
    assert f"{min(spread.values()):.2f} to {max(spread.values()):.2f}" in page
    # ... with one baseline seed (2 df): no gap distinguishable; with the default's two (4 df): every one
    once = [
        json.loads((REPO / f"benchmarks/results/one_baseline_seed/{t}/evaluate.json").read_text())
        for t in ("news", "legal")
    ]
    assert all(e["summary"]["seed_noise"]["df"] == 2 for e in once)
    gaps = [e[n]["vs_regmix"] for e in once for n in ("uniform", "prior")]
    assert {g["verdict"] for g in gaps} == {"not distinguishable"}
    low, high = min(g["difference"] for g in gaps), max(g["difference"] for g in gaps)
    assert f"{low:+.2f} to {high:+.2f}" in page
    now = [measured[label][1] for label in ("`news`", "`legal`")]
    assert all(e["summary"]["seed_noise"]["df"] == 4 for e in now)
    assert all(e[n]["vs_regmix"]["verdict"] == "worse" for e in now for n in ("uniform", "prior"))
    more = json.loads((REPO / "benchmarks/results/news_more_seeds/evaluate.json").read_text())
    assert all(more[n]["seeds"] == 3 for n in ("regmix", "uniform", "prior"))
    noise = more["summary"]["seed_noise"]
    claims = [f"{noise['std']:.3f} nats, {noise['df']} degrees of freedom"]
    claims += [
        f"`{n}` {more[n]['vs_regmix']['difference']:+.3f}{_interval(more[n]['vs_regmix']['ci95'])}"
        for n in ("uniform", "prior")
        if more[n]["vs_regmix"]["verdict"] == "worse"
    ]
    assert len(claims) == 3 and all(claim in page for claim in claims), claims


def _interval(pair) -> str:
    return f" [{pair[0]:.3f}, {pair[1]:.3f}]"


def test_docs_show_the_targets_with_interior_optima():
    """docs/benchmarks.md's table of targets with interior optima (which step decided, regmix minus
    each rival) is the one the committed run and the records give, the README states its summary, and
    every record names its decision."""
    measured = load(interior_sources(REPO))
    assert len(measured) >= 2
    assert all("decided_by" in verify["decision"] for verify, _ in measured.values())
    assert interior_table(measured) in BENCHMARKS_PAGE.read_text()
    assert interior_summary(measured) in benchmarks_page()
    assert interior_summary(measured) in " ".join((REPO / "README.md").read_text().split())
    elsewhere = load(machine_sources(REPO))
    assert all("decided_by" in verify["decision"] for verify, _ in elsewhere.values())
    if elsewhere:
        assert interior_table(elsewhere) in BENCHMARKS_PAGE.read_text()
        assert machine_summary(elsewhere) in benchmarks_page()
        assert machine_summary(elsewhere) in " ".join((REPO / "README.md").read_text().split())
    rounds = load(rounds_sources(REPO))
    assert all(ONE_SHOT in evaluation for _, evaluation in rounds.values())
    if rounds:
        assert rounds_table(rounds) in BENCHMARKS_PAGE.read_text()
        assert rounds_summary(rounds) in benchmarks_page()


def test_swarm_size_arithmetic_on_hand_made_cases():
    """The power law through a fit's error curve, the scale slope and the seeds a gap needs."""
    curve = {n: {"error": 2.0 * n**-0.5} for n in (16, 32, 64)}
    a, b = power_law(curve)
    assert a == pytest.approx(2.0) and b == pytest.approx(0.5)
    assert power_law({16: {"error": 0.1}, 64: {"error": 0.2}}) is None  # rising: nothing to extrapolate
    assert power_law({16: {"error": 0.0}, 64: {"error": 0.1}}) is None  # one point within the noise
    # a gap of one seed std, one comparison: 17 seeds, as 2 (t_0.975 + t_0.8)^2 at 32 df = 2 x 2.8899^2 =
    # 16.70 <= 17, where 16 seeds give 2 x 2.8961^2 = 16.77 (30 df); Holm over 4 (t_0.99375): 24 seeds
    assert seeds_needed(0.1, 0.1, 1) == 17
    assert seeds_needed(0.1, 0.1, 4) == 24
    assert seeds_needed(0.1, 0.0, 1) is None
    evaluation = {
        "regmix": {"target_loss": 3.0, "predicted": 4.0},
        "prior": {"target_loss": 3.2, "predicted": 4.1},
        "random_1": {"target_loss": 3.6, "predicted": 4.3},
        "summary": {},
    }
    assert scale_slope(evaluation) == pytest.approx(2.0)
    # regmix against a cheap baseline: predicted 0.1 lower at a pair scale of 0.1 is real with Phi(1);
    # measured 0.1 lower with seed stds 0.05 and 0.1: the larger std, as seeds_needed(0.1, 0.1, 4)
    evaluation["regmix"]["seed_std"] = 0.05
    evaluation["prior"] |= {"seed_std": 0.1, "vs_regmix": {"difference": 0.1, "ci95": [0.0, 0.2], "verdict": "worse"}}
    cheap = against_cheap(evaluation, 0.1, "prior", 4)
    assert cheap["predicted_gain"] == pytest.approx(0.1) and cheap["probability"] == pytest.approx(0.8413, abs=1e-4)
    assert cheap["large_gain"] == 0.1 and cheap["large_seeds_needed"] == 24
    evaluation["prior"]["vs_regmix"]["difference"] = -0.1  # regmix higher: the same seeds tell them apart
    assert against_cheap(evaluation, 0.1, "prior", 4)["large_seeds_needed"] == 24


def test_docs_show_the_committed_swarm_size_record():
    """docs/benchmarks.md's table of what the proxies would need is the committed record's, over the
    demo and every recorded interior target."""
    record = json.loads((REPO / "benchmarks/results/swarm_size.json").read_text())
    assert [r["name"] for r in record["rows"]] == list(swarm_size_targets(REPO))
    assert swarm_size_table(record) in BENCHMARKS_PAGE.read_text()
    assert swarm_size_summary(record) in benchmarks_page()
    assert cheap_table(record) in BENCHMARKS_PAGE.read_text()
    assert cheap_summary(record) in benchmarks_page()


def test_decision_steps_replayed_on_hand_made_targets():
    """The guard trains the prior where the probability is below the threshold, the verified pick the
    lowest proxy-scale mean: the change is that mixture's large loss minus regmix's, 0 where the step
    keeps regmix, averaged over every target."""

    def row(name, probability, prior, lowest="regmix", lowest_change=0.0, verdict="not distinguishable"):
        return {
            "name": name,
            "probability": probability,
            "guard": {"change": prior, "verdict": verdict},
            "lowest": lowest,
            "verified_lowest": {"change": lowest_change, "verdict": "better" if lowest_change < -0.1 else verdict},
        }

    rows = [row("a", 0.99, +0.6, verdict="worse"), row("c", 0.75, +0.1, "nearest", -0.2), row("b", 0.65, -0.2)]
    replayed = replay(rows, (0.7, 0.8, 1.0))
    at_07, at_08, at_1 = replayed["prior_guard"]
    assert at_07["fired"] == ["b"] and at_07["mean_change"] == pytest.approx(-0.2 / 3)
    assert at_08["fired"] == ["c", "b"] and at_08["mean_change"] == pytest.approx(-0.1 / 3)
    assert at_08["stderr"] == pytest.approx(statistics.stdev([0.0, 0.1, -0.2]) / math.sqrt(3))
    assert at_1["mean_change"] == pytest.approx(0.5 / 3) and at_1["hurt"] == 1 and at_1["helped"] == 0
    lowest = replayed["verified_lowest"]
    assert lowest["fired"] == ["c"] and lowest["mean_change"] == pytest.approx(-0.2 / 3) and lowest["helped"] == 1


def test_the_verified_pick_of_another_check_is_measured_on_its_experiments_large_runs(tmp_path):
    """A run up to verify with another check (more seeds, another scale) is paired with the experiment of
    the same overrides (but verify.*) on the same machine: the mixture it picks is measured by that
    experiment's large runs, and a run whose search chose another mixture is refused."""

    def write(folder, **files):
        folder.mkdir(parents=True)
        for name, content in files.items():
            (folder / name).write_text(json.dumps(content))

    machine = {"machine": "a CPU, native bf16: AMX"}
    held_out = tmp_path / "benchmarks/results/held_out_targets"
    (tmp_path / "benchmarks/results/interior_targets").mkdir(parents=True)
    write(tmp_path / "results", **{"verify.json": {}, "evaluation.json": {"regmix": {"seeds": 3}}})
    write(
        held_out / "x_on_amx",
        **{
            "experiment.json": {"overrides": ["target=x", "large.replicate.regmix=6"], **machine},
            "fit.json": {"target": "x"},
            "verify.json": {"seeds": 3, "mixtures": {"regmix": {"predicted": 1.0}}},
            "evaluate.json": {
                "regmix": {"seeds": 6, "target_loss": 3.2},
                "nearest": {
                    "seeds": 4,
                    "target_loss": 3.16,
                    "vs_regmix": {"difference": -0.04, "ci95": [-0.06, -0.02], "verdict": "better"},
                },
            },
        },
    )
    nearest_lower = {"vs_regmix": {"difference": -0.05, "p_holm": 0.01}}
    write(
        tmp_path / "benchmarks/results/verify_only/x_more_seeds",
        **{
            "experiment.json": {"overrides": ["target=x", "verify.seeds=20", "+verify.optim.steps=512"], **machine},
            "fit.json": {"target": "x"},
            "verify.json": {
                "seeds": 20,
                "scale": {"optim.steps": 512},
                "choice": {"mixture": "nearest", "lowest": "nearest"},
                "mixtures": {
                    "regmix": {"predicted": 1.0, "measured": 3.0},
                    "nearest": {"measured": 2.95, **nearest_lower},
                },
            },
        },
    )
    (row,) = check_rows(tmp_path)
    assert row["base"] == "x_on_amx" and (row["seeds"], row["base_seeds"]) == (20, 3)
    assert row["picked"] == "nearest" and row["lowest_in_check"] == -0.05 and row["lowest_p_holm"] == 0.01
    assert row["verified_pick"] == {"change": -0.04, "change_ci95": [-0.06, -0.02], "verdict": "better"}
    record = {"other_checks": {"rows": [row], "by_check": by_check([row])}}
    table = check_table(record)
    assert check_summary(record) == (
        "The verified pick with 20 seeds, `optim.steps=512` scale it replaced the search's choice on 1 of 1 targets, "
        "the trained loss changing by -0.040 nats on average (distinguishably lower on 1, higher on 0)."
    )
    # nearest lower in the check and in the large runs
    assert row["order"] == {"spearman": pytest.approx(1.0), "mixtures": 2}
    assert (
        "| 20 (was 3), `optim.steps=512` | `nearest`: -0.050 (0.01) | `nearest` | -0.040 [-0.060, -0.020] lower |"
        in table
    )
    (tmp_path / "benchmarks/results/verify_only/x_more_seeds/verify.json").write_text(
        json.dumps(
            {
                "seeds": 20,
                "choice": {"mixture": "regmix", "lowest": "regmix"},
                "mixtures": {"regmix": {"predicted": 2.0}},
            }
        )
    )
    with pytest.raises(ValueError, match="another mixture"):
        check_rows(tmp_path)


def test_each_experiment_is_read_from_its_record_with_the_most_seeds(tmp_path):
    """A rerun with more large-run seeds stands for its experiment (same overrides but the seeds), and a
    rerun whose fit took the target term by term for one whose fit did not; a rerun with another setting,
    or on another machine, is another experiment."""

    def record(folder, overrides, regmix, prior, per_term=None, machine=None):
        folder.mkdir(parents=True)
        name = "evaluation.json" if folder.name == "results" else "evaluate.json"
        (folder / name).write_text(json.dumps({"regmix": {"seeds": regmix}, "prior": {"seeds": prior}}))
        (folder / "verify.json").write_text("{}")
        if per_term is not None:
            (folder / "fit.json").write_text(json.dumps({"per_term": per_term}))
        if overrides is not None:
            experiment = {"overrides": overrides} | ({"machine": machine} if machine else {})
            (folder / "experiment.json").write_text(json.dumps(experiment))

    (tmp_path / "params.yaml").write_text("target: task:t\n")
    interior, held_out = (
        tmp_path / "benchmarks/results/interior_targets",
        tmp_path / "benchmarks/results/held_out_targets",
    )
    record(tmp_path / "results", None, 3, 2)
    record(held_out / "demo_more_seeds", ["large.replicate.regmix=6"], 6, 2)
    record(interior / "mean", ["target=mean"], 3, 2)
    record(held_out / "mean_more_prior", ["target=mean", "large.replicate.prior=6"], 3, 6)
    record(held_out / "mean_linear", ["target=mean", "regression=linear"], 6, 6)
    record(held_out / "mean_linear_by_term", ["target=mean", "regression=linear"], 3, 2, ["loss.a", "loss.b"])
    record(held_out / "demo_elsewhere", ["large.replicate.regmix=9"], 9, 9, machine="a CPU, native bf16: AMX")
    rounds = ["active=rounds", "+human_mixtures.one_shot={a: 1.0}"]
    record(held_out / "demo_rounds", [*rounds, "+large.replicate.one_shot=6"], 6, 6, machine="a CPU, native bf16: AMX")
    record(
        held_out / "demo_rounds_fewer",
        [*rounds, "+large.replicate.one_shot=3"],
        3,
        3,
        machine="a CPU, native bf16: AMX",
    )
    chosen = most_seeded(experiment_records(tmp_path))
    assert chosen == {
        (): "demo_more_seeds",
        ("machine: a CPU, native bf16: AMX",): "demo_elsewhere",  # another machine's runs: not the demo's seeds
        (*sorted(rounds), "machine: a CPU, native bf16: AMX"): "demo_rounds",  # one experiment, seeds aside
        ("target=mean",): "mean_more_prior",
        ("regression=linear", "target=mean"): "mean_linear_by_term",
    }
    sources = interior_sources(tmp_path)
    assert list(sources) == ["`task:t` (the demo), `demo_more_seeds`", "`mean`, `mean_more_prior`"]
    for name in ("demo_elsewhere", "demo_rounds", "demo_rounds_fewer"):
        (held_out / name / "fit.json").write_text(json.dumps({"target": "task:t"}))
        (held_out / name / "proxies.json").write_text(json.dumps({"proxies": 96}))
    # the default pipeline's table leaves the records with active rounds to their own
    assert list(machine_sources(tmp_path)) == ["`task:t` on a CPU, native bf16: AMX, `demo_elsewhere`"]
    assert list(rounds_sources(tmp_path)) == ["`task:t`, 96 proxies, `demo_rounds`"]
    assert sources["`mean`, `mean_more_prior`"][1] == held_out / "mean_more_prior/evaluate.json"


def test_docs_compare_each_target_fitted_term_by_term_with_its_fit_as_one_number():
    """For every record whose fit took the target term by term, docs/benchmarks.md states its choice's
    large loss against the same experiment's record fitted as one number (Welch)."""
    records = experiment_records(REPO)
    pairs = by_term_pairs(records)
    assert pairs, "no record fitted term by term"
    for by_term, whole in pairs:
        target = json.loads((records[by_term] / "fit.json").read_text())["target"]
        evaluations = [json.loads(evaluation_file(records[n]).read_text()) for n in (by_term, whole)]
        assert by_term_sentence(target, *evaluations) in benchmarks_page(), by_term


def test_docs_show_the_decision_steps_replayed_on_the_committed_large_runs():
    """benchmarks/results/decision_large.json is what the committed large-target records give, and
    docs/benchmarks.md quotes it."""
    record = json.loads((REPO / "benchmarks/results/decision_large.json").read_text())
    assert json.loads(json.dumps(decision_large_record(REPO))) == record
    assert decision_large_table(record) in BENCHMARKS_PAGE.read_text()
    assert decision_large_replay_table(record) in BENCHMARKS_PAGE.read_text()
    assert decision_large_summary(record) in benchmarks_page()
    if record["other_checks"]["rows"]:
        assert check_table(record) in BENCHMARKS_PAGE.read_text()
        assert check_summary(record) in benchmarks_page()


RERUNS = sorted(
    p.name
    for p in (REPO / "benchmarks/results/held_out_targets").iterdir()
    if "large.replicate." in (p / "experiment.json").read_text()
)


@pytest.mark.parametrize("record", RERUNS)
def test_each_rerun_with_more_seeds_trained_the_seeds_it_asked_for(record):
    """A record made with `-S large.replicate.<mixture>=N` (or `+large.replicate...`, for a mixture the
    defaults do not name) compared N seeds of each such mixture."""
    folder = REPO / "benchmarks/results/held_out_targets" / record
    evaluation = json.loads((folder / "evaluate.json").read_text())
    asked = [o.lstrip("+").split("=", 1) for o in json.loads((folder / "experiment.json").read_text())["overrides"]]
    seeds = {key.removeprefix("large.replicate."): int(n) for key, n in asked if key.startswith("large.replicate.")}
    assert seeds["regmix"] >= 6 and all(evaluation[m]["seeds"] == n for m, n in seeds.items())


def test_near_top_transfer_on_a_hand_made_evaluation():
    """best_proxy is rank 1, proxy_<k> rank k; the large runs reverse ranks 2 and 3."""

    def entry(loss, predicted):
        return {"target_loss": loss, "predicted": predicted}

    evaluation = {
        "regmix": entry(2.0, 1.0),
        "best_proxy": entry(2.1, 1.1),
        "proxy_2": entry(2.3, 1.2),
        "proxy_3": entry(2.2, 1.3),
        "proxy_4": entry(2.4, 1.4),
        "uniform": entry(2.9, 2.0),
        "summary": {"seed_noise": {"std": 0.05, "df": 4}},
    }
    t = near_top(evaluation)
    assert t["ranks"] == [1, 2, 3, 4] and t["mixtures"] == 4
    assert t["proxy_rank"]["rho"] == pytest.approx(0.8) and t["regression"]["rho"] == pytest.approx(0.8)
    assert t["large_range"] == pytest.approx(0.3) and t["large_best_rank"] == 1 and t["regret_of_best_proxy"] == 0


def test_docs_state_each_near_top_transfer_record():
    records = near_top_records(REPO)
    page = benchmarks_page()
    for label, record in records.items():
        assert record["mixtures"] >= 12
        assert near_top_sentence(label, record) in page
