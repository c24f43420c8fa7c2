"""The proxy swarm: reproducible proxies, resume after a kill, growth, Ray, the stage, the bench."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO
from tiny_data import SENTENCES, build_tokens, write_domains

import regmix.train.swarm as swarm_module
from regmix.config import EvalWindowsConfig, ModelConfig, OptimConfig, ProxyConfig
from regmix.data.shards import open_tokens, read_meta, task_path, write_meta
from regmix.data.tasks import TaskExample, write_task
from regmix.errors import UserError
from regmix.progress import remembered_rate
from regmix.tables import LOSS_PREFIX, read_csv
from regmix.train import backends
from regmix.train import scores as scores_module
from regmix.train import store as machine_store
from regmix.train.backends import Placement, placement_from_env
from regmix.train.proxy import STORE_KIND, plan, resolve_config, train_proxy
from regmix.train.swarm import rate_key, run_swarm

DOMAINS = list(SENTENCES)
CFG = ProxyConfig(
    model=ModelConfig(n_layer=1, n_head=2, d_model=32, d_ff=64, context=32),
    optim=OptimConfig(steps=12, batch_size=4, lr=3e-3, warmup_steps=2),
    eval=EvalWindowsConfig(windows_per_domain=4, batch_size=4),
)


pytestmark = pytest.mark.usefixtures("one_torch_thread", "private_cache")


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """Measured rates go to a cache of the test's own, not this machine's."""
    monkeypatch.setenv("REGMIX_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    return build_tokens(tmp_path_factory.mktemp("data") / "tokens")


def swarm(n: int, seed: int = 0) -> pd.DataFrame:
    """The first `n` rows of one fixed swarm (so a larger swarm extends a smaller one)."""
    weights = np.random.default_rng(seed).dirichlet(np.ones(len(DOMAINS)), size=8)[:n]
    frame = pd.DataFrame(weights, columns=DOMAINS)
    frame.insert(0, "id", range(n))
    return frame


def snapshot(folder) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.glob("*.json"))}


def test_same_seed_same_losses_bit_for_bit(tokens):
    cfg = resolve_config(CFG, tokens)
    mixture = {"alpha": 0.6, "beta": 0.3, "gamma": 0.1}
    first = train_proxy(mixture, cfg, tokens, seed=3)
    again = train_proxy(mixture, cfg, tokens, seed=3)
    other = train_proxy(mixture, cfg, tokens, seed=4)
    assert first["scores"] == again["scores"]
    assert first["scores"] != other["scores"]
    assert set(first["scores"]) == {f"{m}.{d}" for m in ("loss", "bpb") for d in DOMAINS}
    assert first["tokens"] == 12 * 4 * 32


def test_losses_follow_the_mixture(tokens):
    """A proxy trained mostly on one domain is best on that domain's validation windows."""
    cfg = resolve_config(dataclasses.replace(CFG, optim=dataclasses.replace(CFG.optim, steps=40)), tokens)
    for domain in DOMAINS:
        mixture = {d: 0.9 if d == domain else 0.05 for d in DOMAINS}
        scores = train_proxy(mixture, cfg, tokens, seed=0)["scores"]
        losses = {d: scores[f"loss.{d}"] for d in DOMAINS}
        assert min(losses, key=losses.get) == domain


def test_resume_retrains_only_the_missing_proxy(tokens, tmp_path):
    out = tmp_path / "proxies"
    table, stats = run_swarm(swarm(4), CFG, tokens, out, seed=0, placement=Placement(workers=2))
    assert stats["trained"] == 4 and len(list(out.glob("*.json"))) == 4
    assert list(table.columns) == ["id", *DOMAINS, *(f"{m}.{d}" for m in ("loss", "bpb") for d in DOMAINS)]
    before = snapshot(out)
    victim = sorted(before)[1]
    (out / victim).unlink()
    (machine_store.root() / STORE_KIND / victim).unlink()  # gone from the machine store too: trained again

    again, stats = run_swarm(swarm(4), CFG, tokens, out, seed=0, placement=Placement(workers=1))
    after = snapshot(out)
    assert stats["trained"] == 1
    assert {k: v for k, v in after.items() if k != victim} == {k: v for k, v in before.items() if k != victim}
    losses = [json.loads(snap[victim][1])["scores"] for snap in (before, after)]
    assert losses[0] == losses[1]  # the retrained proxy is identical, bit for bit
    pd.testing.assert_frame_equal(table, again)


def test_growing_the_swarm_trains_only_new_mixtures(tokens, tmp_path):
    out = tmp_path / "proxies"
    small, _ = run_swarm(swarm(3), CFG, tokens, out, seed=0, placement=Placement(workers=1))
    big, stats = run_swarm(swarm(5), CFG, tokens, out, seed=0, placement=Placement(workers=1))
    assert stats["trained"] == 2 and len(big) == 5
    pd.testing.assert_frame_equal(big.iloc[:3], small)


def test_key_tracks_what_decides_the_losses(tokens):
    cfg = resolve_config(CFG, tokens)
    key = plan(swarm(1), cfg, tokens, seed=0)[0].key
    fast = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, compile=True))
    longer = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, steps=13))
    assert plan(swarm(1), fast, tokens, seed=0)[0].key == key
    assert plan(swarm(1), longer, tokens, seed=0)[0].key != key
    assert plan(swarm(1), cfg, tokens, seed=1)[0].key != key
    renamed = swarm(1).assign(id=["other"])
    assert plan(renamed, cfg, tokens, seed=0)[0].key == key


def test_user_errors(tokens, monkeypatch):
    with pytest.raises(UserError, match="delta"):
        plan(swarm(2).assign(delta=0.0), resolve_config(CFG, tokens), tokens, seed=0)
    small_vocab = dataclasses.replace(CFG, model=dataclasses.replace(CFG.model, vocab_size=10))
    with pytest.raises(UserError, match="vocab_size"):
        resolve_config(small_vocab, tokens)
    monkeypatch.setenv("REGMIX_BACKEND", "pbs")
    with pytest.raises(UserError, match="REGMIX_BACKEND"):
        placement_from_env()
    monkeypatch.setenv("REGMIX_BACKEND", "ray")
    monkeypatch.setenv("REGMIX_WORKERS", "0")
    with pytest.raises(UserError, match="REGMIX_WORKERS"):
        placement_from_env()


def test_an_empty_swarm_has_no_speed(tokens, tmp_path):
    """proxy.replicates: 0 runs an empty swarm: no proxies, no speed to report (not a division by zero)."""
    table, stats = run_swarm(
        swarm(3).iloc[:0], CFG, tokens, tmp_path / "proxies", seed=0, placement=Placement(workers=1)
    )
    assert table.empty and stats["proxies"] == stats["trained"] == 0
    assert stats["proxy_seconds"] is None and stats["proxy_tokens_per_s"] is None


def test_plan_before_the_swarm(tokens, tmp_path, monkeypatch, capsys):
    """The plan line and its warnings, with a remembered rate given: 3 proxies x (12 steps x 4 x 32
    = 1,536 tokens) = 4,608 tokens; at 0.01 tokens/s that is 460,800 s = 5.3 days on CPU."""
    monkeypatch.setattr("regmix.train.backends.default_device", lambda: torch.device("cpu"))
    monkeypatch.setattr("regmix.train.proxy.default_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(swarm_module, "remembered_rate", lambda key: 0.01)
    with pytest.raises(UserError, match="ETA 5.3 days on CPU, over an hour: nothing trained"):
        run_swarm(swarm(3), CFG, tokens, tmp_path / "stopped", seed=0, placement=Placement(workers=1))
    assert not list((tmp_path / "stopped").glob("*.json"))
    capsys.readouterr()
    monkeypatch.setenv("REGMIX_YES", "1")  # confirmed
    run_swarm(swarm(3), CFG, tokens, tmp_path / "proxies", seed=0, placement=Placement(workers=1), max_epochs=0.1)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        "proxies (seed 0): 3 to train (0 stored) x 1.54k tokens = 4.61k tokens on cpu at "
        "0.01 tokens/s (last run): ETA 5.3 days"
    )
    assert err[1].startswith("warning: proxies (seed 0): ETA 5.3 days on CPU: fewer mixtures")
    # A domain's epochs: its largest weight x 1,536 tokens / its train tokens; one line per domain over 0.1.
    weights = swarm(3)[DOMAINS].max()
    epochs = {d: weights[d] * 1536 / len(open_tokens(tokens, "train", d)) for d in DOMAINS}
    over = [d for d in DOMAINS if epochs[d] > 0.1]
    assert over
    bar = err[2 + len(over) :]  # the bar's first and last lines (and more when the machine is slow)
    assert len(bar) >= 2 and all(line.startswith("proxies (seed 0)") for line in bar)
    for line, domain in zip(err[2:], over):
        assert line.startswith(
            f"warning: proxies (seed 0): a proxy repeats domain {domain!r} up to "
            f"{epochs[domain]:.1f} epochs (weight {weights[domain]:.3g} x 1.54k tokens"
        )
    run_swarm(swarm(3), CFG, tokens, tmp_path / "proxies", seed=0, placement=Placement(workers=1))
    assert "proxies (seed 0): all 3 stored, nothing to train" in capsys.readouterr().err


def test_measured_rate_is_the_next_plans(tokens, tmp_path, capsys, monkeypatch):
    """No rate remembered: a timed warm-up; after the run its measured rate is the next plan's."""
    cfg = resolve_config(CFG, tokens)
    key = rate_key(cfg, Placement(workers=1), backends.where_it_runs(Placement()))
    assert remembered_rate(key) is None
    run_swarm(swarm(2), CFG, tokens, tmp_path / "a", seed=0, placement=Placement(workers=1))
    assert "1 worker(s) x " in capsys.readouterr().err.splitlines()[0]
    rate = remembered_rate(key)
    assert rate > 0
    monkeypatch.setenv("REGMIX_STORE", str(tmp_path / "empty_store"))  # trained again, not taken from the store
    run_swarm(swarm(2), CFG, tokens, tmp_path / "b", seed=0, placement=Placement(workers=1))
    assert f"at {swarm_module.amount(rate)} tokens/s (last run)" in capsys.readouterr().err.splitlines()[0]


def stage_argv(tokens: str) -> list[str]:
    """The proxies stage's command line, its outputs under results/, data/proxies and metrics/."""
    outputs = ["results/proxies.csv", "results/replicates.csv", "results/spread.csv", "results/proxy_run.json"]
    return [
        "proxies",
        tokens,
        "results/domains.json",
        "results/mixtures.csv",
        "data/proxies",
        *outputs,
        "metrics/proxies.json",
    ]


def test_stage_writes_table_and_metrics(tokens, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "tokens").symlink_to(tokens)
    (tmp_path / "results").mkdir()
    swarm(3).to_csv(tmp_path / "results" / "mixtures.csv", index=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text())  # a whole params file: stages check it all
    params.update(
        proxy={**dataclasses.asdict(CFG), "replicates": 2},
        seed=0,
        target="mean",
        sample={**params["sample"], "max_epochs": None},
    )  # the demo's large run outgrows these tokens
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REGMIX_WORKERS", "1")
    write_domains(tmp_path / "results" / "domains.json", tokens)
    monkeypatch.setattr(sys, "argv", stage_argv("data/tokens"))
    from stages.proxies import main

    main()
    table = read_csv("results/proxies.csv")
    metrics = json.loads((tmp_path / "results" / "proxy_run.json").read_text())
    assert len(table) == 3 and table[[LOSS_PREFIX + d for d in DOMAINS]].notna().all().all()
    assert metrics["proxies"] == metrics["trained"] == 3 and metrics["params"] > 0
    assert metrics["proxy_seconds"] > 0 and metrics["proxy_tokens_per_s"] > 0
    main()  # every proxy stored: this run trains none, the swarm's own speed stays
    again = json.loads((tmp_path / "results" / "proxy_run.json").read_text())
    assert again["trained"] == 0 and again["tokens_per_s"] is None and again["workers"] is None
    assert (again["proxy_seconds"], again["proxy_tokens_per_s"]) == (
        metrics["proxy_seconds"],
        metrics["proxy_tokens_per_s"],
    )
    replicates = read_csv("results/replicates.csv")  # the first two mixtures again, another seed
    assert replicates["id"].tolist() == table["id"].tolist()[:2]
    pd.testing.assert_frame_equal(replicates[["id", *DOMAINS]], table[["id", *DOMAINS]].iloc[:2])
    assert not np.allclose(replicates[LOSS_PREFIX + DOMAINS[0]], table[LOSS_PREFIX + DOMAINS[0]].iloc[:2])
    assert set(metrics["seed_noise"]) == {"pairs", "target_std"}  # headline figures; per domain in the table
    assert metrics["seed_noise"]["pairs"] == 2 and metrics["seed_noise"]["target_std"] > 0
    spread = read_csv("results/spread.csv").set_index("domain")
    assert spread.index.tolist() == DOMAINS
    losses = table[[LOSS_PREFIX + d for d in DOMAINS]]
    np.testing.assert_allclose(spread["loss_std"], losses.std().to_numpy())
    assert (spread["seed_std"] > 0).all()


def test_ray_backend_matches_local(tokens, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    local, _ = run_swarm(swarm(2), CFG, tokens, tmp_path / "local", seed=0, placement=Placement(workers=1))
    monkeypatch.setenv("REGMIX_STORE", str(tmp_path / "empty_store"))  # trained again, not taken from the store
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote, stats = run_swarm(swarm(2), CFG, tokens, tmp_path / "ray", seed=0, placement=Placement(backend="ray"))
    finally:
        ray.shutdown()
    assert stats["trained"] == 2
    pd.testing.assert_frame_equal(local, remote)
    assert snapshot(tmp_path / "ray").keys() == snapshot(tmp_path / "local").keys()


def test_ray_address_with_nothing_listening_is_a_clear_error(tokens, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("REGMIX_BACKEND", "ray")
    monkeypatch.setenv("REGMIX_RAY_ADDRESS", "127.0.0.1:1")
    started = time.monotonic()
    with pytest.raises(UserError, match=r"no Ray head answers at REGMIX_RAY_ADDRESS=127\.0\.0\.1:1"):
        run_swarm(swarm(2), CFG, tokens, tmp_path / "proxies", seed=0, placement=placement_from_env())
    assert time.monotonic() - started < 20
    assert not (tmp_path / "proxies").exists()  # it failed before any work


def test_ray_failures_name_the_cause():
    auth = RuntimeError("Failed to connect to GCS. ray.exceptions.AuthenticationError: RPC error: InvalidAuthToken")
    failure = ConnectionError("Failed to connect to Ray cluster at 10.0.0.5:6379")
    failure.__cause__ = auth
    text = backends.ray_failure("REGMIX_RAY_ADDRESS=10.0.0.5:6379", failure, "2.60.0")
    assert "REGMIX_RAY_ADDRESS=10.0.0.5:6379 refused this client's authentication" in text
    assert "RAY_AUTH_MODE=token" in text and "RAY_AUTH_TOKEN" in text
    other = backends.ray_failure("REGMIX_RAY_ADDRESS=10.0.0.5:6379", ConnectionError("Failed"), "2.60.0")
    assert other.startswith("cannot join the Ray cluster at REGMIX_RAY_ADDRESS=10.0.0.5:6379: ConnectionError: Failed")
    assert "token authentication" in other and "2.60.0" in other


def test_bench_prints_json_last(tmp_path):
    args = [
        "--n-layer",
        "1",
        "--d-model",
        "32",
        "--n-head",
        "2",
        "--d-ff",
        "64",
        "--context",
        "32",
        "--vocab-size",
        "256",
        "--batch-size",
        "4",
        "--steps",
        "3",
        "--warmup",
        "1",
        "--rounds",
        "1",
        "--modes",
        "fp32,fp32+fused",
    ]
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_train", *args], capture_output=True, text=True, check=True, timeout=300
    )
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["tokens_per_s"] > 0 and result["hf_tokens_per_s"] > 0
    assert 0 < result["mfu"] < 1
    assert result["speedup"] == pytest.approx(result["tokens_per_s"] / result["hf_tokens_per_s"], rel=1e-3)


def test_a_new_evaluation_set_scores_stored_proxies_without_training(tokens, tmp_path):
    """Adding a held-out set to finished proxies scores their stored weights; nothing trains, and
    the scores they had are unchanged (to the bit: the same weights on the same windows)."""
    out = tmp_path / "proxies"
    before, stats = run_swarm(swarm(3), CFG, tokens, out, seed=0, placement=Placement(workers=1))
    assert stats["trained"] == 3 and stats["scored"] == 0
    grown = tmp_path / "grown"
    shutil.copytree(tokens, grown)
    for split in ("valid", "test"):  # an evaluation set: held-out shards only
        shutil.copy(grown / split / "gamma.bin", grown / split / "extra.bin")
    meta = read_meta(grown)
    write_meta(grown, dataclasses.replace(meta, held_out=["extra"]))
    after, stats = run_swarm(swarm(3), CFG, grown, out, seed=0, placement=Placement(workers=1))
    assert stats["trained"] == 0 and stats["scored"] == 3
    pd.testing.assert_frame_equal(after[before.columns], before)
    assert np.allclose(after["loss.extra"], after["loss.gamma"])  # same tokens, same loss
    again, stats = run_swarm(swarm(3), CFG, grown, out, seed=0, placement=Placement(workers=1))
    assert stats["trained"] == 0 and stats["scored"] == 0
    pd.testing.assert_frame_equal(again, after)


def test_a_set_rewritten_in_place_is_scored_again(tokens, tmp_path):
    """Scores are kept with a digest of what they read: changed valid data is scored again, not trusted."""
    out, changed = tmp_path / "proxies", tmp_path / "changed"
    before, _ = run_swarm(swarm(2), CFG, tokens, out, seed=0, placement=Placement(workers=1))
    shutil.copytree(tokens, changed)
    valid = changed / "valid" / "gamma.bin"
    valid.write_bytes((tokens / "valid" / "alpha.bin").read_bytes())  # gamma's valid text is now alpha's
    after, stats = run_swarm(swarm(2), CFG, changed, out, seed=0, placement=Placement(workers=1))
    assert stats["trained"] == 0 and stats["scored"] == 2
    assert np.allclose(after["loss.gamma"], after["loss.alpha"]) and not np.allclose(
        after["loss.gamma"], before["loss.gamma"]
    )
    pd.testing.assert_series_equal(after["loss.beta"], before["loss.beta"])


def test_scores_made_by_other_code_are_made_again_from_the_weights(tokens, tmp_path, monkeypatch):
    """A stored score keys on the scoring code too: after a change to it, every set and task is
    scored again from the stored weights (nothing trains), and a proxy scored later reads exactly
    what it read when it trained."""
    with_task = tmp_path / "tokens"
    shutil.copytree(tokens, with_task)
    examples = [TaskExample("the cat sat on the", (" mat", " river"), 0), TaskExample("the dog", (" sat", " sells"), 1)]
    for split in ("valid", "test"):
        task_path(with_task, "pick", split).parent.mkdir(exist_ok=True)
        write_task(task_path(with_task, "pick", split), examples)
    write_meta(with_task, dataclasses.replace(read_meta(with_task), tasks=["pick"]))
    out = tmp_path / "proxies"
    trained, stats = run_swarm(swarm(2), CFG, with_task, out, seed=0, placement=Placement(workers=1))
    assert stats["trained"] == 2 and "task.pick" in trained

    monkeypatch.setattr(scores_module, "code_digest", lambda entry: "other code")
    scores_module.scored_on.cache_clear()
    rescored, stats = run_swarm(swarm(2), CFG, with_task, out, seed=0, placement=Placement(workers=1))
    scores_module.scored_on.cache_clear()
    assert stats["trained"] == 0 and stats["scored"] == 2
    pd.testing.assert_frame_equal(rescored, trained)  # to the bit
