"""Mistakes in params are caught before compute, each with its key named."""

from __future__ import annotations

import copy

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


@pytest.mark.parametrize("path, value, message", [
    ("proxy.model.n_head", 3, "proxy.model.d_model 64 is not divisible by proxy.model.n_head 3"),
    ("large.model.d_model", 196, "large.model: head size"),
    ("proxy.optim.steps", 0, "proxy.optim.steps is 0"),
    ("large.optim.micro_batch_size", 5, "large.optim.micro_batch_size 5 must divide"),
    ("proxy.model.n_headz", 3, "proxy.model.n_headz"),
    ("proxy.replicates", 100, "proxy.replicates 100 is more than sample.n_mixtures"),
    ("target", 3, "target: expected a domain"),
    ("regression.n_bootstrap", 0, "search.rule=lower_confidence needs the regression's bootstrap members"),
])
def test_structure(path, value, message):
    with pytest.raises(UserError, match=message):
        check_params(changed(path, value))


@pytest.mark.parametrize("path, value, message", [
    ("target", "Legal", r"target 'Legal' names no domain .*\['Legal'\]"),
    ("target", {"legal": 1, "web": 1}, r"\['web'\]"),
    ("human_mixtures", {"mine": {"legal": 0.5, "nope": 0.5}}, "human_mixtures.mine: unknown domain"),
    ("human_mixtures", {"mine": {"legal": 0.5}}, "human_mixtures.mine: weights sum to 0.5"),
    ("large.mixtures", ["regmix", "best_proxy", "best"], "large.mixtures: unknown mixture"),
    ("large.replicate", {"nope": 2}, r"large.replicate: unknown mixture\(s\) nope"),
])
def test_names_against_the_corpus(path, value, message):
    params = changed(path, value)
    check_params(params)  # without the domains only the structure is checked
    with pytest.raises(UserError, match=message):
        check_params(params, DOMAINS)


def test_replicate_may_name_mixtures_left_out():
    """A shorter large.mixtures keeps the default large.replicate valid: its other names train nothing."""
    check_params(changed("large.mixtures", ["regmix", "uniform"]), DOMAINS)
