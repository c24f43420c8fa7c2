"""Every config composes, params.yaml is the composition, dvc.yaml names real params."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from regmix import config as C
from regmix.compose import compose
from regmix.compose import composed as compose_dict
from regmix.errors import UserError

CONF = REPO / "conf"
GROUPS = ["data", "sample", "proxy", "active", "regression", "search", "large", "verify", "evaluate"]
SECTION_CLASSES = {
    "data": C.DataConfig,
    "sample": C.SampleConfig,
    "proxy": C.ProxyConfig,
    "active": C.ActiveConfig,
    "regression": C.RegressionConfig,
    "search": C.SearchConfig,
    "large": C.LargeConfig,
    "verify": C.VerifyConfig,
    "evaluate": C.EvaluateConfig,
}
# Options whose required keys (`???`) a user must give; the tests supply a value.
REQUIRED = {"data=jsonl": ["data.path=corpus"], "data=hf": ["data.hf_name=x", "data.domain_field=d"]}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def composed(tmp_path: Path, overrides: list[str]) -> dict:
    return compose_dict(overrides, CONF)


def check_sections(params: dict) -> None:
    """Each section builds its typed config: no unknown or missing keys."""
    for section, cls in SECTION_CLASSES.items():
        C.from_dict(cls, params[section], f"{section}.")
    assert {"seed", "target", "human_mixtures"} <= set(params)


@pytest.mark.parametrize(
    "override", [f"{g}={o}" for g in GROUPS for o in options(g)] + [f"experiment={o}" for o in options("experiment")]
)
def test_every_option_composes(tmp_path, override):
    params = composed(tmp_path, [override, *REQUIRED.get(override, [])])
    check_sections(params)


def test_params_yaml_is_the_default_composition(tmp_path):
    committed = (REPO / "params.yaml").read_text()
    compose(tmp_path / "params.yaml", [], CONF)
    assert (tmp_path / "params.yaml").read_text() == committed, "params.yaml drifted from conf/: run `make params`"


def test_group_options_keep_the_declared_params(tmp_path):
    """Switching an option never drops a key that dvc.yaml declares as a stage's param
    (`dvc exp run -S group=opt`); the other keys may differ: a left-out key takes its default."""
    declared = _declared_params()
    for group in GROUPS:
        for option in options(group):
            params = composed(tmp_path, [f"{group}={option}", *REQUIRED.get(f"{group}={option}", [])])
            known = _flatten(params)
            missing = sorted(k for k in declared if k.split(".")[0] == group and k not in known)
            assert not missing, f"{group}={option} drops declared params {missing}"


def test_the_default_params_hold_only_chosen_options():
    """A user reads about 70 settings, not every default: an option off by default (active rounds)
    adds its keys only when chosen, and a left-out key is its dataclass default."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert _leaves(params) <= 80 and params["active"] == {"rounds": 0}
    rounds = compose_dict(["active=rounds"], CONF)["active"]
    assert len(rounds) > 1 and C.from_dict(C.ActiveConfig, rounds, "active.").rounds > 0


def test_a_nested_section_changes_only_what_it_names_of_its_own_default():
    large = C.from_dict(C.LargeConfig, {"optim": {"steps": 7}}, "large.")
    assert large.optim == dataclasses.replace(C.LargeConfig().optim, steps=7)  # not the proxies' optim


def _leaves(d) -> int:
    return sum(map(_leaves, d.values())) if isinstance(d, dict) else 1


def _flatten(d: dict, prefix: str = "") -> set[str]:
    keys = set()
    for k, v in d.items():
        keys.add(prefix + k)
        if isinstance(v, dict):
            keys |= _flatten(v, f"{prefix}{k}.")
    return keys


def _declared_params() -> list[str]:
    """Every params key a stage of dvc.yaml declares."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert list(stages) == ["prepare", "sample", "proxies", "fit", "search", "verify", "train", "evaluate"]
    declared = []
    for stage in stages.values():
        for entry in stage.get("do", stage).get("params", []):
            keys = entry if isinstance(entry, str) else next(iter(entry.values()))
            declared += [keys] if isinstance(keys, str) else keys
    return declared


def test_dvc_params_exist_in_params_yaml():
    known = _flatten(yaml.safe_load((REPO / "params.yaml").read_text()))
    missing = [key for key in _declared_params() if key not in known]
    assert not missing, f"stages declare params missing from params.yaml: {missing}"


def test_conf_has_no_runtime_interpolations():
    for path in CONF.rglob("*.yaml"):
        text = path.read_text()
        for bad in ("${hydra:", "${now:", "${oc.env:"):
            assert bad not in text, f"{path} uses {bad}"


def test_unknown_key_is_named():
    with pytest.raises(UserError, match="sample.n_mixturez"):
        C.from_dict(C.SampleConfig, {"n_mixturez": 3}, "sample.")


def test_nested_sections_become_dataclasses():
    cfg = C.from_dict(C.ProxyConfig, {"model": {"n_layer": 3}, "optim": {"steps": 7}})
    assert isinstance(cfg.model, C.ModelConfig) and cfg.model.n_layer == 3
    assert cfg.optim.steps == 7 and cfg.eval == C.EvalWindowsConfig()


def test_dataclass_defaults_are_the_default_composition():
    """One source for every default: `Config()` equals the section of the default params."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, cls in SECTION_CLASSES.items():
        assert cls() == C.from_dict(cls, params[section], f"{section}."), f"{section}: config.py drifted from conf/"
