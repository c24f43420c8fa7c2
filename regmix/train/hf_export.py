"""Hugging Face LlamaForCausalLM format: what `transformers` and `lm_eval --model hf` load.

regmix.train.model.LLaMA already uses Hugging Face's parameter names and rotary convention, so the
export is a `model.` prefix on the decoder weights, a config.json and the tokenizer files.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from regmix.config import ModelConfig
from regmix.data.shards import TOKENIZER_FILE, read_meta
from regmix.errors import UserError
from regmix.train.model import LLaMA

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def hf_config(cfg: ModelConfig, eos_id: int) -> dict:
    """config.json of the equivalent LlamaForCausalLM (full multi-head attention, untied head)."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.d_ff,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.n_head,
        "head_dim": cfg.d_model // cfg.n_head,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.context,
        "rms_norm_eps": cfg.norm_eps,
        # Both spellings: transformers 5 reads rope_parameters, 4.x reads rope_theta.
        "rope_theta": cfg.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "bos_token_id": eos_id,  # no separate BOS in training: documents are eot-separated
        "eos_token_id": eos_id,
        "torch_dtype": "float32",
    }


def hf_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """LLaMA (possibly DDP- or compile-wrapped) weights under LlamaForCausalLM names."""
    out = {}
    for name, tensor in model.state_dict().items():
        name = name.replace("module.", "", 1).replace("_orig_mod.", "", 1)
        key = name if name.startswith("lm_head.") else f"model.{name}"
        out[key] = tensor.detach().to("cpu", torch.float32).contiguous()
    return out


def export_hf(model: LLaMA, tokens_dir: str | Path, out_dir: str | Path) -> Path:
    """Write `out_dir` (config.json, model.safetensors, tokenizer files) atomically.

    The folder is built beside its final name and renamed into place, so a killed export
    never leaves a half-written model where lm-eval would pick it up.
    """
    from transformers import PreTrainedTokenizerFast  # heavy import, only needed here

    out_dir = Path(out_dir)
    meta = read_meta(tokens_dir)
    tokenizer_file = Path(tokens_dir) / TOKENIZER_FILE
    if not tokenizer_file.exists():
        raise UserError(f"{tokenizer_file} is missing: the export needs the shards' tokenizer")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        (tmp / CONFIG_FILE).write_text(json.dumps(hf_config(model.cfg, meta.eot_id), indent=2) + "\n")
        save_file(hf_state_dict(model), str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file))
        eos = tokenizer.convert_ids_to_tokens(meta.eot_id)
        tokenizer.eos_token = eos
        tokenizer.pad_token = eos  # lm-eval pads batches; padded positions are masked anyway
        tokenizer.model_max_length = model.cfg.context
        tokenizer.save_pretrained(str(tmp))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir


def load_hf(path: str | Path) -> LLaMA:
    """Read an export back into regmix.train.model.LLaMA (fp32, CPU, eval mode)."""
    path = Path(path)
    if not (path / CONFIG_FILE).exists() or not (path / WEIGHTS_FILE).exists():
        raise UserError(
            f"{path} is not an exported model (no {CONFIG_FILE} / {WEIGHTS_FILE}): run the train stage first"
        )
    c = json.loads((path / CONFIG_FILE).read_text())
    rope = c.get("rope_parameters") or {}
    cfg = ModelConfig(
        n_layer=c["num_hidden_layers"],
        n_head=c["num_attention_heads"],
        d_model=c["hidden_size"],
        d_ff=c["intermediate_size"],
        context=c["max_position_embeddings"],
        vocab_size=c["vocab_size"],
        rope_theta=rope.get("rope_theta", c.get("rope_theta", 10000.0)),
        norm_eps=c["rms_norm_eps"],
    )
    model = LLaMA(cfg)
    weights = {k.removeprefix("model."): v for k, v in load_file(str(path / WEIGHTS_FILE)).items()}
    model.load_state_dict(weights)
    return model.eval()
