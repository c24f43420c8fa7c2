"""prepare with REGMIX_BACKEND=ray: text tokenised as Ray tasks, shards byte-identical to the local run's."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO

from regmix.config import DataConfig, TokenizerConfig
from regmix.data import encoding
from regmix.data.prepare import prepare

ray = pytest.importorskip("ray")

TINY = REPO / "tests" / "fixtures" / "tiny_corpus"
CFG = DataConfig(source="jsonl", path=str(TINY), tokenizer=TokenizerConfig(vocab_size=512))


@pytest.fixture(scope="module")
def local_ray():
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, log_to_driver=False
    )  # never another session's cluster
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The local backend's shards, one process and default chunks."""
    tokens = tmp_path_factory.mktemp("local") / "tokens"
    prepare(CFG, 0, tokens, workers=1, backend="local")
    return tokens


def files(tokens: Path) -> dict[str, bytes]:
    return {str(p.relative_to(tokens)): p.read_bytes() for p in sorted(tokens.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("workers", [1, 2])
def test_ray_shards_are_byte_identical(local_ray, reference, tmp_path, monkeypatch, workers):
    monkeypatch.setattr(encoding, "CHUNK_DOCS", 16)  # dozens of chunks: several in flight, out of order on Ray
    table = prepare(CFG, 0, tmp_path / "tokens", workers=workers, backend="ray")
    assert files(tmp_path / "tokens") == files(reference)
    assert sorted(table) == ["arithmetic", "code", "logs", "prose"]
    assert all(d["train_tokens"] > 0 and d["valid_tokens"] > 0 for d in table.values())


def test_environment_selects_ray(local_ray, reference, tmp_path, monkeypatch):
    """REGMIX_BACKEND=ray with no backend given: the chunks go to Ray tasks, never to an encoder
    in this process, which one local worker would use (broken here; Ray's workers import their own)."""
    monkeypatch.setenv("REGMIX_BACKEND", "ray")
    monkeypatch.setenv("REGMIX_WORKERS", "1")
    monkeypatch.setattr(encoding.tok, "Encoder", None)
    prepare(CFG, 0, tmp_path / "tokens", workers=None)
    assert files(tmp_path / "tokens") == files(reference)


def test_local_processes_match(reference, tmp_path, monkeypatch):
    """The same chunks through the local process pool (the executor `encoders` picks otherwise)."""
    monkeypatch.setattr(encoding, "CHUNK_DOCS", 16)
    prepare(CFG, 0, tmp_path / "tokens", workers=2, backend="local")
    assert files(tmp_path / "tokens") == files(reference)
