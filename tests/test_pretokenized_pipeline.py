"""The tiny corpus, converted to Megatron and numpy token files with the tokenizer the text
source trains, goes through the pipeline as a user runs it (`dvc exp run -S data=megatron ...`)
and gives the same swarm and the same proxies as the text source: same tokens, same results.
It stops after `proxies`: no later stage reads the `data` params or a domain's `source`, only
files compared here, so fit, search, train and evaluate follow (and add minutes)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_pipeline import digest, dvc, new_project
from test_pretokenized import FORMATS, TINY, convert

# Compared byte for byte; results/domains.json differs only in each domain's `source`.
SAME = ["results/mixtures.csv", "results/proxies.csv", "results/proxy_replicates.csv"]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    """The tiny preset (the jsonl source, training its BPE) through `proxies`."""
    root = new_project(tmp_path_factory.mktemp("text"))
    dvc("repro", "proxies", cwd=root)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["megatron-uint16-eod", "numpy-npy"])
def test_same_proxies_as_text(text_run, tmp_path, fmt):
    source = FORMATS[fmt][0]
    corpus = convert(TINY, tmp_path / "corpus", fmt, text_run / "data/tokens")
    tokenizer = shutil.copy(text_run / "data/tokens/tokenizer.json", tmp_path / "tokenizer.json")
    project = new_project(tmp_path / "project")
    dvc(
        "exp",
        "run",
        "-S",
        "experiment=tiny",
        "-S",
        f"data={source}",
        "-S",
        f"data.path={corpus}",
        "-S",
        f"data.tokenizer.path={tokenizer}",
        "proxies",
        cwd=project,
    )
    domains = json.loads((project / "results/domains.json").read_text())
    trained_on = {row["source"] for row in domains.values() if row["role"] == "train"}
    assert trained_on == {f"{source}:{corpus}"}  # not the text run's
    assert digest(project / "data/tokens") == digest(text_run / "data/tokens")
    trained = json.loads((project / "results/proxy_run.json").read_text())
    assert trained["trained"] == trained["proxies"] == 8  # trained here from these shards, none reused
    for name in SAME:
        assert (project / name).read_text() == (text_run / name).read_text(), name
    expected = json.loads((text_run / "results/domains.json").read_text())
    assert {d: {**row, "source": None} for d, row in domains.items()} == {
        d: {**row, "source": None} for d, row in expected.items()
    }
