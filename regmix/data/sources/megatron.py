"""Megatron-LM / NeMo indexed datasets as a source: `<prefix>.bin` (the token ids) and
`<prefix>.idx` (where each sequence and document lies) per domain or per shard of a domain,
`<path>/{train,valid}/<domain>[-<k>].{bin,idx}`.

The index (megatron/core/datasets/indexed_dataset.py, `_IndexWriter`), little-endian:

    9 bytes   b"MMIDIDX\\x00\\x00"
    uint64    version, 1
    uint8     dtype code of the .bin: 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64,
              7 float32, 8 uint16
    uint64    S, the number of sequences
    uint64    D, the number of document indices (documents + 1)
    int32[S]  sequence lengths, in tokens
    int64[S]  sequence pointers, byte offsets into the .bin
    int64[D]  document indices: 0, then the index of the sequence after each document's last
    int8[S]   sequence modes, only in multimodal datasets (ignored here)

A document is its sequences, concatenated. A trailing end-of-text (`preprocess_data.py
--append-eod`) is dropped so every document ends with exactly one in the shards.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from regmix.data.sources.pretokenized import BLOCK, TokenSource, check_dtype, check_ids, memmap
from regmix.errors import UserError

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
HEADER = struct.Struct("<9sQBQQ")  # magic, version, dtype code, sequences, document indices
DTYPES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64, 7: np.float32, 8: np.uint16}


class MegatronIndex(NamedTuple):
    dtype: np.dtype  # of the token ids in the .bin
    sizes: np.ndarray  # int32[S], tokens per sequence
    pointers: np.ndarray  # int64[S], byte offset of each sequence
    documents: np.ndarray  # int64[D], sequence index bounds of the documents


def read_index(path: Path) -> MegatronIndex:
    """The `.idx` file, memory-mapped, its header and size checked."""
    with path.open("rb") as f:
        head = f.read(HEADER.size)
    if len(head) < HEADER.size or not head.startswith(MAGIC):
        raise UserError(f"{path}: not a Megatron index (no {MAGIC!r} header)")
    _, version, code, seqs, docs = HEADER.unpack(head)
    if version != VERSION:
        raise UserError(f"{path}: Megatron index version {version}, only version {VERSION} is known")
    if code not in DTYPES:
        raise UserError(f"{path}: unknown dtype code {code} (known: {sorted(DTYPES)})")
    need = HEADER.size + seqs * (4 + 8) + docs * 8
    size = path.stat().st_size
    if size not in (need, need + seqs):  # + int8 modes when multimodal
        raise UserError(
            f"{path}: {size} bytes, but its header ({seqs} sequences, {docs} document "
            f"indices) needs {need}: a truncated or corrupt index"
        )
    buf = np.memmap(path, dtype=np.uint8, mode="r")
    sizes = np.frombuffer(buf, np.int32, seqs, HEADER.size)
    pointers = np.frombuffer(buf, np.int64, seqs, HEADER.size + sizes.nbytes)
    documents = np.frombuffer(buf, np.int64, docs, HEADER.size + sizes.nbytes + pointers.nbytes)
    if docs < 1 or documents[0] != 0 or documents[-1] != seqs or np.any(np.diff(documents) < 0):
        raise UserError(f"{path}: the document indices do not run from 0 up to the {seqs} sequences")
    return MegatronIndex(np.dtype(DTYPES[code]), sizes, pointers, documents)


def check_layout(index: MegatronIndex, idx: Path, data: Path) -> int:
    """The sequences lie back to back and fill the .bin exactly; returns its token count."""
    itemsize, end = index.dtype.itemsize, 0  # end: bytes the sequences so far take
    for lo in range(0, len(index.sizes), BLOCK):
        sizes = index.sizes[lo : lo + BLOCK].astype(np.int64)
        if np.any(sizes < 0):
            raise UserError(f"{idx}: negative sequence length")
        starts = end + (np.cumsum(sizes) - sizes) * itemsize
        if not np.array_equal(starts, index.pointers[lo : lo + BLOCK]):
            raise UserError(f"{idx}: sequence pointers do not follow the sequence lengths")
        end += int(sizes.sum()) * itemsize
    actual = data.stat().st_size
    if end != actual:
        raise UserError(
            f"{data}: holds {actual} bytes, but its index {idx.name} describes "
            f"{end // itemsize} {index.dtype} tokens ({end} bytes)"
        )
    return end // itemsize


class MegatronSource(TokenSource):
    """`<path>/train/<domain>[-<k>].{bin,idx}` (+ `valid/`, else a holdout)."""

    kind = "megatron"
    layout = "<domain>[-<k>].bin + .idx pairs"

    def files(self, folder: Path) -> list[Path]:
        """The .bin of every .bin/.idx pair, refusing one without the other."""
        bins = {p.with_suffix("") for p in folder.glob("*.bin") if p.is_file()}
        idxs = {p.with_suffix("") for p in folder.glob("*.idx") if p.is_file()}
        for prefix in sorted(bins ^ idxs):
            have, lack = (".bin", ".idx") if prefix in bins else (".idx", ".bin")
            raise UserError(f"{prefix}{have} has no {prefix.name}{lack} beside it (a Megatron dataset is both)")
        return [p.with_name(p.name + ".bin") for p in bins]

    def documents(self, path: Path) -> Iterator[np.ndarray]:
        idx = path.with_suffix(".idx")
        index = read_index(idx)
        check_dtype(index.dtype, self.vocab, path)
        total = check_layout(index, idx, path)
        tokens = memmap(path, index.dtype)
        seqs, itemsize = len(index.sizes), index.dtype.itemsize
        bounds = index.documents
        for i in range(len(bounds) - 1):
            first, after = int(bounds[i]), int(bounds[i + 1])
            lo = int(index.pointers[first]) // itemsize if first < seqs else total
            hi = int(index.pointers[after]) // itemsize if after < seqs else total
            doc = tokens[lo:hi]
            check_ids(doc, self.vocab, path, f"document {i}")
            yield doc[:-1] if len(doc) and doc[-1] == self.eot else doc
