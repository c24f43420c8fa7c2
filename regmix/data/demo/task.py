"""The demo's shipped downstream task, `true_ending`: HellaSwag-like (the true ending of a passage
among others), built offline from the demo corpus's held-out documents
(regmix.data.tasks.build_continuation_task), every domain in turn.

    python -m regmix.data.demo.task data/tokens data/tasks/true_ending.jsonl

Examples alternate: the even ones come from valid documents, the odd ones from test documents,
so regmix.data.tasks.split_examples gives selection (valid) only examples of documents selection may
read and the verdict (test) only examples of test documents. Made from the default demo run's
split (seed 0, data.valid_fraction and data.test_fraction of conf/data/demo.yaml); another
split still keeps every example out of training, not the valid/test correspondence.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from regmix.data.shards import TOKENIZER_FILE, open_tokens, read_meta
from regmix.data.tasks import TaskExample, build_continuation_task, write_task

N_EXAMPLES = 240  # per split half: 120 valid, 120 test
N_CHOICES = 4
SEED = 0


def held_out_documents(tokens_dir: str | Path, split: str) -> dict[str, list[str]]:
    """Every training domain's `split` documents, decoded."""
    meta = read_meta(tokens_dir)
    tokenizer = Tokenizer.from_file(str(Path(tokens_dir) / TOKENIZER_FILE))
    out = {}
    for domain in meta.domains:
        stream = np.asarray(open_tokens(tokens_dir, split, domain))
        ends = np.flatnonzero(stream == meta.eot_id)
        starts = np.concatenate([[0], ends[:-1] + 1])
        out[domain] = [tokenizer.decode(stream[a:b].tolist()) for a, b in zip(starts, ends)]
    return out


def demo_task(tokens_dir: str | Path) -> list[TaskExample]:
    """Valid- and test-document examples, interleaved (valid first)."""
    halves = [
        build_continuation_task(held_out_documents(tokens_dir, split), N_EXAMPLES // 2, N_CHOICES, SEED + i)
        for i, split in enumerate(("valid", "test"))
    ]
    n = min(map(len, halves))
    return [example for pair in zip(halves[0][:n], halves[1][:n]) for example in pair]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("tokens", type=Path, help="the demo's token shards (prepare)")
    parser.add_argument("out", type=Path, help="task file (.jsonl) to write")
    args = parser.parse_args()
    examples = demo_task(args.tokens)
    write_task(args.out, examples)
    print(f"{len(examples)} examples -> {args.out}")


if __name__ == "__main__":
    main()
