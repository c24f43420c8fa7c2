"""Tiny token shards and stage results for the train/evaluate tests (built in tmp_path).

Each domain's documents are random sequences of a few fixed sentences, so a small model can
memorise them (task accuracy near 1) while a random one stays at chance.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from regmix.data.shards import TOKENIZER_FILE, TokenMeta, shard_path, write_meta
from regmix.data.tokenizer import EOT, train_bpe

SENTENCES = {
    "alpha": [
        "the red fox jumps over the lazy dog.",
        "a quick brown cat sleeps all day.",
        "seven green apples fell from the tree.",
        "my old uncle sings in the choir.",
    ],
    "beta": [
        "water boils at one hundred degrees.",
        "the moon circles around the earth.",
        "iron rusts when it meets wet air.",
        "light travels faster than any sound.",
    ],
    "gamma": [
        "def add(a, b): return a + b",
        "for item in items: print(item)",
        "while running: step(); wait()",
        "import numpy as np; np.zeros(3)",
    ],
}


def documents(domain: str, n_docs: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    pool = SENTENCES[domain]
    return [" ".join(pool[i] for i in rng.integers(0, len(pool), size=8)) for _ in range(n_docs)]


def build_tokens(root: Path, n_train: int = 60, n_valid: int = 12) -> Path:
    """data/tokens-style folder: byte-level BPE tokenizer, meta.json, train/valid/test shards."""
    root.mkdir(parents=True, exist_ok=True)
    docs = {
        d: {
            "train": documents(d, n_train, i),
            "valid": documents(d, n_valid, 100 + i),
            "test": documents(d, n_valid, 200 + i),
        }
        for i, d in enumerate(SENTENCES)
    }
    tok = train_bpe([t for d in docs.values() for t in d["train"]], vocab_size=400)
    tok.save(str(root / TOKENIZER_FILE))
    eot = tok.token_to_id(EOT)
    for domain, splits in docs.items():
        for split, texts in splits.items():
            ids = [i for t in texts for i in tok.encode(t).ids + [eot]]
            path = shard_path(root, split, domain)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.asarray(ids, dtype=np.uint16).tofile(path)
    write_meta(root, TokenMeta(vocab_size=tok.get_vocab_size(), eot_id=eot, dtype="uint16", domains=list(SENTENCES)))
    return root


def write_domains(path: Path, tokens: Path) -> Path:
    """results/domains.json of the shards in `tokens`, as prepare writes it."""
    domains = {
        d: {
            "documents": 60,
            "train_tokens": int(shard_path(tokens, "train", d).stat().st_size // 2),
            "valid_tokens": 0,
            "source": "test",
        }
        for d in SENTENCES
    }
    path.write_text(json.dumps(domains))
    return path


def build_results(root: Path, tokens: Path) -> Path:
    """results/domains.json, mixtures.csv (a 5-row swarm) and mixture.yaml like earlier stages."""
    root.mkdir(parents=True, exist_ok=True)
    write_domains(root / "domains.json", tokens)
    weights = np.random.default_rng(0).dirichlet(np.ones(len(SENTENCES)), size=5)
    swarm = pd.DataFrame(weights, columns=list(SENTENCES))
    swarm.insert(0, "id", range(len(swarm)))
    swarm.to_csv(root / "mixtures.csv", index=False)
    (root / "mixture.yaml").write_text(yaml.safe_dump({"train": {"alpha": 0.5, "beta": 0.3, "gamma": 0.2}}))
    return root
