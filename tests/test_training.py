"""The shared training loop: schedules, and gradient accumulation that leaves the update unchanged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from tiny_data import SENTENCES, build_tokens

from regmix.config import LargeConfig, ModelConfig, OptimConfig, ProxyConfig
from regmix.data.shards import TokenMeta
from regmix.errors import UserError
from regmix.train.large import fingerprint
from regmix.train.model import LLaMA
from regmix.train.proxy import proxy_key
from regmix.train.training import MixtureSampler, lr_at, resolve_precision, resolve_vocab, train_steps

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
    train_steps(
        model,
        torch.optim.SGD(model.parameters(), lr=optim.lr),
        sampler,
        optim,
        on_step=lambda step, loss, lr: losses.append(loss),
    )
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


def test_stored_proxy_keys_and_fingerprints_stay_valid():
    """Digests computed by the code at 46282f7: cached proxies (data/proxies/<key>.json) and
    resumable checkpoints are found by them, so a refactor must reproduce them exactly."""
    data = {"meta": '{"vocab_size": 400}', "tokenizer": "ab" * 32, "alpha": [1234, "cd" * 32]}
    mixture = {"alpha": 0.5, "beta": 0.3, "gamma": 0.2, "delta": 0.0}
    vocab = ModelConfig(vocab_size=400)
    # The configs of 46282f7's defaults, spelled out: later default changes must not move them.
    proxy = dataclasses.replace(ProxyConfig(), optim=dataclasses.replace(ProxyConfig().optim, precision="fp32"))
    large = dataclasses.replace(LargeConfig(), optim=dataclasses.replace(LargeConfig().optim, precision="fp32"))
    assert proxy_key(mixture, proxy, data, 0) == "1f0a6d771cfbb66f96f6893c"
    assert proxy_key(mixture, dataclasses.replace(proxy, model=vocab), data, 7) == "5ab56d4608e1635ccc6c617e"
    assert fingerprint(large, mixture, 0, 1, data) == "d45903f27a6c411a8df9bacf3fe4755b10aec1cd99b1a02842ee7ed455eba1f5"
    assert (
        fingerprint(dataclasses.replace(large, model=vocab), mixture, 3, 2, data)
        == "a93498f09224035df7b178f31e7ce67406a43dde4556de6d36db126ff00d0543"
    )
    compiled = dataclasses.replace(large, optim=dataclasses.replace(large.optim, compile=True))
    assert fingerprint(compiled, mixture, 0, 1, data) == fingerprint(large, mixture, 0, 1, data)


def test_resolve_vocab():
    meta = TokenMeta(vocab_size=400, eot_id=0, dtype="uint16", domains=["alpha"])
    assert resolve_vocab(MODEL, meta, "proxy.model").vocab_size == 400
    assert resolve_vocab(dataclasses.replace(MODEL, vocab_size=512), meta, "proxy.model").vocab_size == 512
    with pytest.raises(UserError, match="large.model.vocab_size 10 is smaller"):
        resolve_vocab(dataclasses.replace(MODEL, vocab_size=10), meta, "large.model")


def test_auto_precision_is_bf16_only_where_native(monkeypatch):
    """`auto` never emulates bf16 (~20x slower than fp32 on an AVX2-only CPU), and the
    concrete precision is what keys cached proxies."""
    optim = OptimConfig(precision="auto")
    cpu = torch.device("cpu")
    for native, expected in ((False, "fp32"), (True, "bf16")):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        assert resolve_precision(optim, cpu, "proxy").precision == expected
    assert resolve_precision(OptimConfig(precision="fp32"), cpu, "proxy").precision == "fp32"
    with pytest.raises(UserError, match="large.optim.precision: 'fp16'"):
        resolve_precision(OptimConfig(precision="fp16"), cpu, "large")
