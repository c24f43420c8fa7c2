"""Shared test set-up: tests never reach a model or dataset hub, nor write to the user's cache."""

import os
import signal
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# A shell that starts the suite in the background (`make test &`, `nohup ... &`) ignores SIGINT
# there, and every process the tests start inherits that: the Ctrl-C tests (a stage's, a cancelled
# local Slurm task's) need it delivered. A Python handler here is reset to the default on exec.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]  # the repository root, for every test module


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """REGMIX_CACHE (rates, compiled regressors, demo downloads) in a temporary folder, never
    ~/.cache/regmix; tests that need their own cache set it themselves."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REGMIX_CACHE", str(tmp_path_factory.mktemp("regmix_cache")))
        yield


@pytest.fixture(autouse=True)
def private_store(tmp_path, monkeypatch):
    """Each test its own machine store (REGMIX_STORE): one test's finished proxies never stand in
    for another's training."""
    monkeypatch.setenv("REGMIX_STORE", str(tmp_path / "machine_store"))


@pytest.fixture
def one_torch_thread():
    """Tiny models run fastest (and steadiest on a busy machine) on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
