"""`regmix export`: a compared mixture in Megatron / OLMo-core / litdata / HF datasets shapes.

The hand-computed case: domains a (10,000 train tokens, 100 train documents of 100 tokens),
b (20,000 train tokens, 40 train documents of 500 tokens) and c (weight 0). Mixture a 0.6,
b 0.4 over a 50,000-token budget: a gets 30,000 tokens = 3 epochs, b 20,000 = 1 epoch. HF
document probabilities are proportional to 0.6/100 and 0.4/500, i.e. 15/17 and 2/17.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import yaml
from conftest import REPO

from regmix.cli import main, token_count
from regmix.errors import UserError
from regmix.handoff import formats, planning

# documents count both splits: 110 x 10,000 / 11,000 = 100 and 50 x 20,000 / 25,000 = 40 train documents
DOMAINS = {
    "a": {"documents": 110, "train_tokens": 10_000, "valid_tokens": 1_000},
    "b": {"documents": 50, "train_tokens": 20_000, "valid_tokens": 5_000},
    "c": {"documents": 5, "train_tokens": 300, "valid_tokens": 0},
}
MIXTURE = {"a": 0.6, "b": 0.4, "c": 0.0}
BUDGET = planning.Budget(50_000, "test")
PARAMS = {
    "large": {"model": {"context": 100}, "optim": {"steps": 100, "batch_size": 5}},
    "sample": {"max_epochs": 2.0},
}  # 100 x 5 x 100 = 50,000 tokens; 500 a step
MEGATRON = "--data-path 0.6 /data/a/text_document 0.4 /data/b/text_document"


def the_plan(mixture=MIXTURE, budget=BUDGET, cap=2.0):
    return planning.plan("regmix", mixture, DOMAINS, budget, cap, "sample.max_epochs")


def template(split=None):
    return planning.prefixes(["a", "b"], split, list(DOMAINS), "/data/{domain}/text_document")


# ---------------------------------------------------------------- the conversions
def test_plan_tokens_epochs_and_the_repeat_warning():
    p = the_plan()
    assert [(s.domain, s.weight, s.tokens, s.epochs) for s in p.shares] == [
        ("a", 0.6, 30_000, 3.0),
        ("b", 0.4, 20_000, 1.0),
    ]
    assert p.dropped == ["c"]
    assert p.warnings() == [
        "mixture 'regmix': domain 'a' would be repeated 3.00 epochs, more than 2 (sample.max_epochs)"
    ]
    assert the_plan(cap=3.0).warnings() == [] and the_plan(cap=None).warnings() == []


def test_weights_are_normalised_and_zero_weights_left_out():
    p = the_plan({"a": 0.3, "b": 0.1, "c": 0.0})
    assert formats.megatron_args(p, template()) == "--data-path 0.75 /data/a/text_document 0.25 /data/b/text_document"
    thirds = the_plan({"a": 1 / 3, "b": 2 / 3})
    assert (
        formats.megatron_args(thirds, template())
        == "--data-path 0.333333333333 /data/a/text_document 0.666666666667 /data/b/text_document"
    )


def test_megatron_blend_exact():
    text = formats.to_megatron(the_plan(), "cmp/regmix.json", template)
    assert text.splitlines()[-1] == MEGATRON
    assert all(line.startswith("# ") for line in text.splitlines()[:-1])
    assert "# token budget: 50,000 tokens (test)" in text
    assert "# WARNING: mixture 'regmix': domain 'a' would be repeated 3.00 epochs" in text

    def paths(split):
        return planning.prefixes(["a", "b"], split, list(DOMAINS), "/data/{split}/{domain}")

    lines = formats.to_megatron(the_plan(), "x", paths, ["train", "valid"]).splitlines()[-2:]
    assert lines == [
        "--train-data-path 0.6 /data/train/a 0.4 /data/train/b",
        "--valid-data-path 0.6 /data/valid/a 0.4 /data/valid/b",
    ]


def test_hf_probabilities_per_document():
    probs, mean_len, estimated = formats.document_probabilities(the_plan(), DOMAINS)
    assert probs == pytest.approx({"a": 15 / 17, "b": 2 / 17}, rel=1e-12)
    assert mean_len == pytest.approx({"a": 100.0, "b": 500.0}) and estimated
    exact = {d: {**v, "train_documents": 100 if d == "a" else 40} for d, v in DOMAINS.items()}
    assert formats.document_probabilities(the_plan(), exact)[1:] == ({"a": 100.0, "b": 500.0}, False)
    out = json.loads(formats.to_hf_datasets(the_plan(), "x", {"a": "org/a", "b": "org/b"}, DOMAINS))
    assert out["probabilities"] == pytest.approx([15 / 17, 2 / 17], rel=1e-11)
    assert [d["path"] for d in out["datasets"]] == ["org/a", "org/b"]
    assert out["token_budget"] == 50_000 and len(out["warnings"]) == 1
    assert any("draws documents, not tokens" in line for line in out["about"])
    assert any("train documents estimated as documents x train_tokens" in line for line in out["about"])


def test_interleave_datasets_with_the_probabilities_gives_the_token_weights():
    datasets = pytest.importorskip("datasets")
    out = json.loads(formats.to_hf_datasets(the_plan(), "x", {"a": "a", "b": "b"}, DOMAINS))
    # documents of each domain's mean length; the interleaved stream's token share is the mixture
    parts = [
        datasets.Dataset.from_dict({"domain": [d] * 3000, "n_tokens": [int(mean)] * 3000})
        for d, mean in (("a", 100), ("b", 500))
    ]

    def token_share_of_a(probabilities):
        mixed = datasets.interleave_datasets(
            parts, probabilities=probabilities, seed=0, stopping_strategy="all_exhausted"
        )
        rows = mixed.select(range(6000))
        tokens = Counter()
        for domain, n in zip(rows["domain"], rows["n_tokens"]):
            tokens[domain] += n
        return tokens["a"] / sum(tokens.values())

    assert token_share_of_a(out["probabilities"]) == pytest.approx(0.6, abs=0.03)
    assert token_share_of_a([0.6, 0.4]) == pytest.approx(60 / 260, abs=0.03)  # token weights taken as-is


@pytest.mark.parametrize("epochs, ratio", [(3.0, 3.0), (3.01, 3.1), (3.0000000001, 3.0), (0.2, 1.0), (1.05, 1.1)])
def test_max_repetition_rounds_up_to_a_tenth(epochs, ratio):
    assert formats.max_repetition(epochs) == ratio


def test_olmo_core_config():
    text = formats.to_olmo_core(
        the_plan(budget=planning.Budget(51_000, "t", 510)), "x", {"a": "/d/a/*.npy", "b": "/d/b/*.npy"}
    )
    config = yaml.safe_load(text)
    assert config == {
        "source_list": {
            "sources": [
                {"source_name": "a", "target_ratio": 0.6, "paths": ["/d/a/*.npy"], "max_repetition_ratio": 3.1},
                {"source_name": "b", "target_ratio": 0.4, "paths": ["/d/b/*.npy"], "max_repetition_ratio": 1.1},
            ]
        },
        "requested_tokens": 51_000,
        "global_batch_size": 510,
    }
    assert "# WARNING: mixture 'regmix': domain 'a' would be repeated 3.06 epochs" in text
    without = yaml.safe_load(formats.to_olmo_core(the_plan(), "x", {"a": "a", "b": "b"}))
    assert "global_batch_size" not in without  # a --tokens budget knows no batch size


def test_olmo_core_builds_the_exported_mixture(tmp_path):
    source_mixture = pytest.importorskip("olmo_core.data.source_mixture")
    for domain, n in (("a", 10_000), ("b", 20_000)):  # token files as many tokens as domains.json says
        np.arange(n, dtype=np.uint16).tofile(tmp_path / f"{domain}.npy")
    path = tmp_path / "mix.yaml"
    p = the_plan(budget=planning.Budget(50_000, "t", 500))
    path.write_text(formats.to_olmo_core(p, "x", {d: str(tmp_path / f"{d}.npy") for d in "ab"}))
    config = source_mixture.SourceMixtureDatasetConfig.from_file(path)
    config.render_tables = False
    config.quiet = True
    built = config.build(npdtype=np.uint16, sequence_length=100)
    selected = {s.name: sum(pt.tokens for pt in s.path_tokens) for s in built.sources}
    assert selected == {"a": 30_000, "b": 20_000}  # a repeated 3 times, as planned


def test_litdata_weights():
    out = json.loads(formats.to_litdata(the_plan(), "x", {"a": "s3://b/a", "b": "s3://b/b"}))
    assert [(d["input_dir"], d["weight"]) for d in out["datasets"]] == [("s3://b/a", 0.6), ("s3://b/b", 0.4)]
    assert any("TokensLoader" in line for line in out["about"])


def test_prefixes():
    known = list(DOMAINS)
    assert planning.prefixes(["a"], None, known) == {"a": "a"}
    assert planning.prefixes(["a", "b"], None, known, mapping={"a": "/x", "b": "/y", "c": "/z"}) == {
        "a": "/x",
        "b": "/y",
    }
    split_map = {"a": {"train": "/t/a", "valid": "/v/a"}, "b": "/b"}
    assert planning.prefixes(["a", "b"], "valid", known, mapping=split_map) == {"a": "/v/a", "b": "/b"}
    with pytest.raises(UserError, match="no prefix for domain\\(s\\) b"):
        planning.prefixes(["a", "b"], None, known, mapping={"a": "/x"})
    with pytest.raises(UserError, match="unknown domain\\(s\\) wiki; known: a, b, c"):
        planning.prefixes(["a"], None, known, mapping={"a": "/x", "wiki": "/y"})
    with pytest.raises(UserError, match="gives prefixes per split: give --split"):
        planning.prefixes(["a"], None, known, mapping=split_map)
    with pytest.raises(UserError, match="uses \\{split\\}: give --split"):
        planning.prefixes(["a"], None, known, "/{split}/{domain}")
    with pytest.raises(UserError, match="placeholders are"):
        planning.prefixes(["a"], None, known, "/{dataset}")


def test_budget_from_params_and_overrides(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(PARAMS))
    budget, cap, source = planning.budget_and_cap(params, None, None)
    assert (budget.tokens, budget.tokens_per_step, cap, source) == (50_000, 500, 2.0, "sample.max_epochs")
    assert "large.optim.steps 100 x large.optim.batch_size 5 x large.model.context 100" in budget.source
    budget, cap, source = planning.budget_and_cap(tmp_path / "absent.yaml", 7, 4.0)  # nothing left to read
    assert (budget.tokens, budget.tokens_per_step, cap, source) == (7, None, 4.0, "--max-epochs")
    with pytest.raises(UserError, match="absent.yaml not found"):
        planning.budget_and_cap(tmp_path / "absent.yaml", 7, None)


@pytest.mark.parametrize("text, value", [("25e9", 25_000_000_000), ("25_000", 25_000), ("409600", 409_600)])
def test_token_count(text, value):
    assert token_count(text) == value


# ------------------------------------------------------------------------ the CLI
@pytest.fixture
def run_dir(tmp_path):
    """The files `regmix export` reads, as the pipeline lays them out."""
    (tmp_path / "results" / "compare").mkdir(parents=True)
    for name, mixture in (("regmix", MIXTURE), ("uniform", {"a": 0.5, "b": 0.5, "c": 0.0})):
        (tmp_path / "results" / "compare" / f"{name}.json").write_text(
            json.dumps({"name": name, "seeds": [0], "mixture": mixture})
        )
    (tmp_path / "results" / "domains.json").write_text(json.dumps(DOMAINS))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    return tmp_path


def cli_args(folder, *extra):
    return [
        "export",
        "--compare",
        str(folder / "results" / "compare"),
        "--domains",
        str(folder / "results" / "domains.json"),
        "--params",
        str(folder / "params.yaml"),
        *extra,
    ]


def test_cli_megatron_to_stdout(run_dir, capsys):
    main(cli_args(run_dir, "--to", "megatron", "--prefix-template", "/data/{domain}/text_document"))
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == MEGATRON
    assert "# token budget: 50,000 tokens (large.optim.steps 100" in out
    assert (
        err == "warning: mixture 'regmix': domain 'a' would be repeated 3.00 epochs, more than 2 (sample.max_epochs)\n"
    )


def test_cli_other_mixture_map_file_and_output(run_dir, capsys):
    prefixes = run_dir / "prefixes.json"
    prefixes.write_text(json.dumps({"a": "/corpus/a", "b": "/corpus/b"}))
    out_file = run_dir / "out" / "mix.yaml"
    main(
        cli_args(
            run_dir,
            "--to",
            "olmo-core",
            "--mixture",
            "uniform",
            "--prefixes",
            str(prefixes),
            "--tokens",
            "1e5",
            "--max-epochs",
            "10",
            "-o",
            str(out_file),
        )
    )
    out, err = capsys.readouterr()
    assert out == "" and "-> " in err and "warning" not in err
    config = yaml.safe_load(out_file.read_text())
    assert config["requested_tokens"] == 100_000
    assert [(s["paths"], s["target_ratio"], s["max_repetition_ratio"]) for s in config["source_list"]["sources"]] == [
        (["/corpus/a"], 0.5, 5.0),
        (["/corpus/b"], 0.5, 2.5),
    ]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--mixture", "best"], "unknown mixture 'best': .* has regmix, uniform"),
        (["--domains", "nowhere.json"], "nowhere.json not found"),
        (["--prefixes", "MAP"], "no prefix for domain\\(s\\) b"),
        (["--to", "litdata", "--split", "train"], "--split is for --to megatron"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_1(run_dir, capsys, extra, message):
    (run_dir / "map.yaml").write_text("a: /x\n")
    extra = [str(run_dir / "map.yaml") if e == "MAP" else e for e in extra]
    to = [] if "--to" in extra else ["--to", "megatron"]
    with pytest.raises(SystemExit) as exit_:
        main(cli_args(run_dir, *to, *extra))
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert re.search(message, err), err


def test_cli_in_a_subprocess(run_dir):
    done = subprocess.run(
        [sys.executable, "-m", "regmix.cli", *cli_args(run_dir, "--to", "hf-datasets")],
        capture_output=True,
        text=True,
        cwd=run_dir,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["probabilities"] == pytest.approx([15 / 17, 2 / 17])
    assert done.stderr.startswith("warning: mixture 'regmix': domain 'a'")
    failed = subprocess.run(
        [sys.executable, "-m", "regmix.cli", "export", "--to", "megatron"],
        capture_output=True,
        text=True,
        cwd=run_dir / "results",
    )  # no compare/ here
    assert failed.returncode == 1
    assert failed.stderr == "error: results/compare not found: run the stage that writes it first\n"


def test_export_of_the_committed_results(capsys):
    compare = REPO / "results" / "compare"
    if not compare.is_dir():
        pytest.skip("results/compare is not in this checkout yet (the search stage writes it)")
    main(
        [
            "export",
            "--to",
            "megatron",
            "--compare",
            str(compare),
            "--domains",
            str(REPO / "results" / "domains.json"),
            "--params",
            str(REPO / "params.yaml"),
        ]
    )
    line = capsys.readouterr().out.splitlines()[-1].split()
    assert line[0] == "--data-path"
    weights = [float(w) for w in line[1::2]]
    assert sum(weights) == pytest.approx(1.0) and min(weights) > 0
    chosen = json.loads((compare / "regmix.json").read_text())["mixture"]
    assert line[2::2] == [d for d, w in chosen.items() if w > 0]


def test_a_missing_prefixes_file_is_explained_with_an_example_that_reads_back(tmp_path):
    with pytest.raises(UserError) as missing:
        planning.read_prefix_map(tmp_path / "my_dirs.yaml", ["a", "b"])
    message = str(missing.value)
    assert message.startswith(f"--prefixes {tmp_path / 'my_dirs.yaml'}: no such file. It is yours to write")
    example = "\n".join(line for line in message.splitlines() if line.startswith("  "))
    (tmp_path / "my_dirs.yaml").write_text(example.replace("  ", "", 1).replace("\n  ", "\n"))
    assert planning.read_prefix_map(tmp_path / "my_dirs.yaml") == {"a": "/data/a", "b": "/data/b"}
