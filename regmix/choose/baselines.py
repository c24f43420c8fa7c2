"""Cheap baselines a reviewer asks for: mixtures made without a single proxy.

  target_only  for a target over training domains: all the weight the epoch caps allow on the
               target's domains (in proportion to the target's weights), the rest by the prior.
  nearest      for any target: the mixture of the training domains' text that best explains the
               target's text. Each text becomes counts of hashed token unigrams and bigrams (the
               hashed n-gram features DSIR resamples by); each training domain gets a smoothed
               distribution over those buckets, and the target's valid text (what selection reads:
               a set's valid split, a task's contexts and gold answers) is fitted as a mixture of them
               by expectation-maximisation, the weights of highest likelihood. A held-out set of
               English prose draws on the prose domains, a code task on code.

Both are snapped to the swarm's grid within the caps, so the large run can train them as they are.
If `regmix` cannot beat these, the proxies were not worth their compute: the report says
`regmix` minus the best of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from tokenizers import Tokenizer

from regmix.choose.sampling import MixtureGenerator
from regmix.data.shards import TOKENIZER_FILE, open_tokens, read_meta, task_path
from regmix.data.tasks import encode_examples, read_task
from regmix.errors import UserError
from regmix.mixtures import NEAREST, TARGET_ONLY
from regmix.target import TASK, Target

BUCKETS = 1 << 18  # hashed feature buckets (DSIR uses 10k-1M); collisions only blur the distributions
MAX_TOKENS = 2_000_000  # tokens read per training domain (evenly spaced blocks of its train split)
SMOOTHING = 0.5  # add-k counts per bucket: a bucket a domain never shows is unlikely, not impossible
EM_STEPS = 500


def hashed_counts(tokens: np.ndarray, buckets: int = BUCKETS) -> np.ndarray:
    """Counts of the hashed unigrams and bigrams of a token stream, over `buckets` buckets."""
    t = np.asarray(tokens, dtype=np.uint64)
    mask = np.uint64(buckets - 1)
    uni = (t * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(20) & mask
    bi = ((t[:-1] * np.uint64(0xC2B2AE3D27D4EB4F)) ^ (t[1:] * np.uint64(0x165667B19E3779F9))) >> np.uint64(20) & mask
    return (
        np.bincount(uni.astype(np.int64), minlength=buckets) + np.bincount(bi.astype(np.int64), minlength=buckets)
    ).astype(np.float64)


def fit_mixture(components: np.ndarray, counts: np.ndarray, steps: int = EM_STEPS, tol: float = 1e-10) -> np.ndarray:
    """The weights w (on the simplex) maximising sum_b counts_b log(sum_d w_d components_db):
    expectation-maximisation over fixed component distributions (rows of `components`)."""
    seen = counts > 0
    P, c = components[:, seen], counts[seen] / counts[seen].sum()
    w = np.full(len(P), 1.0 / len(P))
    for _ in range(steps):
        mix = w @ P
        new = w * (P @ (c / mix))
        new /= new.sum()
        if np.abs(new - w).sum() < tol:
            return new
        w = new
    return w


def _read(tokens_dir: str | Path, split: str, name: str, limit: int) -> np.ndarray:
    """Up to `limit` tokens of a set's split, in 64 evenly spaced blocks (the whole split when smaller)."""
    stream = open_tokens(tokens_dir, split, name)
    if len(stream) <= limit:
        return np.asarray(stream)
    block = limit // 64
    starts = np.linspace(0, len(stream) - block, 64).astype(np.int64)
    return np.concatenate([np.asarray(stream[s : s + block]) for s in starts])


def target_text(tokens_dir: str | Path, term: str, limit: int = MAX_TOKENS) -> np.ndarray:
    """The tokens of a target term's valid split: a set's stream, or a task's contexts with their gold answers."""
    if not term.startswith(TASK):
        return _read(tokens_dir, "valid", term, limit)
    name = term[len(TASK) :]
    tokenizer = Tokenizer.from_file(str(Path(tokens_dir) / TOKENIZER_FILE))
    examples = encode_examples(read_task(task_path(tokens_dir, name, "valid"), name), tokenizer, 1 << 30)
    return np.array([t for e in examples for t in (*e.context, *e.choices[e.gold])], dtype=np.int64)


def nearest(tokens_dir: str | Path, target: Target, gen: MixtureGenerator, limit: int = MAX_TOKENS) -> dict[str, float]:
    """The `nearest` baseline for `target` (see the module docstring), on `gen`'s grid within its caps."""
    meta = read_meta(tokens_dir)
    if list(meta.domains) != list(gen.domains):
        raise UserError("the token data's domains differ from the search's: re-run prepare (dvc repro)")
    components = np.array([hashed_counts(_read(tokens_dir, "train", d, limit)) for d in gen.domains]) + SMOOTHING
    components /= components.sum(axis=1, keepdims=True)
    counts = np.zeros(BUCKETS)
    for term, weight in target.terms or [(d, 1.0) for d in gen.domains]:
        c = hashed_counts(target_text(tokens_dir, term, limit))
        counts += weight * c / max(c.sum(), 1.0)  # each term weighs what the target gives it, whatever its length
    return dict(zip(gen.domains, map(float, gen.project(fit_mixture(components, counts)))))


def water_fill(want: np.ndarray, total: float, room: np.ndarray) -> np.ndarray:
    """`total` shared in proportion to `want`, no entry above its `room`; what a full entry cannot take goes
    to the others, in the same proportions."""
    out, left = np.zeros(len(want)), float(total)
    active = (want > 0) & (room > 0)
    while left > 1e-12 and active.any():
        share = left * want * active / (want * active).sum()
        take = np.minimum(share, room - out)
        out += take
        left -= take.sum()
        active &= room - out > 1e-12
    return out


def target_only(target: Target, gen: MixtureGenerator) -> Optional[dict[str, float]]:
    """The `target_only` baseline (see the module docstring), or None when no term is a training domain."""
    weights = dict(target.terms or [(d, 1.0) for d in gen.domains])
    want = np.array([weights.get(d, 0.0) for d in gen.domains])
    if not want.any():
        return None
    room = gen.caps / gen.units
    on_target = water_fill(want, 1.0, room)
    rest = water_fill(gen.prior * (want == 0), 1.0 - on_target.sum(), room - on_target)
    if on_target.sum() + rest.sum() < 1.0 - 1e-9:  # every other domain full: the target's domains take the rest
        on_target += water_fill(want, 1.0 - on_target.sum() - rest.sum(), room - on_target)
    return dict(zip(gen.domains, map(float, gen.project(on_target + rest))))


def cheap_baselines(
    names: Sequence[str], tokens_dir: str | Path, target: Target, gen: MixtureGenerator
) -> dict[str, dict[str, float]]:
    """The cheap baselines among `names` (large.mixtures), computed."""
    out: dict[str, dict[str, float]] = {}
    if TARGET_ONLY in names:
        only = target_only(target, gen)
        if only is None:
            raise UserError(
                f"large.mixtures: `{TARGET_ONLY}` needs a target over training domains; `{target.name}` "
                f"has none (use `{NEAREST}`, which reads the target's text)"
            )
        out[TARGET_ONLY] = only
    if NEAREST in names:
        out[NEAREST] = nearest(tokens_dir, target, gen)
    return out
