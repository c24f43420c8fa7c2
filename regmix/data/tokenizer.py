"""The tokeniser: a byte-level BPE trained on the train split, or a user's own.

Byte-level BPE round-trips any text exactly (decode(encode(text)) == text) and never needs
an unknown token, which is what a mixture over code, prose and maths needs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from regmix.errors import UserError

EOT = "<|endoftext|>"
# End-of-text spellings of common released tokenisers, tried in order when loading one.
EOT_CANDIDATES = (EOT, "</s>", "<|end_of_text|>", "<eos>", "<|eot_id|>", "<|im_end|>")


def train_bpe(texts: Iterable[str], vocab_size: int):
    """Train a byte-level BPE with one special token, the end-of-text marker."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < 257 + 1:
        raise UserError(f"data.tokenizer.vocab_size must exceed 257 (256 bytes + {EOT}), got {vocab_size}")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=True,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def load_tokenizer(path_or_name: str):
    """A tokenizer.json file (or a folder holding one), else a Hugging Face tokenizer name."""
    from tokenizers import Tokenizer

    path = Path(path_or_name)
    if path.is_dir() and (path / "tokenizer.json").exists():
        path = path / "tokenizer.json"
    if path.is_file():
        try:
            return Tokenizer.from_file(str(path))
        except Exception as e:
            raise UserError(f"{path}: not a tokenizers JSON file ({e})") from None
    if path_or_name.endswith(".json") or path_or_name.startswith(("/", ".", "~")):
        raise UserError(f"data.tokenizer.path {path_or_name} does not exist")
    try:
        from transformers import AutoTokenizer

        auto = AutoTokenizer.from_pretrained(path_or_name)
    except Exception as e:
        raise UserError(f"cannot load tokenizer {path_or_name!r}: {type(e).__name__}: {e}") from None
    if not getattr(auto, "is_fast", False):
        raise UserError(f"tokenizer {path_or_name!r} has no fast (tokenizers) version")
    backend = auto.backend_tokenizer
    if auto.eos_token and backend.token_to_id(auto.eos_token) is not None:
        backend.add_special_tokens([auto.eos_token])  # keeps it findable by eot_id
    return backend


def eot_id(tokenizer) -> int:
    for token in EOT_CANDIDATES:
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            return token_id
    raise UserError(f"the tokenizer has no end-of-text token (looked for {', '.join(EOT_CANDIDATES)})")


def vocab_size(tokenizer) -> int:
    """Ids run from 0 to the largest id used (added tokens can sit above the base vocab)."""
    return max(tokenizer.get_vocab(with_added_tokens=True).values()) + 1


class Encoder:
    """Texts -> one flat id array, each document followed by end-of-text (picklable setup)."""

    def __init__(self, tokenizer_json: str, dtype: str):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_str(tokenizer_json)
        # A document that literally contains "<|endoftext|>" must not end early.
        self.tokenizer.encode_special_tokens = True
        self.eot = eot_id(self.tokenizer)
        self.dtype = np.dtype(dtype)

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids of all texts with an end-of-text after each, tokens per text incl. end-of-text)."""
        encoded = [self.tokenizer.encode(t, add_special_tokens=False).ids for t in texts]
        lengths = np.fromiter((len(ids) + 1 for ids in encoded), dtype=np.int64, count=len(encoded))
        flat = np.empty(int(lengths.sum()), dtype=self.dtype)
        pos = 0
        for ids in encoded:
            flat[pos : pos + len(ids)] = ids
            flat[pos + len(ids)] = self.eot
            pos += len(ids) + 1
        return flat, lengths


_worker: Optional[Encoder] = None


def init_worker(tokenizer_json: str, dtype: str) -> None:
    global _worker
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the processes are the parallelism
    _worker = Encoder(tokenizer_json, dtype)


def encode_in_worker(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return _worker.encode(texts)
