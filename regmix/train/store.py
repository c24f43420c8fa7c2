"""The machine store: finished work kept outside every DVC output, so that no rerun loses it.

A stage's own folders (data/proxies, data/verify, data/large/<item>, data/scores) are DVC outputs,
and DVC may replace or remove them before the stage runs again: `dvc exp run` resets the workspace
to its baseline (also after an interrupted or failed run), a queued experiment runs in a copy of
its own, a failed stage leaves its outputs to be rebuilt. So every file a stage writes there under
a content key (a finished proxy, its weights, a run's scores, a large run's last checkpoint) is
also kept in the store, `$REGMIX_STORE/<kind>/<key>` (default `$REGMIX_CACHE/store`; hard-linked
where the file system allows, else copied), and a stage that misses a key in its folder takes it
from the store before any work.

Keys hash everything that decides the file (mixture, settings, seed, the data's digest), so one
store serves every project and experiment on the machine. Nothing in DVC cleans it (`dvc gc` does
not see it): `python -m regmix.train.store` prints its size, and deleting the folder only costs reruns.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from regmix.files import atomic_path
from regmix.runtime import cache_root


def root() -> Path:
    """$REGMIX_STORE, else $REGMIX_CACHE/store."""
    return Path(os.environ.get("REGMIX_STORE") or cache_root() / "store")


def _place(source: Path, destination: Path) -> None:
    """`destination` becomes `source`'s bytes, atomically: a hard link, else a copy."""
    with atomic_path(destination) as tmp:
        try:
            tmp.unlink()
            os.link(source, tmp)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(source, tmp)


def keep(path: str | os.PathLike, kind: str, key: str | None = None) -> None:
    """Keep the file just written at `path` in the store, as `<kind>/<key>` (default: its name)."""
    path = Path(path)
    stored = root() / kind / (key or path.name)
    if not (stored.exists() and os.path.samefile(stored, path)):
        _place(path, stored)


def restore(path: str | os.PathLike, kind: str, key: str | None = None) -> bool:
    """Bring `<kind>/<key>` (default: `path`'s name) back to `path` when `path` is missing and the
    store has it; True when `path` exists afterwards."""
    path = Path(path)
    stored = root() / kind / (key or path.name)
    if not path.exists() and stored.exists():
        _place(stored, path)
    return path.exists()


def size() -> tuple[int, int]:
    """(files, bytes) in the store."""
    files = [p for p in root().rglob("*") if p.is_file()] if root().is_dir() else []
    return len(files), sum(p.stat().st_size for p in files)


def main() -> None:
    files, total = size()
    print(
        f"{root()}: {files} files, {total / 2**20:.1f} MiB (finished proxies, checkpoints and scores; "
        "delete it to reclaim the space, at the cost of training them again)"
    )


if __name__ == "__main__":
    main()
