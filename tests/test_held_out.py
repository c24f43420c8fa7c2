"""Held-out sets: evaluation sets and `data.eval_only` domains are tokenised and scored, never
trained on; every set's held-out documents split into valid (selection) and test (verdict)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_prepare import config, corpus, docs, write_jsonl

from regmix.choose.sampling import swarm_generator
from regmix.config import LargeConfig, SampleConfig
from regmix.data.prepare import prepare
from regmix.data.shard_writer import choose_test_documents
from regmix.data.shards import open_tokens, read_meta, task_path
from regmix.data.tokenizer import load_tokenizer
from regmix.errors import UserError
from regmix.mixtures import baseline_mixtures
from regmix.tables import read_domains, token_prior
from regmix.train.training import MixtureSampler

NEWS = [f"breaking news number {i}: the council voted on the budget for year {2000 + i}." for i in range(12)]


def eval_file(tmp_path, name="news.jsonl", texts=NEWS):
    return write_jsonl(tmp_path / name, texts)


def decode_docs(tokens, split: str, name: str) -> list[str]:
    meta, tokenizer = read_meta(tokens), load_tokenizer(str(tokens / "tokenizer.json"))
    ids = np.asarray(open_tokens(tokens, split, name)).tolist()
    out, start = [], 0
    for i, t in enumerate(ids):
        if t == meta.eot_id:
            out.append(tokenizer.decode(ids[start:i]))
            start = i + 1
    return out


def test_an_evaluation_set_is_held_out_and_split_by_document(tmp_path):
    tokens = tmp_path / "tokens"
    table = prepare(config(corpus(tmp_path)), 0, tokens, eval_sets={"news": str(eval_file(tmp_path))})
    meta = read_meta(tokens)
    assert meta.domains == ["alpha", "beta_code", "gamma"] and meta.held_out == ["news"]
    assert table["news"]["role"] == "held_out" and "train_tokens" not in table["news"]
    assert not (tokens / "train" / "news.bin").exists()
    valid, test = decode_docs(tokens, "valid", "news"), decode_docs(tokens, "test", "news")
    assert len(test) == 6 and sorted(valid + test) == sorted(NEWS) and not set(valid) & set(test)
    assert table["news"]["valid_documents"] == 6 and table["news"]["test_documents"] == 6
    # training domains too: valid and test share no document
    for d in meta.domains:
        assert not set(decode_docs(tokens, "valid", d)) & set(decode_docs(tokens, "test", d))
    # only the training domains are mixed: the prior, the swarm's generator and the baselines
    domains = read_domains_of(table, tmp_path)
    assert set(token_prior(domains)) == set(meta.domains)


def read_domains_of(table: dict, tmp_path) -> dict:
    path = tmp_path / "domains.json"
    path.write_text(json.dumps(table))
    return read_domains(path)


def in_stream(row: np.ndarray, stream: np.ndarray) -> bool:
    """Whether `row` is a contiguous slice of `stream` (aligned to whole tokens)."""
    hay, needle, size = stream.tobytes(), row.astype(stream.dtype).tobytes(), stream.dtype.itemsize
    at = hay.find(needle)
    while at != -1 and at % size:
        at = hay.find(needle, at + 1)
    return at != -1


def test_an_evaluation_set_never_enters_a_training_batch(tmp_path):
    tokens = tmp_path / "tokens"
    prepare(config(corpus(tmp_path)), 0, tokens, eval_sets={"news": str(eval_file(tmp_path))})
    with pytest.raises(UserError, match="no train tokens for domain 'news'"):
        MixtureSampler(tokens, {"alpha": 0.5, "news": 0.5}, 8, 0)
    domains = read_meta(tokens).domains
    train = [np.asarray(open_tokens(tokens, "train", d)) for d in domains]
    news = np.asarray(open_tokens(tokens, "test", "news"))
    sampler = MixtureSampler(tokens, {d: 1.0 for d in domains}, 8, 0)
    for step in range(20):
        x, y = sampler.batch(step, 8)
        for row in np.concatenate([x.numpy(), y.numpy()[:, -1:]], axis=1):
            assert any(in_stream(row, s) for s in train)  # every sequence is a slice of some train shard
            assert not in_stream(row, news)


def test_an_eval_only_domain_gets_no_weight_anywhere(tmp_path):
    tokens = tmp_path / "tokens"
    table = prepare(config(corpus(tmp_path), eval_only=["gamma"]), 0, tokens)
    meta = read_meta(tokens)
    assert meta.domains == ["alpha", "beta_code"] and meta.held_out == ["gamma"]
    assert not (tokens / "train" / "gamma.bin").exists()
    assert table["gamma"]["valid_documents"] + table["gamma"]["test_documents"] == 55  # all its documents
    domains = read_domains_of(table, tmp_path)
    gen = swarm_generator(SampleConfig(max_epochs=None), LargeConfig(), domains)
    assert gen.domains == ["alpha", "beta_code"]
    prior = dict(zip(gen.domains, gen.prior))
    for name, mixture in baseline_mixtures(prior, {}).items():
        assert mixture.get("gamma", 0.0) == 0.0, name
    with pytest.raises(UserError, match="data.eval_only names domain.*nope"):
        prepare(config(corpus(tmp_path), eval_only=["nope"]), 0, tmp_path / "t")


def test_the_test_split_rule():
    for n in range(2, 60):
        chosen = choose_test_documents(n, 0.5, f"k{n}")
        assert len(set(chosen)) == len(chosen) and chosen.min() >= 0 and chosen.max() < n
        assert min(n - 1, 3) <= len(chosen) <= n - 1 and len(chosen) >= 0.2 * n
    assert len(choose_test_documents(5, 0.2, "k")) == 3  # at least 3 when there are enough
    assert list(choose_test_documents(10, 0.5, "a")) == list(choose_test_documents(10, 0.5, "a"))


def test_txt_and_folder_sets(tmp_path):
    folder = tmp_path / "sets"
    folder.mkdir()
    (folder / "a.txt").write_text("\n\n".join(NEWS[:6]) + "\n")
    write_jsonl(folder / "b.jsonl", [{"body": t} for t in NEWS[6:]])
    tokens = tmp_path / "tokens"
    prepare(
        config(corpus(tmp_path)),
        0,
        tokens,
        eval_sets={"mixed": {"path": str(folder), "text_field": "body"}, "plain": str(folder / "a.txt")},
    )
    assert read_meta(tokens).held_out == ["mixed", "plain"]
    assert sorted(decode_docs(tokens, "valid", "mixed") + decode_docs(tokens, "test", "mixed")) == sorted(NEWS)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"alpha": "x.jsonl"}, r"eval_sets.alpha: the name is a domain of the corpus too"),
        ({"news": "missing.jsonl"}, r"eval_sets.news: .*missing.jsonl does not exist"),
        ({"news": "empty.jsonl"}, r"eval_sets.news: .*empty.jsonl holds no non-empty text"),
        ({"news": "latin1.txt"}, r"eval_sets.news: .*latin1.txt is not UTF-8 text"),
        ({"news": "bad.jsonl"}, r"bad.jsonl:2: invalid JSON"),
        ({"news": "notes.md"}, r"eval_sets.news: .*notes.md is not a .jsonl"),
        ("task missing.jsonl", r"tasks.cloze: .*missing.jsonl"),
        ("task bad.jsonl", r"tasks.cloze: .*bad.jsonl:1"),
    ],
)
def test_bad_evaluation_sets_fail_before_any_compute(tmp_path, monkeypatch, spec, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    write_jsonl(tmp_path / "bad.jsonl", ["fine"], raw_lines=[b"{nope\n"])
    (tmp_path / "notes.md").write_text("text")
    root = corpus(tmp_path)
    called = []
    monkeypatch.setattr("regmix.data.tokenizer.train_bpe", lambda *a, **k: called.append(1))
    task = spec.split()[1] if isinstance(spec, str) else None
    with pytest.raises(UserError, match=message):
        prepare(
            config(root), 0, tmp_path / "t", eval_sets=None if task else spec, tasks={"cloze": task} if task else None
        )
    assert not called, "the tokenizer trained before the bad set was refused"
    assert not (tmp_path / "t").exists()


def test_task_files_are_split_into_the_token_folder(tmp_path):
    lines = [{"context": f"q {i}", "choices": ["yes", "no"], "gold": i % 2} for i in range(6)]
    task = write_jsonl(tmp_path / "task.jsonl", lines)
    tokens = tmp_path / "tokens"
    prepare(config(corpus(tmp_path)), 0, tokens, tasks={"yesno": str(task)})
    assert read_meta(tokens).tasks == ["yesno"]
    valid = [json.loads(x) for x in task_path(tokens, "yesno", "valid").read_text().splitlines()]
    test = [json.loads(x) for x in task_path(tokens, "yesno", "test").read_text().splitlines()]
    assert [e["context"] for e in valid] == ["q 0", "q 2", "q 4"] and [e["context"] for e in test] == [
        "q 1",
        "q 3",
        "q 5",
    ]


def test_duplicate_share_is_measured(tmp_path):
    root = corpus(tmp_path)
    copied = docs("alpha", 12)  # train documents again, as an evaluation set
    tokens = tmp_path / "tokens"
    table = prepare(
        config(root),
        0,
        tokens,
        eval_sets={"copied": str(eval_file(tmp_path, "c.jsonl", copied)), "news": str(eval_file(tmp_path))},
    )
    assert table["copied"]["test_13gram_in_train"] > 0.9
    assert table["news"]["test_13gram_in_train"] < 0.05
