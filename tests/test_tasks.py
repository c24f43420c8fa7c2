"""Multiple-choice tasks: the jsonl reader, the valid/test split, lm-eval-style tokenisation, the
gold bits-per-byte and accuracy scores (checked against a hand computation), and the offline
continuation task."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from regmix.config import ModelConfig
from regmix.data.tasks import (
    EncodedExample,
    TaskExample,
    build_continuation_task,
    encode_examples,
    read_task,
    score_task,
    split_examples,
    write_task,
)
from regmix.errors import UserError
from regmix.train.model import LLaMA

SENTENCES = [
    "the cat sat on the mat and the dog sat on the log",
    "a quick brown fox jumps over the lazy dog near the river",
    "she sells sea shells by the sea shore every summer morning",
    "the café serves naïve coffee to the tired students at noon",
    "numbers like 12 and 345 appear in the text from time to time",
]
EXAMPLES = [
    TaskExample("the cat sat on the", (" mat", " river", " café"), 0),
    TaskExample("a quick brown fox jumps over", (" the lazy dog", " the sea"), 0),
    TaskExample("she sells sea shells", (" by the sea shore", " to students", " at noon", " 12"), 1),
    TaskExample("the café serves", (" naïve coffee", " shells"), 0),
    TaskExample("numbers like", (" 12 and 345", " the mat", " jumps"), 2),
    TaskExample("the dog", (" sat on the log", " sells"), 1),
    TaskExample("every summer", (" morning", " fox", " dog", " cat", " mat"), 0),
    TaskExample("the tired students at", (" noon", " the river"), 0),
    TaskExample("from time", (" to time", " by time"), 0),
]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    """A byte-level BPE of ~300 tokens trained on a few sentences."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(SENTENCES, trainer)
    return tok


def tiny_model(tokenizer: Tokenizer, context: int = 32) -> LLaMA:
    torch.manual_seed(0)
    return LLaMA(
        ModelConfig(n_layer=1, n_head=2, d_model=16, d_ff=32, context=context, vocab_size=tokenizer.get_vocab_size())
    )


def hand_loglik(model: LLaMA, context: list[int], choice: list[int]) -> float:
    """log p(choice | context), one unpadded sequence at a time."""
    seq = context + choice
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([seq[:-1]]))[0].float(), dim=-1)
    return sum(logp[len(context) - 1 + k, t].item() for k, t in enumerate(choice))


# -------------------------------------------------------------------- scoring
def test_score_matches_hand_computation_and_batching(tmp_path, tokenizer):
    path = tmp_path / "toy.jsonl"
    write_task(path, EXAMPLES)
    encoded = encode_examples(read_task(path, "toy"), tokenizer, context_len=32)
    model = tiny_model(tokenizer)
    nll = n_bytes = correct = 0.0
    for e, raw in zip(encoded, EXAMPLES):
        lls = [hand_loglik(model, e.context, ch) for ch in e.choices]
        nbytes = [len(c.encode("utf-8")) for c in raw.choices]
        nll -= lls[e.gold]
        n_bytes += nbytes[e.gold]
        correct += int(np.argmax(np.array(lls) / np.array(nbytes))) == e.gold
    model.train()
    one = score_task(model, encoded, batch_size=1)
    assert model.training  # the flag is restored
    assert one["examples"] == len(EXAMPLES)
    assert one["bpb"] == pytest.approx(nll / (math.log(2) * n_bytes), abs=1e-5)
    assert one["accuracy"] == pytest.approx(correct / len(EXAMPLES))
    # Batches of 7 sequences of unequal length: the padding must never reach a score.
    seven = score_task(model, encoded, batch_size=7)
    assert seven["bpb"] == pytest.approx(one["bpb"], abs=1e-5)
    assert seven["accuracy"] == one["accuracy"]
    model.eval()
    score_task(model, encoded, batch_size=3)
    assert not model.training


def test_choice_bytes_count_utf8(tokenizer):
    (e,) = encode_examples([TaskExample("the café serves", (" naïve coffee", "x"), 0)], tokenizer, 32)
    assert e.choice_bytes == [len(" naïve coffee".encode("utf-8")), 1] and e.choice_bytes[0] == 14


# ------------------------------------------------------------------- reading
def test_reader_parses_a_good_file(tmp_path):
    path = tmp_path / "good.jsonl"
    path.write_text(
        '{"context": "a b", "choices": [" c", " d"], "gold": 1}\n\n'
        '{"context": "é", "choices": ["x", "y", "z"], "gold": 0, "extra": 3}\n',
        encoding="utf-8",
    )
    assert read_task(path, "good") == [TaskExample("a b", (" c", " d"), 1), TaskExample("é", ("x", "y", "z"), 0)]


GOOD = '{"context": "a", "choices": ["b", "c"], "gold": 0}'


@pytest.mark.parametrize(
    "bad, what",
    [
        ('{"context": "a", "choices": ["b", "c"], ', "not JSON"),
        ('{"context": "a", "gold": 0}', "`choices`"),
        ('{"context": "a", "choices": ["b", "c"], "gold": 2}', "out of range"),
        ('{"context": "a", "choices": ["b"], "gold": 0}', "at least 2"),
        ('{"context": "a", "choices": ["b", ""], "gold": 0}', "non-empty"),
        ('{"context": 3, "choices": ["b", "c"], "gold": 0}', "`context`"),
        ('{"context": "a", "choices": ["b", "c"], "gold": true}', "`gold`"),
        ('["a", "b"]', "JSON object"),
    ],
)
def test_reader_refuses_a_bad_line_by_number(tmp_path, bad, what):
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{GOOD}\n\n{bad}\n{GOOD}\n")  # the bad line is line 3: blank lines count
    with pytest.raises(UserError, match="tasks.mine") as err:
        read_task(path, "mine")
    assert f"{path}:3" in str(err.value) and what in str(err.value)


@pytest.mark.parametrize("text", ["", "\n  \n"])
def test_reader_refuses_an_empty_file(tmp_path, text):
    path = tmp_path / "empty.jsonl"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        read_task(path, "mine")
    assert str(err.value) == f"tasks.mine: {path} has no examples"


def test_reader_refuses_a_missing_file(tmp_path):
    with pytest.raises(UserError) as err:
        read_task(tmp_path / "absent.jsonl", "mine")
    assert "tasks.mine" in str(err.value) and str(tmp_path / "absent.jsonl") in str(err.value)


# ------------------------------------------------------------------ splitting
def test_split_alternates_and_never_shares_an_example():
    parts = split_examples(EXAMPLES)
    assert parts["valid"] == EXAMPLES[0::2] and parts["test"] == EXAMPLES[1::2]
    valid, test = set(parts["valid"]), set(parts["test"])
    assert not valid & test and valid | test == set(EXAMPLES)
    assert len(parts["valid"]) + len(parts["test"]) == len(EXAMPLES)
    with pytest.raises(UserError, match="at least 2"):
        split_examples(EXAMPLES[:1])


# ---------------------------------------------------------------- tokenising
def test_context_is_cut_from_the_left_to_fit(tokenizer):
    long_context = " ".join(SENTENCES)
    long_choice = " " + " ".join(SENTENCES[:2])
    examples = [
        TaskExample(long_context, (" the mat", " sea shells by the sea shore"), 0),
        TaskExample(long_context, (" noon", long_choice), 1),
        TaskExample("the cat sat on the", (" mat", " log"), 0),
    ]
    full_ctx = tokenizer.encode(long_context, add_special_tokens=False).ids
    for context_len in (8, 16):
        encoded = encode_examples(examples, tokenizer, context_len)
        for e in encoded[:2]:
            assert len(e.context) + max(map(len, e.choices)) <= context_len + 1
            assert e.context and e.context == full_ctx[-len(e.context) :]  # a suffix: cut from the left
        assert encoded[1].choices[1] == tokenizer.encode(long_choice, add_special_tokens=False).ids[:context_len]
        assert len(encoded[1].context) == 1  # the longest choice fills the window
        # Each choice was tokenised in its context: the joint encoding is context + choice.
        e, ex = encoded[2], examples[2]
        for choice, ids in zip(ex.choices, e.choices):
            assert e.context + ids == tokenizer.encode(ex.context + choice, add_special_tokens=False).ids
        # The model sees at most context_len inputs.
        result = score_task(tiny_model(tokenizer, context=context_len), encoded, batch_size=4)
        assert result["examples"] == 3 and math.isfinite(result["bpb"])


def test_a_context_of_no_tokens_is_refused(tokenizer):
    with pytest.raises(UserError, match="example 1"):
        encode_examples([EXAMPLES[0], TaskExample("", ("a", "b"), 0)], tokenizer, 32)


def test_encoded_example_shape(tokenizer):
    (e,) = encode_examples(EXAMPLES[:1], tokenizer, 32)
    assert isinstance(e, EncodedExample) and e.gold == 0 and len(e.choices) == 3


# ------------------------------------------------------------- continuation
def random_documents(seed: int) -> dict[str, list[str]]:
    """Three sources of random-word documents with messy whitespace, and some too short."""
    rng = np.random.default_rng(seed)
    letters = list("abcdefghijklmnopqrstuvwxyz") + ["é", "ß", "日"]
    vocab = ["".join(rng.choice(letters, size=rng.integers(2, 9))) for _ in range(300)]
    seps = [" ", " ", " ", "  ", "\n", "\t", " \n\n "]

    def doc(words: int) -> str:
        return "".join(str(rng.choice(vocab)) + str(rng.choice(seps)) for _ in range(words))

    return {
        source: [doc(int(rng.integers(150, 400))) for _ in range(4)] + [doc(5)] for source in ("web", "code", "books")
    }


def test_continuation_task(tmp_path):
    documents = random_documents(0)
    kwargs = dict(n_examples=12, n_choices=4, context_chars=100, ending_chars=40)
    task = build_continuation_task(documents, seed=3, **kwargs)
    assert task == build_continuation_task(documents, seed=3, **kwargs)
    assert task != build_continuation_task(documents, seed=4, **kwargs)
    assert len(task) == 12
    normal = {(s, i): " ".join(d.split()) for s, docs in documents.items() for i, d in enumerate(docs)}
    for n, e in enumerate(task):
        assert len(e.choices) == 4 == len(set(e.choices)) and 0 <= e.gold < 4
        for text in (e.context, *e.choices):
            assert "\n" not in text and "\t" not in text and "  " not in text
        # The gold ending is what follows the context in its document, cut at word boundaries.
        whole = e.context + e.choices[e.gold]
        (home,) = [k for k, t in normal.items() if whole in t]
        assert home[0] == list(documents)[n % 3]  # sources take turns
        at = normal[home].index(whole)
        assert at == 0 or normal[home][at - 1] == " "
        assert normal[home][at + len(whole)] == " "
        assert 0 < len(e.choices[e.gold]) <= 40 and len(e.context) <= 100
        # Distractors come from other documents of the same source (the passage's topic).
        for j, choice in enumerate(e.choices):
            if j != e.gold:
                assert any(choice in t for k, t in normal.items() if k != home and k[0] == home[0])
    path = tmp_path / "sub" / "continuation.jsonl"
    write_task(path, task)
    assert read_task(path, "continuation") == task
    written = path.read_text(encoding="utf-8")
    assert len(written.splitlines()) == 12
    assert "\\u" not in written and any(c in written for c in "éß日")  # ensure_ascii=False
    assert all(
        json.loads(line)["gold"] == e.gold for line, e in zip(path.read_text(encoding="utf-8").splitlines(), task)
    )
    assert [p.name for p in path.parent.iterdir()] == ["continuation.jsonl"]  # no temp file left


def test_continuation_task_needs_two_long_documents():
    documents = random_documents(1)
    one = {"web": documents["web"][:1], "code": documents["code"][4:]}
    assert build_continuation_task(one, 5, 4, seed=0, context_chars=100, ending_chars=40) == []
    with pytest.raises(UserError, match="n_choices"):
        build_continuation_task(documents, 5, 1, seed=0)
