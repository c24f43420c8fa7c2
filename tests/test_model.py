"""The LLaMA decoder: shapes, causality, learning, parity with Hugging Face, precision modes."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from regmix.config import ModelConfig, OptimConfig
from regmix.train.model import LLaMA, causal_attention
from regmix.train.training import make_optimizer

CFG = ModelConfig(n_layer=2, n_head=2, d_model=32, d_ff=64, context=16, vocab_size=50)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def model(cfg: ModelConfig = CFG, seed: int = 0) -> LLaMA:
    torch.manual_seed(seed)
    return LLaMA(cfg)


def test_shapes_and_loss():
    net = model()
    idx = torch.randint(0, 50, (3, 16))
    assert net(idx).shape == (3, 16, 50)
    assert net(idx[:, :5]).shape == (3, 5, 50)
    loss = net(idx, idx)
    assert loss.dim() == 0 and abs(loss.item() - torch.log(torch.tensor(50.0)).item()) < 0.5
    with pytest.raises(ValueError, match="context"):
        net(torch.zeros(1, 17, dtype=torch.long))


def test_changing_a_future_token_keeps_earlier_logits():
    net = model().eval()
    idx = torch.randint(0, 50, (2, 16))
    changed = idx.clone()
    changed[:, 9] = (idx[:, 9] + 1) % 50
    a, b = net(idx), net(changed)
    torch.testing.assert_close(a[:, :9], b[:, :9], rtol=0, atol=0)
    assert not torch.allclose(a[:, 9:], b[:, 9:])


def test_overfits_one_batch():
    net = model()
    optimizer = make_optimizer(net, OptimConfig(lr=1e-2, weight_decay=0.0))
    data = torch.randint(0, 50, (4, 17))
    for _ in range(150):
        loss = net(data[:, :-1], data[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1


def test_matches_hf_llama_logits():
    from transformers import LlamaConfig, LlamaForCausalLM

    net = model().eval()
    hf = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=50,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=16,
            rms_norm_eps=CFG.norm_eps,
            rope_theta=CFG.rope_theta,
            tie_word_embeddings=False,
        )
    ).eval()
    state = {f"model.{k}" if k != "lm_head.weight" else k: v for k, v in net.state_dict().items()}
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected and all("rotary" in k for k in missing)
    idx = torch.randint(0, 50, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(net(idx), hf(input_ids=idx).logits, rtol=1e-4, atol=1e-4)


def test_bf16_autocast_stays_close_to_fp32():
    net = model().eval()
    idx = torch.randint(0, 50, (2, 16))
    with torch.no_grad():
        exact = net(idx, idx)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = net(idx, idx)
    assert fast.dtype == torch.float32 and abs(fast.item() - exact.item()) < 0.05


def test_flops_and_params_count_the_matmuls():
    net = model()
    embed = 50 * 32
    assert net.num_params(non_embedding=False) - net.num_params() == embed
    per_layer = 4 * 32 * 32 + 3 * 32 * 64
    expected = 6 * (2 * per_layer + 32 * 50) + 6 * 2 * 2 * 16 * 32
    assert net.flops_per_token() == expected
    wide = dataclasses.replace(CFG, vocab_size=100)
    assert model(wide).flops_per_token() == expected + 6 * 32 * 50


@pytest.mark.parametrize("chunk", [7, 64])
def test_fused_head_and_loss_matches_the_plain_path(chunk):
    plain, fused = model(), model(dataclasses.replace(CFG, loss_chunk=chunk))
    idx = torch.randint(0, 50, (3, 16))
    losses = []
    for net in (plain, fused):
        loss = net(idx, idx.roll(1, dims=1))
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-6, atol=1e-6)
    for (name, a), b in zip(plain.named_parameters(), fused.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7, msg=name)
    with torch.no_grad():  # evaluation returns the same loss through the plain path
        assert fused(idx, idx).item() == pytest.approx(plain(idx, idx).item(), abs=1e-6)


def test_causal_attention_matches_sdpa():
    q, k, v = torch.randn(3, 2, 2, 16, 8).unbind(0)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(causal_attention(q, k, v), expected)
