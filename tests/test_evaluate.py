"""evaluate stage: target loss, the two downstream tasks, lm-eval bridge, report and JSON shape."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_data import build_tokens

import regmix.judge.built_in_tasks as built_in
import regmix.judge.evaluation as ev
from regmix.choose.regression import FittedRegressor, predict_mixtures
from regmix.config import EvaluateConfig, EvalWindowsConfig, LargeConfig, ModelConfig, OptimConfig
from regmix.errors import UserError
from regmix.target import Target
from regmix.train.hf_export import export_hf, load_hf
from regmix.train.large import RUN_FILE, train_large
from regmix.train.model import LLaMA

MIX = {"alpha": 0.4, "beta": 0.3, "gamma": 0.3}
MODEL = ModelConfig(n_layer=2, n_head=2, d_model=64, d_ff=128, context=48)
EVAL = EvaluateConfig(
    windows_per_domain=8, batch_size=16, n_examples=24, n_choices=4, passage_tokens=32, continuation_tokens=12
)


@pytest.fixture(scope="module")
def tokens(tmp_path_factory) -> Path:
    return build_tokens(tmp_path_factory.mktemp("tokens"))


@pytest.fixture(scope="module")
def models(tokens, tmp_path_factory) -> dict[str, Path]:
    """Exports of a model trained until it has memorised the sentences, and of a random one."""
    root = tmp_path_factory.mktemp("large")
    cfg = LargeConfig(
        model=MODEL,
        checkpoint_every=1000,
        optim=OptimConfig(steps=100, batch_size=16, lr=1e-2, min_lr=1e-3, warmup_steps=10, schedule="cosine"),
        eval=EvalWindowsConfig(windows_per_domain=4, batch_size=16),
    )
    train_large("trained", MIX, cfg, 0, tokens, root / "trained", root / "curves", threads=1)
    torch.manual_seed(0)
    export_hf(
        LLaMA(ModelConfig(**{**MODEL.__dict__, "vocab_size": load_hf(root / "trained" / "hf").cfg.vocab_size})),
        tokens,
        root / "random" / "hf",
    )
    (root / "random" / RUN_FILE).write_text(json.dumps({"mixture": MIX}))
    return {"trained": root / "trained", "random": root / "random"}


@pytest.fixture(scope="module")
def tasks(tokens) -> built_in.TaskSet:
    return built_in.build_tasks(tokens, EVAL, MODEL.context, seed=0)


def test_tasks_are_deterministic_and_well_formed(tokens, tasks):
    again = built_in.build_tasks(tokens, EVAL, MODEL.context, seed=0)
    assert again.last_word == tasks.last_word and again.continuation == tasks.continuation
    other = built_in.build_tasks(tokens, EVAL, MODEL.context, seed=1)
    assert other.continuation != tasks.continuation
    for domain in ("alpha", "beta"):  # prose domains: every passage yields a last word
        assert len(tasks.last_word[domain]) == EVAL.n_examples
    for examples in tasks.last_word.values():
        for e in examples:
            assert len(e.context) + len(e.word) <= MODEL.context
    for examples in tasks.continuation.values():
        assert len(examples) == EVAL.n_examples
        for e in examples:
            assert len(e.endings) == 4 and len({tuple(x) for x in e.endings}) > 1
            assert len(e.context) + len(e.endings[0]) <= MODEL.context
    labels = [e.label for ex in tasks.continuation.values() for e in ex]
    assert len(set(labels)) == 4  # the true ending's position is shuffled


def test_downstream_trained_vs_random(models, tasks):
    trained = built_in.downstream(load_hf(models["trained"] / "hf"), tasks, EVAL.batch_size)
    random = built_in.downstream(load_hf(models["random"] / "hf"), tasks, EVAL.batch_size)
    assert trained["last_word"]["accuracy"] > 0.8
    assert random["last_word"]["accuracy"] < 0.05
    assert trained["continuation"]["accuracy"] > 0.8
    assert abs(random["continuation"]["accuracy"] - 0.25) < 0.2  # chance with 4 choices
    for task in ("last_word", "continuation"):  # accuracy over every example: the counts behind it
        t = trained[task]
        assert t["accuracy"] == t["correct"] / t["examples"]
        assert t["examples"] == sum(len(ex) for ex in getattr(tasks, task).values())


def test_evaluate_runs_json_shape(tokens, models):
    results = ev.evaluate_runs(models, tokens, EVAL, Target.parse("mean"), seed=0)
    assert list(results) == ["trained", "random"]
    for r in results.values():
        assert set(r) == {"target_loss", "scores", "domain_loss", "bpb", "downstream"}
        assert set(r["domain_loss"]) == set(r["bpb"]) == set(MIX)
        assert r["target_loss"] == pytest.approx(sum(r["domain_loss"].values()) / 3)
        assert all(r["scores"][f"loss.{d}"] == r["domain_loss"][d] for d in MIX)
        assert {"last_word", "continuation"} == set(r["downstream"])
    assert results["trained"]["target_loss"] < results["random"]["target_loss"] - 2
    json.dumps(results)  # plain JSON: what results/evaluation.json holds


def test_scores_are_kept_and_a_run_scored_before_is_not_scored_again(tokens, models, tmp_path, monkeypatch):
    store = tmp_path / "scores"
    first = ev.evaluate_runs(models, tokens, EVAL, Target.parse("mean"), seed=0, store=store)
    assert len(list(store.glob("*.json"))) == 2

    def no_scoring(*_):
        raise AssertionError("a stored run was scored again")

    monkeypatch.setattr(ev, "load_hf", no_scoring)
    again = ev.evaluate_runs(models, tokens, EVAL, Target.parse("mean"), seed=0, store=store)
    assert again == first
    # the target is computed from the stored domain losses: another target scores nothing
    alpha = ev.evaluate_runs(models, tokens, EVAL, Target.parse("alpha"), seed=0, store=store)
    assert alpha["trained"]["target_loss"] == first["trained"]["domain_loss"]["alpha"]
    with pytest.raises(AssertionError, match="scored again"):  # new settings: scored anew
        ev.evaluate_runs(models, tokens, replace(EVAL, windows_per_domain=4), Target.parse("mean"), 0, store)


def test_score_key_follows_the_model_settings_seed_and_data(tokens, models, tmp_path):
    device = torch.device("cpu")

    def key(model_dir=models["trained"] / "hf", tokens_dir=tokens, cfg=EVAL, seed=0):
        return ev.score_key(model_dir, tokens_dir, cfg, seed, device)

    assert key() == key()
    assert key() != key(model_dir=models["random"] / "hf")
    assert key() != key(cfg=replace(EVAL, n_examples=12)) and key() != key(seed=1)
    changed = tmp_path / "hf"
    shutil.copytree(models["trained"] / "hf", changed)
    assert key(model_dir=changed) == key()  # the files decide, not where they are
    with (changed / "config.json").open("a") as f:
        f.write(" ")
    assert key(model_dir=changed) != key()
    other_tokens = tmp_path / "tokens"
    shutil.copytree(tokens, other_tokens)
    valid = sorted((other_tokens / "valid").glob("*"))[0]
    valid.write_bytes(valid.read_bytes()[:-2])
    assert key(tokens_dir=other_tokens) == key()  # the verdict reads test only: valid data is not its input
    test = sorted((other_tokens / "test").glob("*"))[0]
    test.write_bytes(test.read_bytes()[:-2])
    assert key(tokens_dir=other_tokens) != key()


def test_predictions_for_the_trained_mixtures_use_the_regressors_domain_order(models):
    class Linear:
        def predict(self, W):
            return W @ np.array([1.0, 2.0, 3.0])

    regressor = FittedRegressor(["gamma", "alpha", "beta"], "mean", "linear", Linear())
    mixtures = {name: json.loads((run / RUN_FILE).read_text())["mixture"] for name, run in models.items()}
    assert predict_mixtures(regressor, mixtures) == pytest.approx(
        {"trained": 0.3 + 0.8 + 0.9, "random": 0.3 + 0.8 + 0.9}
    )


@pytest.mark.slow  # ~30 s, mostly importing lm-eval and transformers' model stack
def test_lm_eval_local_task(models, tmp_path):
    data = tmp_path / "tiny.jsonl"
    rows = [
        {"context": "the red fox jumps over the lazy", "choices": [" dog.", " tree."], "label": 0},
        {"context": "water boils at one hundred", "choices": [" apples.", " degrees."], "label": 1},
        {"context": "the moon circles around the", "choices": [" earth.", " choir."], "label": 0},
        {"context": "seven green apples fell from the", "choices": [" day.", " tree."], "label": 1},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / "tiny.yaml").write_text(f"""task: regmix_tiny
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - metric: acc
""")
    trained = ev.run_lm_eval(models["trained"] / "hf", ["regmix_tiny"], str(tasks_dir), 4, seed=0)
    assert trained["regmix_tiny"]["acc,none"] == 1.0
    with pytest.raises(UserError, match="lm_eval_include_path"):
        ev.run_lm_eval(models["trained"] / "hf", ["regmix_tiny"], str(tmp_path / "nowhere"), 4, seed=0)


def test_prompts_are_tokenised_without_special_tokens():
    """A tokenizer whose post-processor adds BOS (as Llama's does) gives prompts without it, as
    prepare tokenised the data; the model never saw a BOS mid-stream."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"[BOS]": 0, "the": 1, "cat": 2, "sat": 3, "on": 4, "mat": 5, "a": 6}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[BOS]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", 0)])
    assert tokenizer.encode("the cat").ids[0] == 0  # it does add BOS by default
    passage = np.array(tokenizer.encode("the cat sat on a mat", add_special_tokens=False).ids)
    (example,) = built_in.last_word_examples([(0, passage)], tokenizer, context=16)
    assert 0 not in example.context + example.word
    assert example.context + example.word == passage[: len(example.context) + len(example.word)].tolist()
