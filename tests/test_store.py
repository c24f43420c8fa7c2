"""The machine store: finished work kept outside the stages' folders and brought back."""

from __future__ import annotations

import os

import pytest
import torch

from regmix.train import store
from regmix.train.checkpoints import load_checkpoint, save_checkpoint


def test_keep_and_restore(tmp_path):
    folder = tmp_path / "stage"
    folder.mkdir()
    (folder / "abc.json").write_text('{"loss": 1.0}')
    store.keep(folder / "abc.json", "proxies")
    kept = store.root() / "proxies" / "abc.json"
    assert kept.read_text() == '{"loss": 1.0}'
    assert os.path.samefile(kept, folder / "abc.json")  # one file system here: a hard link, no copy
    (folder / "abc.json").unlink()  # what `dvc exp run` does to a stage's unrecorded output
    assert store.restore(folder / "abc.json", "proxies") and (folder / "abc.json").read_text() == '{"loss": 1.0}'
    assert not store.restore(folder / "other.json", "proxies")
    assert store.size()[0] == 1


def test_a_rewritten_file_is_kept_again_and_the_store_keeps_the_old_bytes_until_then(tmp_path):
    path = tmp_path / "k.json"
    path.write_text("old")
    store.keep(path, "scores")
    path.unlink()
    path.write_text("new")  # a new file, as every atomic write makes
    assert (store.root() / "scores" / "k.json").read_text() == "old"
    store.keep(path, "scores")
    assert (store.root() / "scores" / "k.json").read_text() == "new"


def test_a_checkpoint_lost_from_the_run_folder_resumes_from_the_store(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "run" / "checkpoint.pt"
    save_checkpoint(path, model, optimizer, step=7, fp="fp1")
    path.unlink()
    fresh = torch.nn.Linear(3, 2)
    assert load_checkpoint(path, fresh, torch.optim.SGD(fresh.parameters(), lr=0.1), "fp1") == 7
    assert torch.equal(fresh.weight, model.weight)
    path.unlink()
    assert load_checkpoint(path, fresh, torch.optim.SGD(fresh.parameters(), lr=0.1), "fp2") == 0  # other settings


def test_another_runs_checkpoint_in_the_folder_gives_way_to_this_runs_from_the_store(tmp_path):
    """An experiment trained another mixture in the run's folder: going back to this run's settings
    resumes from the store, not from scratch, and the other checkpoint is still in the store."""
    path = tmp_path / "run" / "checkpoint.pt"
    mine, theirs = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    save_checkpoint(path, mine, torch.optim.SGD(mine.parameters(), lr=0.1), step=7, fp="mine")
    save_checkpoint(path, theirs, torch.optim.SGD(theirs.parameters(), lr=0.1), step=3, fp="theirs")
    fresh = torch.nn.Linear(3, 2)
    assert load_checkpoint(path, fresh, torch.optim.SGD(fresh.parameters(), lr=0.1), "mine") == 7
    assert torch.equal(fresh.weight, mine.weight)
    assert load_checkpoint(path, fresh, torch.optim.SGD(fresh.parameters(), lr=0.1), "theirs") == 3
    assert torch.equal(fresh.weight, theirs.weight)
    with pytest.warns(UserWarning, match="starting afresh"):  # neither here nor in the store
        assert load_checkpoint(path, fresh, torch.optim.SGD(fresh.parameters(), lr=0.1), "new") == 0
