"""Flat token arrays as a source, as nanoGPT-style and OLMo-core loaders read them:
`<path>/{train,valid}/<domain>[-<k>].{npy,bin}`, one stream of ids per file, documents
separated by the tokenizer's end-of-text id.

- `.npy` with a NumPy header: its own dtype (1-D).
- `.bin`, or a `.npy` without a header (OLMo's memmap files): raw ids of `data.dtype`
  (e.g. uint16 or uint32), native byte order.

The last document may lack its end-of-text; empty documents (two end-of-texts in a row) are
held out or kept like any other and then dropped, as empty texts are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from regmix.data.sources.pretokenized import BLOCK, TokenSource, check_dtype, check_ids, memmap
from regmix.errors import UserError

SUFFIXES = (".npy", ".bin")
NPY_MAGIC = b"\x93NUMPY"


def raw_dtype(dtype: Optional[str]) -> Optional[np.dtype]:
    if dtype is None:
        return None
    try:
        return np.dtype(dtype)
    except TypeError:
        raise UserError(f"data.dtype {dtype!r} is not a NumPy dtype (e.g. uint16, uint32)") from None


class NumpySource(TokenSource):
    """`<path>/train/<domain>[-<k>].{npy,bin}` (+ `valid/`, else a holdout)."""

    kind = "numpy"
    layout = "<domain>[-<k>].npy or .bin token files"

    def __init__(self, path: str | Path, dtype: Optional[str], valid_fraction: float, seed: int):
        self.dtype = raw_dtype(dtype)
        super().__init__(path, valid_fraction, seed)

    def files(self, folder: Path) -> list[Path]:
        return [p for p in folder.iterdir() if p.is_file() and p.suffix in SUFFIXES]

    def open(self, path: Path) -> np.ndarray:
        """The file's ids, memory-mapped."""
        with path.open("rb") as f:
            npy = path.suffix == ".npy" and f.read(len(NPY_MAGIC)) == NPY_MAGIC
        if npy:
            try:
                tokens = np.load(path, mmap_mode="r", allow_pickle=False)
            except ValueError as e:
                raise UserError(f"{path}: not a readable .npy file ({e})") from None
            if tokens.ndim != 1:
                raise UserError(
                    f"{path}: a {tokens.ndim}-D array of shape {tokens.shape}; expected one flat token stream"
                )
            return tokens
        if self.dtype is None:
            raise UserError(f"{path}: raw token file without a NumPy header: set data.dtype (e.g. uint16, uint32)")
        return memmap(path, self.dtype)

    def documents(self, path: Path) -> Iterator[np.ndarray]:
        tokens = self.open(path)
        check_dtype(tokens.dtype, self.vocab, path)
        start = 0
        for lo in range(0, len(tokens), BLOCK):
            block = np.asarray(tokens[lo : lo + BLOCK])
            check_ids(block, self.vocab, path, f"among tokens {lo} to {lo + len(block) - 1}")
            for end in (np.flatnonzero(block == self.eot) + lo).tolist():
                yield tokens[start:end]
                start = end + 1
        if start < len(tokens):
            yield tokens[start:]
