"""Compared mixtures: every name resolves to its weights, one file each, stale files removed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from regmix.choose.mixture_files import (
    RUNS_OF_FILE,
    random_row,
    read_one,
    remove_other_mixtures,
    remove_other_runs,
    resolve,
    run_dir,
    seeds_of,
    shared_runs,
    write_all,
)
from regmix.errors import UserError

PRIOR = {"alpha": 0.5, "beta": 0.3, "gamma": 0.2}
CHOSEN = {"alpha": 0.1, "beta": 0.1, "gamma": 0.8}
BEST = {"alpha": 0.7, "beta": 0.2, "gamma": 0.1}
SECOND = {"alpha": 0.6, "beta": 0.2, "gamma": 0.2}
SWARM = pd.DataFrame(np.random.default_rng(0).dirichlet(np.ones(3), size=6), columns=list(PRIOR))
SWARM.insert(0, "id", range(10, 16))
HUMAN = {"code_heavy": {"gamma": 1.0}}
REPO = Path(__file__).resolve().parents[1]


def get(*names: str) -> dict:
    return resolve(names, CHOSEN, [BEST, SECOND], PRIOR, SWARM, HUMAN, seed=0)


def test_every_kind_of_name():
    out = get("regmix", "best_proxy", "uniform", "prior", "code_heavy", "random_1", "random_2")
    assert list(out) == ["regmix", "best_proxy", "uniform", "prior", "code_heavy", "random_1", "random_2"]
    assert out["regmix"] == CHOSEN and out["best_proxy"] == BEST and out["prior"] == PRIOR
    assert out["uniform"] == pytest.approx({d: 1 / 3 for d in PRIOR})
    assert out["code_heavy"] == {"alpha": 0.0, "beta": 0.0, "gamma": 1.0}
    rows = [SWARM.iloc[random_row(f"random_{k}", len(SWARM), 0)] for k in (1, 2)]
    assert out["random_1"] == pytest.approx(rows[0][list(PRIOR)].to_dict())
    assert out["random_1"] != out["random_2"]


def test_proxy_k_is_the_k_th_best_trained_proxy():
    out = get("best_proxy", "proxy_1", "proxy_2")
    assert out["proxy_1"] == out["best_proxy"] == BEST and out["proxy_2"] == SECOND


def test_random_k_does_not_depend_on_how_many_are_compared():
    assert get("random_1", "random_2")["random_2"] == get("random_2")["random_2"]
    picks = {random_row(f"random_{k}", len(SWARM), 0) for k in range(1, 7)}
    assert picks == set(range(6))  # a permutation: six names, six different rows


@pytest.mark.parametrize(
    "names, message",
    [
        (("random_7",), "only 6 mixtures"),
        (("random_0",), "k >= 1"),
        (("random_x",), "random_<k>"),
        (("proxy_3",), "only 2 mixtures"),
        (("proxy_0",), "k >= 1"),
        (
            ("best",),
            "unknown mixture 'best'; valid: regmix, best_proxy, uniform, prior, code_heavy, random_<k>, proxy_<k>",
        ),
        (("uniform", "uniform"), "twice"),
    ],
)
def test_bad_names(names, message):
    with pytest.raises(UserError, match=message):
        get(*names)


def test_seeds_per_mixture():
    assert seeds_of(["regmix", "uniform"], 1, {"regmix": 3}, base=5) == {"regmix": [5, 6, 7], "uniform": [5]}
    assert seeds_of(["regmix"], 1, {"prior": 2}, base=0) == {"regmix": [0]}  # a mixture not compared: no seeds
    with pytest.raises(UserError, match="at least 1 seed"):
        seeds_of(["regmix"], 0, {}, base=0)


def test_files_round_trip_and_stale_ones_go(tmp_path):
    names = ["regmix", "uniform", "random_1"]
    write_all(tmp_path, get(*names), seeds_of(names, 1, {}, 0))
    write_all(tmp_path, get(*names[:2]), seeds_of(names[:2], 1, {"regmix": 2}, 0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["regmix.json", "uniform.json", "weights.csv"]
    weights = pd.read_csv(tmp_path / "weights.csv").set_index("domain")
    assert weights.columns.tolist() == names[:2] and weights["regmix"].to_dict() == pytest.approx(CHOSEN)
    stored = read_one(tmp_path / "regmix.json")
    assert (stored.name, stored.mixture, stored.seeds) == ("regmix", CHOSEN, [0, 1])
    (tmp_path / "bad.json").write_text(json.dumps({"mixture": {"a": 1.0}}))
    with pytest.raises(UserError, match="bad.json"):
        read_one(tmp_path / "bad.json")
    (tmp_path / "sum.json").write_text(json.dumps({"name": "x", "seeds": [0], "mixture": {"a": 0.5}}))
    with pytest.raises(UserError, match="sum to 0.5"):
        read_one(tmp_path / "sum.json")


def test_a_mixture_with_regmix_weights_and_seeds_shares_its_runs(tmp_path):
    names = ["regmix", "best_proxy", "prior", "uniform"]
    mixtures = resolve(names, BEST, [BEST], PRIOR, SWARM, HUMAN, seed=0)  # the choice is the best proxy
    mixtures["prior"] = {d: w + (5e-7 if d == "alpha" else 0.0) for d, w in BEST.items()}  # within the rounding
    seeds = seeds_of(names, 1, {"regmix": 3, "best_proxy": 3}, base=0)
    assert shared_runs(mixtures, seeds) == {"best_proxy": "regmix", "prior": "regmix"}
    assert shared_runs(mixtures, {**seeds, "best_proxy": [0, 1, 2, 3]}) == {"prior": "regmix"}  # a seed of its own
    assert shared_runs({n: m for n, m in mixtures.items() if n != "regmix"}, seeds) == {}
    off = {**mixtures, "prior": {d: w + (2e-6 if d == "alpha" else 0.0) for d, w in BEST.items()}}
    assert shared_runs(off, seeds) == {"best_proxy": "regmix"}
    write_all(tmp_path, mixtures, seeds)
    stored = {n: read_one(tmp_path / f"{n}.json") for n in names}
    assert {n: c.runs_of for n, c in stored.items()} == {
        "regmix": None,
        "best_proxy": "regmix",
        "prior": "regmix",
        "uniform": None,
    }
    assert [c.trained_as for c in stored.values()] == ["regmix", "regmix", "regmix", "uniform"]
    assert stored["best_proxy"].mixture == BEST and stored["best_proxy"].seeds == [0, 1, 2]


def test_a_mixture_with_shared_runs_trains_nothing(tmp_path):
    """The train stage on such a mixture: stale runs go, a note says whose runs serve it."""
    write_all(tmp_path / "compare", {"regmix": BEST, "best_proxy": BEST}, {"regmix": [0, 1], "best_proxy": [0, 1]})
    model, curves = tmp_path / "large" / "best_proxy", tmp_path / "train" / "best_proxy"
    run_dir(model, 0).mkdir(parents=True)  # trained before the choice became this mixture
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stages.train",
            str(tmp_path / "compare" / "best_proxy.json"),
            str(tmp_path / "no_tokens"),
            str(model),
            str(curves),
            "--params",
            str(REPO / "params.yaml"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "its runs are regmix's, trained once" in done.stderr + done.stdout
    for folder in (model, curves):
        assert [p.name for p in folder.iterdir()] == [RUNS_OF_FILE]
        assert json.loads((folder / RUNS_OF_FILE).read_text()) == {"runs_of": "regmix", "seeds": [0, 1]}


def test_runs_of_seeds_no_longer_asked_for_are_removed(tmp_path):
    for seed in (0, 1, 2):
        run_dir(tmp_path, seed).mkdir()
    remove_other_runs(tmp_path, [0, 1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed_0", "seed_1"]


def test_folders_of_mixtures_no_longer_compared_are_removed(tmp_path):
    for name in ("regmix", "uniform", "random_4"):
        run_dir(tmp_path / name, 0).mkdir(parents=True)
    assert remove_other_mixtures(tmp_path, ["regmix", "uniform", "prior"]) == ["random_4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["regmix", "uniform"]
    assert remove_other_mixtures(tmp_path / "missing", ["regmix"]) == []
