"""The shared training loop: schedules, and gradient accumulation that leaves the update unchanged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from regmix.config import ModelConfig, OptimConfig
from regmix.errors import UserError
from regmix.model import LLaMA
from regmix.training import MixtureSampler, lr_at, train_steps
from tiny_data import SENTENCES, build_tokens

MODEL = ModelConfig(n_layer=1, n_head=2, d_model=32, d_ff=64, context=16)
OPTIM = OptimConfig(steps=3, batch_size=8, lr=0.5, warmup_steps=1)


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    return build_tokens(tmp_path_factory.mktemp("data") / "tokens")


def trained(tokens, optim: OptimConfig) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = LLaMA(dataclasses.replace(MODEL, vocab_size=400))
    sampler = MixtureSampler(tokens, {d: 1 / len(SENTENCES) for d in SENTENCES}, MODEL.context, seed=0)
    losses = []
    # Plain SGD: the update is the gradient itself (Adam would amplify float noise in tiny gradients).
    train_steps(model, torch.optim.SGD(model.parameters(), lr=optim.lr), sampler, optim,
                on_step=lambda step, loss, lr: losses.append(loss))
    return {"losses": torch.tensor(losses), **model.state_dict()}


def test_micro_batches_give_the_same_update(tokens):
    whole = trained(tokens, OPTIM)
    accumulated = trained(tokens, dataclasses.replace(OPTIM, micro_batch_size=2))
    for name, value in whole.items():
        torch.testing.assert_close(accumulated[name], value, rtol=1e-4, atol=1e-5, msg=name)


def test_micro_batch_must_divide_the_batch(tokens):
    with pytest.raises(UserError, match="micro_batch_size 3"):
        trained(tokens, dataclasses.replace(OPTIM, micro_batch_size=3))


def test_schedules():
    cosine = OptimConfig(steps=100, lr=1.0, min_lr=0.1, warmup_steps=10, schedule="cosine")
    assert lr_at(0, cosine) == pytest.approx(0.1)
    assert lr_at(9, cosine) == pytest.approx(1.0)
    assert lr_at(99, cosine) == pytest.approx(0.1, abs=1e-3)
    assert lr_at(50, dataclasses.replace(cosine, schedule="constant")) == 1.0
    with pytest.raises(UserError, match="schedule"):
        lr_at(50, dataclasses.replace(cosine, schedule="linear"))


def test_sequences_drawn_replays_the_batches(tokens):
    """The exact count per domain equals what `batch` drew, step by step and rank by rank."""
    mixture = {"alpha": 0.7, "beta": 0.0, "gamma": 0.3}
    drawn = {d: 0 for d in ("alpha", "gamma")}
    for rank in range(2):
        sampler = MixtureSampler(tokens, mixture, MODEL.context, seed=3, rank=rank)
        by_window = {}
        for d in drawn:
            stream = np.asarray(sampler.streams[sampler.domains.index(d)])
            by_window[d] = {tuple(stream[i : i + 8]) for i in range(len(stream) - 8)}
        for step in range(5):
            x, _ = sampler.batch(step, 4)
            for row in x.numpy():
                owners = [d for d in drawn if tuple(row[:8]) in by_window[d]]
                assert len(owners) == 1
                drawn[owners[0]] += 1
    assert sampler.sequences_drawn(5, 4, world_size=2) == drawn
