"""LightGBM trees as native code (lleaves), built on the machine that predicts with them.

Machine code never travels with data/: it is cached in $REGMIX_CACHE/lleaves/ (default
~/.cache/regmix/lleaves), one `<key>.o` per key = sha256 of the trees' text, the host CPU's
name and features, and the lleaves and llvmlite versions. Before a cached object is loaded
its sha256 must equal the one `<key>.sha256` recorded when it was built, and once loaded its
predictions must equal LightGBM's on fixed probe mixtures; anything else is rebuilt.
"""

from __future__ import annotations

import functools
import hashlib
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np

from regmix import runtime
from regmix.files import atomic_path, write_text

PROBES = 256  # fixed mixtures a loaded object must predict exactly as LightGBM does


@functools.cache
def lleaves_module() -> Optional[Any]:
    """The lleaves module, or None (noted once) where it or its LLVM cannot be imported."""
    try:
        import lleaves
    except (ImportError, OSError) as e:
        print(
            f"note: lleaves unavailable ({e}); LightGBM predicts itself, 5-15x slower "
            "(pip install 'lleaves>=1.2' 'llvmlite>=0.43,<0.44')"
        )
        return None
    return lleaves


def host_cpu() -> str:
    """The CPU machine code is built for: its name and feature flags."""
    import llvmlite.binding as llvm

    return f"{llvm.get_host_cpu_name()} {llvm.get_host_cpu_features().flatten()}"


def cache_folder() -> Path:
    """$REGMIX_CACHE/lleaves: this machine's cache, outside every DVC output."""
    return runtime.cache_root() / "lleaves"


def cache_key(trees: str) -> str:
    from importlib.metadata import version

    host = f"{host_cpu()}\nlleaves {version('lleaves')}\nllvmlite {version('llvmlite')}"
    return hashlib.sha256(f"{trees}\n{host}".encode()).hexdigest()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _agrees(model: Any, booster: Any) -> bool:
    probe = np.random.default_rng(0).dirichlet(np.ones(booster.num_feature()), PROBES)
    return np.allclose(model.predict(probe, n_jobs=1), booster.predict(probe), rtol=0, atol=1e-9)


def compiled_trees(booster: Any) -> Optional[Any]:
    """A lleaves model predicting as `booster` does, from the cache or built now; None without lleaves."""
    lleaves = lleaves_module()
    if lleaves is None:
        return None
    trees = booster.model_to_string()
    key = cache_key(trees)
    obj, digest = cache_folder() / f"{key}.o", cache_folder() / f"{key}.sha256"
    with tempfile.TemporaryDirectory() as tmp:  # lleaves reads the trees from a file
        text = Path(tmp) / "model.txt"
        text.write_text(trees, encoding="utf-8")
        if obj.exists() and digest.exists() and digest.read_text().strip() == _sha256(obj):
            model = lleaves.Model(model_file=str(text))
            model.compile(cache=str(obj))  # loads the machine code; compiles nothing
            if _agrees(model, booster):
                return model
        if obj.exists():
            print(f"note: {obj} is not the machine code of these trees; rebuilding it")
        print(
            f"compiling {booster.num_trees()} trees with lleaves -> {obj} "
            "(once per model and machine; 15-35 s per 1000 trees on 2 cores)"
        )
        model = lleaves.Model(model_file=str(text))
        with atomic_path(obj) as tmp_obj:
            tmp_obj.unlink()  # lleaves writes its cache file only if none exists yet
            model.compile(cache=str(tmp_obj))
            sha = _sha256(tmp_obj)
        write_text(digest, sha + "\n")
        return model
