"""Checkpoints of the large run: the fingerprint of what decides the trained weights, and an
atomic save / a load that resumes only from a checkpoint with the same fingerprint. Each saved
checkpoint is also kept in the machine store under its fingerprint (regmix.train.store), where a run
whose folder DVC reset finds it."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping

import torch

from regmix.config import LargeConfig
from regmix.files import atomic_path
from regmix.train import store as machine_store
from regmix.train.training import config_hash

STORE_KIND = "checkpoints"  # in the machine store, by fingerprint


def fingerprint(
    cfg: LargeConfig, mixture: Mapping[str, float], seed: int, world_size: int, data: Mapping[str, Any]
) -> str:
    """Hash of everything that decides the trained weights; a checkpoint resumes only on a match.

    The world size is in it because each rank draws its own batches (seeded by rank).
    """
    return config_hash(
        model=cfg.model, optim=cfg.optim, seed=seed, world_size=world_size, mixture=dict(mixture), data=data
    )


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int, fp: str) -> None:
    """Atomic: written beside the final name and renamed, so a kill keeps the previous one."""
    state = {"step": step, "fingerprint": fp, "model": model.state_dict(), "optimizer": optimizer.state_dict()}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    machine_store.keep(path, STORE_KIND, f"{fp}.pt")


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, fp: str) -> int:
    """Restore a matching checkpoint (from `path`, else the machine store) and return its step; 0
    when there is none. Another run's checkpoint at `path` (other params, mixture or data: an
    experiment that trained another mixture in this folder) gives way to this run's from the store,
    where that other one is kept under its own fingerprint."""
    state = torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None
    if state is not None and state.get("fingerprint") != fp:
        path.unlink()
        if not machine_store.restore(path, STORE_KIND, f"{fp}.pt"):
            warnings.warn(f"{path} was made with other params, mixture or data: starting afresh", stacklevel=2)
            return 0
        state = None
    if state is None:
        if not machine_store.restore(path, STORE_KIND, f"{fp}.pt"):
            return 0
        state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"])
