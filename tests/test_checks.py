"""Mistakes in params are caught before compute, each with its key named."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml
from conftest import REPO

from regmix.checks import check_params
from regmix.errors import UserError

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
DOMAINS = ["wikipedia", "legal", "news"]


def changed(path: str, value) -> dict:
    params = copy.deepcopy(PARAMS)
    *parents, key = path.split(".")
    node = params
    for p in parents:
        node = node[p]
    node[key] = value
    return params


def test_the_default_params_pass():
    check_params(PARAMS, ["wikipedia", "bible"])


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("proxy.model.n_head", 3, "proxy.model.d_model 64 is not divisible by proxy.model.n_head 3"),
        ("large.model.d_model", 196, "large.model: head size"),
        ("proxy.optim.steps", 0, "proxy.optim.steps is 0"),
        ("large.optim.micro_batch_size", 5, "large.optim.micro_batch_size 5 must divide"),
        ("proxy.model.n_headz", 3, "proxy.model.n_headz"),
        ("proxy.replicates", 100, "proxy.replicates 100 is more than sample.n_mixtures"),
        ("target", 3, "target: expected a domain"),
        ("regression.n_bootstrap", 0, "search.rule=lower_confidence needs the regression's bootstrap members"),
        ("sample.n_mixtures", "abc", "sample.n_mixtures: expected an integer, got 'abc'"),
        ("sample.n_mixtures", -3, "sample.n_mixtures must be at least 1, got -3"),
        ("sample.max_epochs", "4x", r"sample.max_epochs: expected a number, or null, got '4x'"),
        ("proxy.optim.lr", True, "proxy.optim.lr: expected a number"),
        ("search.rule", "lower_confidenc", "search.rule: unknown rule 'lower_confidenc'; choose one of"),
        ("human_mixtures", {"mine": {"legal": 0.5, "news": 0.2}}, "human_mixtures.mine: weights sum to 0.7, not 1"),
    ],
)
def test_structure(path, value, message):
    """Each mistake is caught with no domains known: before `prepare` tokenises anything."""
    with pytest.raises(UserError, match=message):
        check_params(changed(path, value))


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("target", "Legal", r"target: Legal is no domain, evaluation set or task of this run"),
        ("target", {"legal": 1, "web": 1}, r"target: web is no domain"),
        ("target", {"aggregate": "zmean", "over": ["legal", "held"]}, r"target: held is no domain"),
        ("human_mixtures", {"mine": {"legal": 0.5, "nope": 0.5}}, "human_mixtures.mine: unknown domain"),
        ("large.mixtures", ["regmix", "best_proxy", "best"], "large.mixtures: unknown mixture"),
        ("large.replicate", {"nope": 2}, r"large.replicate: unknown mixture\(s\) nope"),
    ],
)
def test_names_against_the_corpus(path, value, message):
    params = changed(path, value)
    check_params(params)  # without the domains only the structure is checked
    with pytest.raises(UserError, match=message):
        check_params(params, DOMAINS)


def test_replicate_may_name_mixtures_left_out():
    """A shorter large.mixtures keeps the default large.replicate valid: its other names train nothing."""
    check_params(changed("large.mixtures", ["regmix", "uniform"]), DOMAINS)


def test_held_out_sets_and_tasks_are_target_names():
    for target in ("held", "task:cloze", {"legal": 1, "held": 2}, {"aggregate": "zmean", "over": ["legal", "held"]}):
        check_params(changed("target", target), DOMAINS, ["held"], ["cloze"])
    check_params(changed("target", "task:cloze"), DOMAINS, ["held"])  # tasks not known here: not checked
    with pytest.raises(UserError, match=r"target: task:cloze is no domain, evaluation set or task.*held out: held"):
        check_params(changed("target", "task:cloze"), DOMAINS, ["held"], [])


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("eval_sets", {"News 24": "x.jsonl"}, r"eval_sets.News 24: a set's name must be lowercase"),
        ("eval_sets", {"mean": "x.jsonl"}, r"eval_sets.mean: .*not mean or task"),
        (
            "eval_sets",
            {"held": {"path": "x.jsonl", "txt_field": "body"}},
            r"eval_sets.held: unknown key\(s\) txt_field",
        ),
        ("eval_sets", {"held": {"text_field": "body"}}, r"eval_sets.held: give exactly one of `path`"),
        ("tasks", {"cloze": ["a.jsonl"]}, r"tasks.cloze: expected the path of a .jsonl file"),
        ("data.test_fraction", 0.1, r"data.test_fraction is 0.1"),
        ("target_metric", "bits", r"target_metric: 'bits'"),
    ],
)
def test_evaluation_settings_are_refused_before_compute(path, value, message):
    with pytest.raises(UserError, match=message):
        check_params(changed(path, value))


@pytest.mark.parametrize(
    "override, message",
    [
        ("sample.n_mixtures=abc", "error: sample.n_mixtures: expected an integer, got 'abc'"),
        ("proxy=nosuch", "error: -S proxy=nosuch: In 'config': Could not find 'proxy/nosuch'"),
        ("data=jsonl", "error: data.path: required by the chosen option, not set (e.g. -S data.path=...)"),
    ],
)
def test_regmix_check_names_the_key_in_one_line(override, message):
    run = subprocess.run(
        [sys.executable, "-m", "regmix.cli", "check", "-S", override], cwd=REPO, capture_output=True, text=True
    )
    assert run.returncode == 1 and run.stderr.strip() == message


def test_regmix_check_passes_the_demo_and_the_tiny_preset():
    for command in (["check"], ["check", "-S", "experiment=tiny"]):
        run = subprocess.run([sys.executable, "-m", "regmix.cli", *command], cwd=REPO, capture_output=True, text=True)
        assert run.returncode == 0 and run.stdout.startswith("params ok"), run.stderr
