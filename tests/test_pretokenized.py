"""Pre-tokenised sources (data=megatron, data=numpy): the tiny corpus, tokenised with the
tokenizer `prepare` trains on its jsonl form and written in each format, prepares into
shards byte-identical to the jsonl source's; bad files stop with the file's name and leave
nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from regmix.config import DataConfig, TokenizerConfig
from regmix.data.prepare import prepare
from regmix.data.shards import SPLITS, read_meta
from regmix.data.tokenizer import Encoder
from regmix.errors import UserError

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY = REPO / "tests" / "fixtures" / "tiny_corpus"
DOMAINS = ["arithmetic", "code", "logs", "prose"]
# Megatron's dtype codes (megatron/core/datasets/indexed_dataset.py, DType), written independently here
CODES = {"uint8": 1, "int8": 2, "int16": 3, "int32": 4, "int64": 5, "float64": 6, "float32": 7, "uint16": 8}
EOT = 0  # the reference tokenizer's `<|endoftext|>` (its first special token)


# ----------------------------------------------------------------------------- writers
def write_megatron(
    prefix: Path, docs: list[np.ndarray], dtype: str = "uint16", eod: int | None = None, sentences: int = 1
) -> None:
    """`<prefix>.bin` + `<prefix>.idx` as Megatron's IndexedDatasetBuilder writes them: each
    document as `sentences` sequences, with `eod` appended when given (--append-eod)."""
    itemsize = np.dtype(dtype).itemsize
    sizes, bounds, pieces = [], [0], []
    for doc in docs:
        doc = np.append(doc, eod) if eod is not None else np.asarray(doc)
        for piece in np.array_split(doc, max(1, min(sentences, len(doc)))):
            pieces.append(piece)
            sizes.append(len(piece))
        bounds.append(len(sizes))
    pointers = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) * itemsize if sizes else []
    prefix.parent.mkdir(parents=True, exist_ok=True)
    data = np.concatenate(pieces) if pieces else np.empty(0)
    Path(f"{prefix}.bin").write_bytes(data.astype(dtype).tobytes())
    Path(f"{prefix}.idx").write_bytes(
        b"MMIDIDX\x00\x00"
        + struct.pack("<QBQQ", 1, CODES[dtype], len(sizes), len(bounds))
        + np.asarray(sizes, np.int32).tobytes()
        + np.asarray(pointers, np.int64).tobytes()
        + np.asarray(bounds, np.int64).tobytes()
    )


def write_flat(path: Path, docs: list[np.ndarray], eot: int, dtype: str = "uint16", header: bool = True) -> None:
    """One token stream, an end-of-text after each document: a .npy, or raw ids (nanoGPT, OLMo)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = np.concatenate([np.append(d, eot) for d in docs]).astype(dtype) if docs else np.empty(0, dtype)
    if header:
        np.save(path, flat)
    else:
        path.write_bytes(flat.tobytes())


# ------------------------------------------------------------------ reference and formats
@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The jsonl source's output for the tiny corpus (its tokenizer is the one the formats use);
    its domains table beside it."""
    tokens = tmp_path_factory.mktemp("ref") / "tokens"
    table = prepare(jsonl_config(TINY), 0, tokens)
    (tokens.parent / "domains.json").write_text(json.dumps(table))
    assert read_meta(tokens).eot_id == EOT
    return tokens


def jsonl_config(path: Path, reference: Path | None = None, **kw) -> DataConfig:
    """The jsonl source: training its BPE, or with the reference's tokenizer."""
    tokenizer = (
        TokenizerConfig(path=str(reference / "tokenizer.json"))
        if reference
        else TokenizerConfig(vocab_size=512, train_chars=100_000)
    )
    return DataConfig(source="jsonl", path=str(path), tokenizer=tokenizer, **kw)


def token_config(source: str, path: Path, reference: Path, **kw) -> DataConfig:
    return DataConfig(
        source=source, path=str(path), tokenizer=TokenizerConfig(path=str(reference / "tokenizer.json")), **kw
    )


def tokenised(reference: Path, path: Path) -> list[np.ndarray]:
    """The documents of one jsonl file, tokenised as `prepare` does (no end-of-text)."""
    encoder = Encoder((reference / "tokenizer.json").read_text(), "uint32")
    texts = [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]
    flat, lengths = encoder.encode(texts)
    return [doc[:-1] for doc in np.split(flat, np.cumsum(lengths)[:-1])]


# format name -> (source, data.dtype, writer of one file from its stem and documents)
FORMATS = {
    "megatron-uint16-eod": ("megatron", None, lambda stem, docs, eot: write_megatron(stem, docs, "uint16", eot)),
    "megatron-int32-sentences": (
        "megatron",
        None,
        lambda stem, docs, eot: write_megatron(stem, docs, "int32", sentences=3),
    ),
    "numpy-npy": ("numpy", None, lambda stem, docs, eot: write_flat(stem.with_suffix(".npy"), docs, eot)),
    "numpy-raw-bin": (
        "numpy",
        "uint32",
        lambda stem, docs, eot: write_flat(stem.with_suffix(".bin"), docs, eot, "uint32", header=False),
    ),
    "numpy-olmo-npy": (
        "numpy",
        "uint16",
        lambda stem, docs, eot: write_flat(stem.with_suffix(".npy"), docs, eot, header=False),
    ),
}


def convert(corpus: Path, out: Path, fmt: str, reference: Path) -> Path:
    """Every jsonl file of `corpus` as one file (same name, same documents) in format `fmt`."""
    for path in sorted(corpus.glob("*/*.jsonl")):
        FORMATS[fmt][2](out / path.parent.name / path.name.removesuffix(".jsonl"), tokenised(reference, path), EOT)
    return out


def assert_same_shards(a: Path, b: Path) -> None:
    assert sorted(p.relative_to(a) for p in a.rglob("*")) == sorted(p.relative_to(b) for p in b.rglob("*"))
    for name in ["meta.json", "tokenizer.json"] + [f"{s}/{d}.bin" for s in SPLITS for d in read_meta(a).domains]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def without_source(table: dict) -> dict:
    return {d: {k: v for k, v in row.items() if k != "source"} for d, row in table.items()}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_formats_prepare_like_jsonl(tmp_path, reference, fmt):
    """Same tokens in, same shards out: the proxies cannot tell the formats apart."""
    source, dtype = FORMATS[fmt][:2]
    root = convert(TINY, tmp_path / "corpus", fmt, reference)
    table = prepare(token_config(source, root, reference, dtype=dtype), 0, tmp_path / "tokens")
    assert_same_shards(reference, tmp_path / "tokens")
    expected = json.loads((reference.parent / "domains.json").read_text())
    assert without_source(table) == without_source(expected) and list(table) == DOMAINS
    assert all(row["source"] == f"{source}:{root}" for row in table.values())
    assert not list(tmp_path.glob(".tokens*")), "staging folders are cleaned up"


@pytest.mark.parametrize("fmt", ["megatron-uint16-eod", "numpy-npy"])
def test_holdout_matches_jsonl(tmp_path, reference, fmt):
    """Without valid/, the seeded document-level holdout picks the same documents as for jsonl."""
    shutil.copytree(TINY / "train", tmp_path / "jsonl" / "train")
    root = convert(tmp_path / "jsonl", tmp_path / "corpus", fmt, reference)
    prepare(jsonl_config(tmp_path / "jsonl", reference, valid_fraction=0.1), 3, tmp_path / "a")
    prepare(token_config(FORMATS[fmt][0], root, reference, valid_fraction=0.1), 3, tmp_path / "b")
    assert_same_shards(tmp_path / "a", tmp_path / "b")


def test_selection_and_caps_match_jsonl(tmp_path, reference):
    root = convert(TINY, tmp_path / "corpus", "megatron-uint16-eod", reference)
    options = dict(include=["code", "prose", "logs"], exclude=["logs"], max_documents=20, max_tokens=1500)
    a = prepare(jsonl_config(TINY, reference, **options), 0, tmp_path / "a")
    b = prepare(token_config("megatron", root, reference, **options), 0, tmp_path / "b")
    assert list(b) == ["code", "prose"] and without_source(a) == without_source(b)
    assert b["code"]["train_tokens"] == 1500 and all(row["valid_tokens"] > 0 for row in b.values())
    assert_same_shards(tmp_path / "a", tmp_path / "b")
    with pytest.raises(UserError, match="include names domain.*nope"):
        prepare(token_config("megatron", root, reference, include=["nope"]), 0, tmp_path / "c")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_megatron_core_writer(tmp_path, reference):
    """Files written by megatron-core's own IndexedDatasetBuilder read the same."""
    torch = pytest.importorskip("torch")
    indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset")
    for path in sorted(TINY.glob("*/*.jsonl")):
        prefix = tmp_path / "corpus" / path.parent.name / path.name.removesuffix(".jsonl")
        prefix.parent.mkdir(parents=True, exist_ok=True)
        builder = indexed.IndexedDatasetBuilder(f"{prefix}.bin", dtype=np.uint16)
        for doc in tokenised(reference, path):
            builder.add_document(torch.from_numpy(np.append(doc, EOT).astype(np.int64)), [len(doc) + 1])
        builder.finalize(f"{prefix}.idx")
    prepare(token_config("megatron", tmp_path / "corpus", reference), 0, tmp_path / "tokens")
    assert_same_shards(reference, tmp_path / "tokens")


# ------------------------------------------------------------------------------ bad input
def small_corpus(root: Path, source: str) -> Path:
    """Two domains of six train and two valid documents (ids 1..99) in the source's format."""
    for split, n in (("train", 6), ("valid", 2)):
        for domain in ("alpha", "beta"):
            ids = [np.arange(i, 2 * i + 5) % 99 + 1 for i in range(n)]
            if source == "megatron":
                write_megatron(root / split / f"{domain}-0", ids)
            else:
                write_flat(root / split / f"{domain}-0.npy", ids, EOT)
    return root


def idx(root: Path, name: str = "train/alpha-0") -> Path:
    return root / f"{name}.idx"


def patch(path: Path, offset: int, data: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset : offset + len(data)] = data
    path.write_bytes(bytes(raw))


MEGATRON_CASES = {
    "bad magic": (lambda r: patch(idx(r), 0, b"NOTANIDX\x00"), r"alpha-0\.idx: not a Megatron index"),
    "bad version": (lambda r: patch(idx(r), 9, struct.pack("<Q", 2)), r"alpha-0\.idx: Megatron index version 2"),
    "unknown dtype code": (lambda r: patch(idx(r), 17, b"\x09"), r"alpha-0\.idx: unknown dtype code 9"),
    "truncated index": (lambda r: idx(r).write_bytes(idx(r).read_bytes()[:-8]), r"alpha-0\.idx: \d+ bytes, but"),
    "sizes exceed data": (
        lambda r: (r / "train/alpha-0.bin").write_bytes((r / "train/alpha-0.bin").read_bytes()[:-2]),
        r"alpha-0\.bin: holds \d+ bytes, but its index alpha-0\.idx describes",
    ),
    "data beyond sizes": (
        lambda r: (r / "valid/beta-0.bin").write_bytes((r / "valid/beta-0.bin").read_bytes() + b"\0\0"),
        r"beta-0\.bin: holds \d+ bytes",
    ),
    "pointers off": (
        lambda r: patch(idx(r), 34 + 6 * 4 + 8, struct.pack("<q", 3)),
        r"alpha-0\.idx: sequence pointers do not follow",
    ),
    "document indices": (
        lambda r: patch(idx(r), 34 + 6 * 12 + 6 * 8, struct.pack("<q", 9)),
        r"alpha-0\.idx: the document indices",
    ),
    "bin without idx": (lambda r: idx(r, "valid/alpha-0").unlink(), r"valid/alpha-0\.bin has no alpha-0\.idx"),
    "idx without bin": (lambda r: (r / "train/beta-0.bin").unlink(), r"train/beta-0\.idx has no beta-0\.bin"),
    "float dtype": (
        lambda r: write_megatron(r / "train/alpha-1", [np.arange(5)], "float32"),
        r"alpha-1\.bin: token dtype float32 is not an integer type",
    ),
    "dtype too small": (
        lambda r: write_megatron(r / "train/alpha-1", [np.arange(5)], "uint8"),
        r"alpha-1\.bin: token dtype uint8 cannot hold the ids of the tokenizer's 512-token",
    ),
    "id outside vocabulary": (
        lambda r: write_megatron(r / "train/beta-1", [np.arange(5), np.array([1, 600])]),
        r"beta-1\.bin: token id 600 \(document 1\) is outside",
    ),
    "empty domain": (lambda r: write_megatron(r / "train/gamma-0", []), r"gamma-0\.bin: no documents \(domain 'gamma'"),
    "ambiguous names": (
        lambda r: write_megatron(r / "train/alpha-x-0", [np.arange(3)]),
        r"ambiguous domain names.*alpha-0\.bin.*alpha-x-0\.bin",
    ),
}
NUMPY_CASES = {
    "raw without dtype": (
        lambda r: write_flat(r / "train/alpha-1.bin", [np.arange(4)], 0, header=False),
        r"alpha-1\.bin: raw token file without a NumPy header: set data\.dtype",
    ),
    "raw size": (lambda r: (r / "train/alpha-1.bin").write_bytes(b"\1\0\2"), None),  # checked with dtype below
    "not 1-D": (
        lambda r: np.save(r / "train/alpha-1.npy", np.zeros((2, 3), np.uint16)),
        r"alpha-1\.npy: a 2-D array of shape \(2, 3\)",
    ),
    "float dtype": (
        lambda r: np.save(r / "train/alpha-1.npy", np.zeros(3, np.float32)),
        r"alpha-1\.npy: token dtype float32 is not an integer type",
    ),
    "dtype too small": (
        lambda r: np.save(r / "train/alpha-1.npy", np.zeros(3, np.int8)),
        r"alpha-1\.npy: token dtype int8 cannot hold",
    ),
    "id outside vocabulary": (
        lambda r: np.save(r / "valid/beta-0.npy", np.array([1, 2, 512, 3], np.uint16)),
        r"beta-0\.npy: token id 512 \(among tokens 0 to 3\) is outside",
    ),
    "empty file": (
        lambda r: np.save(r / "train/gamma-0.npy", np.zeros(0, np.uint16)),
        r"gamma-0\.npy: no documents \(domain 'gamma'",
    ),
    "only end-of-text": (
        lambda r: np.save(r / "train/gamma-0.npy", np.full(3, EOT, np.uint16)),
        r"gamma-0\.npy: no documents",
    ),
    "corrupt npy": (
        lambda r: (r / "train/alpha-1.npy").write_bytes(b"\x93NUMPY\xff\xff"),
        r"alpha-1\.npy: not a readable \.npy file",
    ),
}


def assert_fails_cleanly(cfg: DataConfig, tmp_path: Path, message: str) -> None:
    """A UserError naming the file; the previous output untouched and nothing partial left."""
    (tmp_path / "t").mkdir(exist_ok=True)
    (tmp_path / "t" / "old").write_text("previous output")
    with pytest.raises(UserError, match=message):
        prepare(cfg, 0, tmp_path / "t")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".t", "t"))) == ["t"]
    assert [p.name for p in (tmp_path / "t").iterdir()] == ["old"]


def test_small_corpora_are_fine(tmp_path, reference):
    for source in ("megatron", "numpy"):
        root = small_corpus(tmp_path / source, source)
        table = prepare(token_config(source, root, reference), 0, tmp_path / f"t-{source}")
        assert {d: row["documents"] for d, row in table.items()} == {"alpha": 8, "beta": 8}


@pytest.mark.parametrize("case", list(MEGATRON_CASES))
def test_bad_megatron_input(tmp_path, reference, case):
    root = small_corpus(tmp_path / "corpus", "megatron")
    damage, message = MEGATRON_CASES[case]
    damage(root)
    assert_fails_cleanly(token_config("megatron", root, reference), tmp_path, message)


@pytest.mark.parametrize("case", list(NUMPY_CASES))
def test_bad_numpy_input(tmp_path, reference, case):
    root = small_corpus(tmp_path / "corpus", "numpy")
    damage, message = NUMPY_CASES[case]
    damage(root)
    cfg = token_config("numpy", root, reference)
    if case == "raw size":
        cfg, message = replace(cfg, dtype="uint16"), r"alpha-1\.bin: 3 bytes of tokens is not a whole number of uint16"
    assert_fails_cleanly(cfg, tmp_path, message)


@pytest.mark.parametrize("source", ["megatron", "numpy"])
def test_bad_config(tmp_path, reference, source):
    root = small_corpus(tmp_path / "corpus", source)
    cfg = token_config(source, root, reference)
    assert_fails_cleanly(
        replace(cfg, tokenizer=TokenizerConfig()), tmp_path, f"data.tokenizer.path is required for source {source}"
    )
    assert_fails_cleanly(replace(cfg, path=None), tmp_path, f"data.path is required for source {source}")
    assert_fails_cleanly(replace(cfg, path=str(tmp_path / "nowhere")), tmp_path, "nowhere does not exist")
    assert_fails_cleanly(replace(cfg, path=str(root / "train")), tmp_path, "has no train/ folder")
    (root / "empty" / "train").mkdir(parents=True)
    assert_fails_cleanly(
        replace(cfg, path=str(root / "empty")), tmp_path, r"train holds no token files \(expected <domain>"
    )
    if source == "numpy":
        assert_fails_cleanly(replace(cfg, dtype="nonsense"), tmp_path, "data.dtype 'nonsense' is not a NumPy dtype")
    for path in (root / "valid").glob("alpha-0.*"):
        path.rename(path.with_name("delta-0" + path.suffix))
    assert_fails_cleanly(cfg, tmp_path, "domain\\(s\\) delta have no train files")
