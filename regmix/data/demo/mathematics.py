"""DeepMind's Mathematics generator (mathematics-dataset 1.0.1): the source patches it needs, the
patched copy unpacked into the cache, and the seeded generation in a process of its own."""

from __future__ import annotations

import hashlib
import os
import random
import re
import sys
import zipfile
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Callable

DM_MATH_DOMAIN = "dm_mathematics"
DM_MATH_CHARS = 300_000  # the generator is slow; the Pile's share of it is small anyway

# The fixes mathematics_dataset 1.0.1 needs on sympy >= 1.12 and numpy 2, applied as the
# wheel is unpacked into the cache (site-packages stays untouched).
DM_MATH_PATCHES = (
    (
        r"from sympy\.solvers\.diophantine import base_solution_linear",
        "from sympy.solvers.diophantine.diophantine import base_solution_linear",
    ),
    (r"\bnp\.object\b", "object"),
    (r"(\w+)\.itemset\(([^,]+), (.+)\)$", r"\1[\2] = \3"),
    # Entities were collected in a set (memory-address order) before a seeded shuffle;
    # an insertion-ordered dict makes the generated problems reproducible.
    (r"entities = set\(context\.child_entities\)", "entities = dict.fromkeys(context.child_entities)"),
    (r"entities\.add\(maybe_entity\)", "entities[maybe_entity] = None"),
)
# Identifies the patched generator: its unpacked copy and cached output change with the fixes.
DM_MATH_KEY = hashlib.sha1(repr(DM_MATH_PATCHES).encode()).hexdigest()[:8]


def unpack_dm_math(archive: Path, target: Path) -> Path:
    if not (target / "mathematics_dataset").exists():
        tmp = target.with_name(target.name + ".partial")
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                if not name.startswith("mathematics_dataset/") or name.endswith("_test.py"):
                    continue
                source = z.read(name).decode("utf-8")
                for pattern, repl in DM_MATH_PATCHES:
                    source = re.sub(pattern, repl, source, flags=re.M)
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                (tmp / name).write_text(source, encoding="utf-8")
        tmp.rename(target)
    return target


def generate_dm_math(package_dir: str, chars: int, seed: int, per_doc: int = 8) -> list[str]:
    """DeepMind Mathematics Q&A (easy/medium/hard train modules), `per_doc` per document."""
    sys.path.insert(0, package_dir)
    import numpy as np
    import sympy.core.random
    from mathematics_dataset import generate_settings
    from mathematics_dataset.modules import modules

    random.seed(seed)
    np.random.seed(seed)
    sympy.core.random.seed(seed)  # sympy keeps its own generators

    def level(i: int) -> Callable:
        return lambda r: (r[0] + i / 3 * (r[1] - r[0]), r[0] + (i + 1) / 3 * (r[1] - r[0]))

    def flat(tree: dict) -> list[Callable]:
        return [f for _, v in sorted(tree.items()) for f in (flat(v) if isinstance(v, dict) else [v])]

    generators = [f for i in range(3) for f in flat(modules.train(level(i)))]
    docs, total = [], 0
    while total < chars:
        for make in generators:
            lines = []
            while len(lines) < 2 * per_doc:
                problem = make()
                question, answer = str(problem.question), str(problem.answer)
                if (
                    len(question) <= generate_settings.MAX_QUESTION_LENGTH
                    and len(answer) <= generate_settings.MAX_ANSWER_LENGTH
                ):
                    lines += [question, answer]
            docs.append("\n".join(lines))
            total += len(docs[-1])
            if total >= chars:
                break
    return docs


def generate_in_background(package_dir: Path, chars: int, seed: int) -> tuple[ProcessPoolExecutor, Future]:
    """`generate_dm_math` started in a freshly spawned process (shut the pool down when done)."""
    import multiprocessing

    # sympy iterates sets of symbols in string-hash order: a fixed hash seed in the
    # (freshly spawned) generator process makes the problems reproducible.
    hash_seed = os.environ.get("PYTHONHASHSEED")
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        future = pool.submit(generate_dm_math, str(package_dir), chars, seed)
    finally:
        if hash_seed is None:
            del os.environ["PYTHONHASHSEED"]
        else:
            os.environ["PYTHONHASHSEED"] = hash_seed
    return pool, future
