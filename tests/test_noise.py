"""Seed noise of the proxies from (proxy, replicate) pairs, on a hand-computed case."""

import math

import pandas as pd
import pytest

from regmix.choose.noise import seed_noise
from regmix.target import Target


def test_pooled_pairs():
    proxies = pd.DataFrame({"id": [0, 1, 2], "loss.a": [1.0, 2.0, 3.0], "loss.b": [5.0, 5.0, 5.0]})
    replicates = pd.DataFrame({"id": [0, 1], "loss.a": [1.2, 1.8], "loss.b": [5.0, 5.4]})
    out = seed_noise(proxies, replicates, Target.parse("a"))
    # each pair's variance is d^2 / 2 with one degree of freedom: a: 0.02 and 0.02; b: 0 and 0.08
    assert out["pairs"] == 2 and out["target_std"] == pytest.approx(math.sqrt(0.02))
    assert out["domain_std"] == pytest.approx({"a": math.sqrt(0.02), "b": math.sqrt(0.04)})
    mean = seed_noise(proxies, replicates, Target.parse("mean"))["target_std"]
    assert mean == pytest.approx(math.sqrt(0.005))  # pairs (3.0, 3.1) and (3.5, 3.6)


def test_no_replicates():
    proxies = pd.DataFrame({"id": [0], "loss.a": [1.0]})
    assert seed_noise(proxies, proxies.iloc[:0], Target.parse("a")) == {"pairs": 0}
