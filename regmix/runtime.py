"""Where work runs: worker processes and threads, from the environment, never from params.

These settings change how fast a stage runs, not what it computes, so they live outside the
DVC-tracked params: a user on a bigger machine keeps the cache valid.

    REGMIX_WORKERS=N      worker processes: tokenisers (prepare), proxies (local backend)
    REGMIX_THREADS=N      threads of one process: search's chunks, the large model's torch ops
    REGMIX_PROXY_THREADS  torch threads in each proxy worker (default 1: on CPU, one-thread
                          processes beat fewer many-thread ones)
    REGMIX_CACHE          this machine's cache, outside every DVC output: demo downloads,
                          compiled regressors, the store of finished work (regmix.train.store)
                          (default ~/.cache/regmix)
    REGMIX_STORE          that store elsewhere, e.g. on a file system every node sees
                          (default $REGMIX_CACHE/store)
"""

from __future__ import annotations

import os
from pathlib import Path

from regmix.errors import UserError


def positive_env(name: str) -> int | None:
    """The positive integer in environment variable `name`, or None when it is unset."""
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit() or int(value) < 1:
        raise UserError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def cache_root() -> Path:
    """REGMIX_CACHE, else ~/.cache/regmix."""
    return Path(os.environ.get("REGMIX_CACHE") or Path.home() / ".cache" / "regmix")


def cpu_count() -> int:
    """Cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def workers() -> int:
    """REGMIX_WORKERS, else one per core."""
    return positive_env("REGMIX_WORKERS") or cpu_count()


def threads() -> int:
    """REGMIX_THREADS, else every core."""
    return positive_env("REGMIX_THREADS") or cpu_count()


def proxy_threads() -> int:
    """REGMIX_PROXY_THREADS, else 1."""
    return positive_env("REGMIX_PROXY_THREADS") or 1
