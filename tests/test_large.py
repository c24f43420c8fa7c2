"""train stage: mixture names, kill-and-resume, stale checkpoints, DDP on CPU, HF export."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file
from tiny_data import build_tokens

import regmix.train.large as large
from regmix.config import EvalWindowsConfig, LargeConfig, ModelConfig, OptimConfig
from regmix.errors import UserError
from regmix.progress import remembered_rate
from regmix.train.hf_export import load_hf

MIX = {"alpha": 0.5, "beta": 0.3, "gamma": 0.2}


def tiny_cfg(**optim) -> LargeConfig:
    return LargeConfig(
        mixtures=["regmix"],
        checkpoint_every=4,
        model=ModelConfig(n_layer=1, n_head=2, d_model=32, d_ff=64, context=32, loss_chunk=64),
        optim=OptimConfig(
            **{"steps": 12, "batch_size": 4, "lr": 3e-3, "warmup_steps": 2, "schedule": "cosine", **optim}
        ),
        eval=EvalWindowsConfig(windows_per_domain=4, batch_size=4),
    )


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """Measured rates go to a cache of this module's own, not this machine's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REGMIX_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def tokens(tmp_path_factory) -> Path:
    return build_tokens(tmp_path_factory.mktemp("tokens"))


@pytest.fixture(scope="module")
def trained(tokens, tmp_path_factory) -> Path:
    """One uninterrupted tiny run (reference for resume, source for the export tests)."""
    out = tmp_path_factory.mktemp("ref")
    large.train_large("ref", MIX, tiny_cfg(), 0, tokens, out / "model", out / "curves", threads=1)
    return out


def test_resume_after_kill_matches_uninterrupted_run(tokens, trained, tmp_path, monkeypatch):
    real = large.train_steps

    def killed_at_8(*args, start, **kwargs):
        if start >= 8:
            raise KeyboardInterrupt  # what a kill between checkpoints looks like from here
        real(*args, start=start, **kwargs)

    monkeypatch.setattr(large, "train_steps", killed_at_8)
    with pytest.raises(KeyboardInterrupt):
        large.train_large("run", MIX, tiny_cfg(), 0, tokens, tmp_path / "model", tmp_path / "curves", threads=1)
    assert torch.load(tmp_path / "model" / large.CHECKPOINT_FILE)["step"] == 8
    monkeypatch.setattr(large, "train_steps", real)
    summary = large.train_large("run", MIX, tiny_cfg(), 0, tokens, tmp_path / "model", tmp_path / "curves", threads=1)
    assert summary["resumed_from"] == 8
    resumed = load_file(tmp_path / "model" / "hf" / "model.safetensors")
    reference = load_file(trained / "model" / "hf" / "model.safetensors")
    assert resumed.keys() == reference.keys()
    for key in reference:
        assert torch.equal(resumed[key], reference[key]), key
    # The curve reads like one run: every step once, in order.
    curve = pd.read_csv(tmp_path / "curves" / "plots" / "metrics" / "train" / "loss.tsv", sep="\t")
    assert curve["step"].tolist() == list(range(1, 13))


def test_stale_checkpoint_is_not_resumed(tokens, trained, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / large.CHECKPOINT_FILE).write_bytes((trained / "model" / large.CHECKPOINT_FILE).read_bytes())
    other = {"alpha": 0.2, "beta": 0.3, "gamma": 0.5}
    with pytest.warns(UserWarning, match="other params"):
        summary = large.train_large(
            "run", other, tiny_cfg(steps=4), 0, tokens, model_dir, tmp_path / "curves", threads=1
        )
    assert summary["resumed_from"] == 0


def test_run_summary_and_token_accounting(trained):
    run = json.loads((trained / "model" / large.RUN_FILE).read_text())
    assert run["tokens"] == 12 * 4 * 32
    assert sum(b["tokens"] for b in run["budget"].values()) == pytest.approx(run["tokens"])
    assert sum(run["tokens_seen"].values()) == run["tokens"]
    assert set(run["tokens_seen"]) == {d for d, w in MIX.items() if w > 0}
    assert set(run["valid_loss"]) == set(MIX)
    metrics = json.loads((trained / "curves" / "metrics.json").read_text())
    assert metrics["val"]["alpha"] == pytest.approx(run["valid_loss"]["alpha"])


def test_plan_before_the_run(tokens, tmp_path, monkeypatch, capsys):
    """4 steps x 4 sequences x 32 tokens = 512 tokens; at 0.001 tokens/s, 512,000 s = 5.9 days on CPU.
    Afterwards the measured rate is what the next plan of this shape uses."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU run, on any machine
    monkeypatch.setattr(large, "remembered_rate", lambda key: 0.001)
    monkeypatch.setenv("REGMIX_YES", "1")  # confirmed: a plan over an hour on CPU stops otherwise
    large.train_large("plan", MIX, tiny_cfg(steps=4), 0, tokens, tmp_path / "a", tmp_path / "curves_a", threads=1)
    err = capsys.readouterr().err.splitlines()
    assert (
        err[0]
        == "train plan (seed 0): 4 steps x 128 tokens = 512 tokens on cpu at 0.001 tokens/s (last run): ETA 5.9 days"
    )
    assert err[1].startswith("warning: train plan (seed 0): ETA 5.9 days on CPU: this shape is sized for GPUs")
    monkeypatch.setattr(large, "remembered_rate", remembered_rate)
    monkeypatch.setenv("REGMIX_STORE", str(tmp_path / "empty_store"))  # trained again, not resumed from the store
    large.train_large("plan", MIX, tiny_cfg(steps=4), 0, tokens, tmp_path / "b", tmp_path / "curves_b", threads=1)
    line = capsys.readouterr().err.splitlines()[0]
    assert line.startswith("train plan (seed 0): 4 steps x 128 tokens = 512 tokens on cpu at ")
    assert line.split("(")[2].startswith("last run)")  # measured by the first run


def test_max_epochs_warning(tokens):
    cfg = tiny_cfg(steps=2000)
    with pytest.warns(UserWarning, match="'gamma' would be repeated"):
        large.token_budget(cfg, {"alpha": 0.0, "beta": 0.0, "gamma": 1.0}, tokens, "x", max_epochs=15.0)


def test_vocab_smaller_than_the_tokenizer_names_the_key(tokens, tmp_path):
    cfg = tiny_cfg()
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, vocab_size=10))
    with pytest.raises(UserError, match="large.model.vocab_size 10"):
        large.train_large("x", MIX, cfg, 0, tokens, tmp_path / "model", tmp_path / "curves", threads=1)


def test_hf_export_matches_transformers(tokens, trained):
    from transformers import AutoTokenizer, LlamaForCausalLM

    path = trained / "model" / "hf"
    ours = load_hf(path)
    theirs = LlamaForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    text = "the red fox jumps over the lazy dog. seven green apples"
    ids = torch.tensor([tok(text)["input_ids"]])
    assert tok.eos_token_id == json.loads((tokens / "meta.json").read_text())["eot_id"]
    with torch.no_grad():
        torch.testing.assert_close(theirs(ids).logits, ours(ids), atol=1e-4, rtol=1e-4)


def _ddp_worker(rank: int, port: int, tokens: Path, out: Path) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE="2",
        LOCAL_WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    real = large.train_steps

    def spy(net, *args, **kwargs):  # keep this rank's weights after each chunk
        real(net, *args, **kwargs)
        torch.save({k: v.clone() for k, v in net.module.state_dict().items()}, out / f"rank{rank}.pt")

    large.train_steps = spy
    large.train_large("ddp", MIX, tiny_cfg(steps=8), 0, tokens, out / "model", out / "curves")
    torch.distributed.destroy_process_group()


def test_ddp_two_cpu_processes(tokens, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(port, tokens, tmp_path), nprocs=2, join=True)
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key  # gradients were averaged across ranks
    run = json.loads((tmp_path / "model" / large.RUN_FILE).read_text())
    assert run["world_size"] == 2 and run["steps"] == 8
    exported = load_file(tmp_path / "model" / "hf" / "model.safetensors")
    torch.testing.assert_close(exported["model.norm.weight"], rank0["norm.weight"])
