"""The proxy swarm's mixture generator (the `sample` stage), also what `search` simulates from.

RegMix's recipe: Dirichlet draws around a tempered prior at several strengths, usage caps,
a minimum weight grid and de-duplication; `uniform` and `space_filling` designs to compare.

A cap says how often the large run may repeat a domain: weight <= max_epochs x the domain's
train tokens / the large run's tokens. RegMix's "15x the token share" meant about 1.5 epochs
only because its large run used 25B of ~250B tokens; in epochs the cap keeps its meaning at
any corpus size and any large-run budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from regmix.config import LargeConfig, SampleConfig, train_tokens
from regmix.errors import UserError
from regmix.mixtures import PILE_TOKEN_SHARE, validate_mixture
from regmix.progress import progress
from regmix.tables import token_prior

METHODS = ("regmix", "uniform", "space_filling")
DRAW_BATCH = 100_000  # Dirichlet draws per vectorised batch (~14 MB of float64 at 17 domains)


@dataclass(frozen=True)
class MixtureGenerator:
    """RegMix's mixture generator, prepared once for a domain set.

    Weights live on the grid of `1 / units` (units = 1 / minimum), held as integer counts so
    every row sums to 1 exactly; `caps` are the most units a domain may take.
    """

    domains: list[str]
    prior: np.ndarray  # (d,) the centre of the swarm: token share or `sample.prior`
    alpha: np.ndarray  # (d,) Dirichlet base: tempered prior, or ones for `uniform`
    strengths: np.ndarray  # concentration multipliers; each draw picks one uniformly
    caps: np.ndarray  # (d,) max units per domain: max_epochs x train tokens / large-run tokens, on the grid
    units: int  # grid steps in the unit interval
    tokens: np.ndarray | None  # (d,) each domain's train tokens (None: not known, a bare token share)
    large_tokens: int | None  # the large run's tokens, which the caps are epochs of
    max_epochs: float | None  # what the caps were made of (None: no caps)

    def draw(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        """`size` Dirichlet draws snapped to the grid; returns (accepted units, rejections per domain).

        A draw is rejected when some domain exceeds its cap after snapping; the rejection is
        charged to the domain that overshoots its cap the most, to tell which cap binds.
        """
        K = to_grid(self._dirichlet(rng, size), self.units)
        over = K - self.caps
        bad = (over > 0).any(axis=1)
        rejected = np.bincount(over[bad].argmax(axis=1), minlength=len(self.domains))
        return K[~bad], rejected

    def weights(self, K: np.ndarray) -> np.ndarray:
        return K / self.units

    def epochs(self, w: np.ndarray) -> np.ndarray | None:
        """Epochs of each domain's train tokens that mixture `w` takes in the large run
        (None without the domains' train tokens or the large run's)."""
        if self.tokens is None or not self.large_tokens:
            return None
        return np.asarray(w) * self.large_tokens / np.maximum(self.tokens, 1)

    def usage(self, w: np.ndarray) -> dict[str, dict[str, float | None]]:
        """Per domain: its weight in `w`, its cap and the epochs of the large run (mixture.yaml;
        epochs null when the generator does not know the tokens)."""
        epochs = self.epochs(w)
        return {
            d: {
                "weight": round(float(w[i]), 6),
                "cap": round(float(self.caps[i]) / self.units, 6),
                "epochs": None if epochs is None else round(float(epochs[i]), 4),
            }
            for i, d in enumerate(self.domains)
        }

    def project(self, w: np.ndarray) -> np.ndarray:
        """One mixture (e.g. an average of draws) snapped to the grid within the caps.

        Snapping can push a domain a step or two over its cap; those steps move to the
        domains with the most room left.
        """
        K = to_grid(np.asarray(w, dtype=float)[None, :], self.units)[0]
        excess = int(np.maximum(K - self.caps, 0).sum())
        K = np.minimum(K, self.caps)
        for _ in range(excess):
            K[int(np.argmax(self.caps - K))] += 1
        return self.weights(K)

    def _dirichlet(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """(size, d) rows of Dirichlet(alpha * strength), strength uniform over `strengths`.

        Gamma(a) = Gamma(a + 1) * exp(-E / a) with E ~ Exp(1), and each row is scaled by its
        largest exp(-E / a) before exponentiating: RegMix's concentrations (prior x 0.1, down
        to ~1e-3) make plain Gamma(a) draws underflow to 0 and whole rows 0/0. Rows are drawn
        grouped by strength (scalar-shape gamma is 3x faster), column-major, in float32
        (grid steps are >= 1e-5, far above its precision), then shuffled.
        """
        d = len(self.domains)
        counts = rng.multinomial(size, np.full(len(self.strengths), 1 / len(self.strengths)))
        gamma = np.empty((d, size), dtype=np.float32)
        shape = np.empty((d, size), dtype=np.float32)
        stop = 0
        for strength, count in zip(self.strengths, counts):
            start, stop = stop, stop + count
            for j, a in enumerate(self.alpha * strength):
                gamma[j, start:stop] = rng.standard_gamma(a + 1.0, count, dtype=np.float32)
                shape[j, start:stop] = a
        with np.errstate(divide="ignore"):
            decay = rng.standard_exponential((d, size), dtype=np.float32) / shape  # inf where alpha = 0
        decay -= decay.min(axis=0)
        np.minimum(decay, 80.0, out=decay)  # exp(-80) ~ 1e-35: below any grid step, above float32 denormals
        gamma *= np.exp(-decay)
        gamma /= gamma.sum(axis=0)
        return gamma.T[rng.permutation(size)]


def to_grid(W: np.ndarray, units: int) -> np.ndarray:
    """Snap rows of weights to integer counts of 1/units that sum to `units` exactly.

    Weights under one grid step become 0 (a domain with a handful of sequences teaches the
    regression nothing), the rest are renormalised and rounded; the rounding residue goes to
    each row's largest weight, where it matters least relatively.
    """
    W = np.where((W * units < 1.0) & (W < W.max(axis=1, keepdims=True)), 0.0, W)  # a row keeps its top
    W = W / W.sum(axis=1, keepdims=True)
    K = np.rint(W * units).astype(np.int32)
    residue = units - K.sum(axis=1)
    K[np.arange(len(K)), K.argmax(axis=1)] += residue
    return K


def make_generator(
    cfg: SampleConfig,
    token_share: Mapping[str, float],
    train_tokens: Mapping[str, float] | None = None,
    large_tokens: int | None = None,
) -> MixtureGenerator:
    """Check the `sample` section and prepare its generator over the domains of `token_share`
    (the prior unless `sample.prior` is set).

    Caps come from each domain's `train_tokens` and the large run's `large_tokens` (how often
    each domain would repeat in the large run), even when `sample.prior` moves the centre.
    """
    domains = list(token_share)
    if cfg.method not in METHODS:
        raise UserError(f"sample.method: unknown method {cfg.method!r}; choose one of {', '.join(METHODS)}")
    if not 0 < cfg.minimum <= 0.5 or abs(1 / cfg.minimum - round(1 / cfg.minimum)) > 1e-6 * (1 / cfg.minimum):
        raise UserError(f"sample.minimum: {cfg.minimum} must be 1/N for a whole N >= 2 (e.g. 2e-4 = 1/5000)")
    if cfg.temperature <= 0:
        raise UserError(f"sample.temperature: {cfg.temperature} must be > 0")
    if not 0 < cfg.min_strength <= cfg.max_strength or cfg.n_strengths < 1:
        raise UserError("sample.min_strength / max_strength / n_strengths: need 0 < min <= max and n >= 1")
    if cfg.max_epochs is not None and cfg.max_epochs <= 0:
        raise UserError(f"sample.max_epochs: {cfg.max_epochs} must be > 0 (or null: no caps)")
    if cfg.max_epochs is not None and (train_tokens is None or not (large_tokens or 0) > 0):
        raise UserError(
            "sample.max_epochs: caps are epochs of the large run; they need each domain's train "
            "tokens and the large run's tokens (or sample.max_epochs: null)"
        )
    units = round(1 / cfg.minimum)
    share = np.array(list(validate_mixture(token_share, domains, "token share").values()))
    tokens = np.array([float(train_tokens[d]) for d in domains]) if train_tokens is not None else None
    if cfg.prior is None:
        prior = share
    else:
        prior = np.array(list(validate_mixture(cfg.prior, domains, "sample.prior").values()))

    if cfg.max_epochs is None:
        caps = np.full(len(domains), units, dtype=np.int64)
    else:
        caps = np.floor(np.minimum(cfg.max_epochs * tokens / large_tokens, 1.0) * units + 1e-9).astype(np.int64)
        if caps.sum() < units:
            raise UserError(
                f"sample.max_epochs binds: the large run's {large_tokens:,} tokens need more than "
                f"{cfg.max_epochs:g} epochs of the corpus' {int(tokens.sum()):,} train tokens, so no mixture "
                "fits; raise sample.max_epochs, bring more data, or train the large run on fewer tokens"
            )
        if cfg.prior is not None and (capped := [d for d, p, c in zip(domains, prior, caps) if p * units > c]):
            raise UserError(
                f"sample.prior: weight above the cap of {cfg.max_epochs:g} epochs in the large run "
                f"for {', '.join(capped)}"
            )

    if cfg.method == "regmix":
        alpha = prior**cfg.temperature
        alpha = alpha / alpha.sum()
        strengths = np.logspace(np.log10(cfg.min_strength), np.log10(cfg.max_strength), cfg.n_strengths)
    else:  # uniform on the simplex: Dirichlet(1, ..., 1)
        alpha = np.ones(len(domains))
        strengths = np.ones(1)
    return MixtureGenerator(domains, prior, alpha, strengths, caps, units, tokens, large_tokens, cfg.max_epochs)


def swarm_generator(
    cfg: SampleConfig, large: LargeConfig, domains: Mapping[str, Mapping[str, Any]]
) -> MixtureGenerator:
    """The generator `sample` and `search` share: prepare's domains table gives the prior's
    share and each domain's train tokens, the large run's tokens are what the caps are epochs of."""
    return make_generator(
        cfg,
        token_prior(domains),
        {d: info["train_tokens"] for d, info in domains.items()},
        train_tokens(large.optim, large.model.context),
    )


PILE_CORPUS_TOKENS, PILE_LARGE_TOKENS = 250_000_000_000, 25_000_000_000  # RegMix's Pile and its large run


def pile_generator(cfg: SampleConfig) -> MixtureGenerator:
    """The generator over the Pile's domains as RegMix's paper drew its swarm: the Pile's token
    share, caps for a 25B-token large run on about 250B tokens (at 1.5 epochs: 15x the share)."""
    total = sum(PILE_TOKEN_SHARE.values())
    share = {d: w / total for d, w in PILE_TOKEN_SHARE.items()}
    return make_generator(cfg, share, {d: w * PILE_CORPUS_TOKENS for d, w in share.items()}, PILE_LARGE_TOKENS)


def sample_mixtures(gen: MixtureGenerator, cfg: SampleConfig, seed: int) -> np.ndarray:
    """The proxy swarm: `cfg.n_mixtures` grid mixtures, pairwise L1 >= `cfg.min_distance`.

    `regmix` and `uniform` keep distinct draws in the order drawn; `space_filling` draws a
    pool `POOL_FACTOR` times larger and picks greedily the mixture farthest from those
    already picked (maximin), which covers the capped simplex more evenly than chance.
    """
    n = cfg.n_mixtures
    if n < 1:
        raise UserError(f"sample.n_mixtures: {n} must be >= 1")
    rng = np.random.default_rng(seed)
    if cfg.method == "space_filling":
        pool = accepted_draws(gen, rng, min(max(POOL_FACTOR * n, 10_000), 200_000))
        return _maximin(gen.weights(pool), n, cfg.min_distance, rng)

    kept = np.empty((n, len(gen.domains)))
    count, drawn, accepted = 0, 0, 0
    budget = _budget(n)
    rejected = np.zeros(len(gen.domains), dtype=np.int64)
    with progress(total=n, desc="sample", unit="mixture", leave=False) as bar:
        while count < n and drawn < budget:
            K, rej = gen.draw(rng, DRAW_BATCH)
            drawn, accepted, rejected = drawn + DRAW_BATCH, accepted + len(K), rejected + rej
            first = np.sort(np.unique(K, axis=0, return_index=True)[1])  # exact repeats, in draw order
            for w in gen.weights(K[first]):
                if count and np.abs(kept[:count] - w).sum(axis=1).min() < cfg.min_distance:
                    continue
                kept[count] = w
                count += 1
                bar.update()
                if count == n:
                    break
    if count < n:
        if accepted < n:
            raise _caps_bind(gen, drawn, accepted, rejected, n)
        raise UserError(
            f"sample.min_distance binds: only {count} mixtures at L1 distance >= {cfg.min_distance} "
            f"among {accepted} accepted draws, {n} asked; lower sample.min_distance or sample.n_mixtures, "
            "or use a finer sample.minimum grid"
        )
    return kept


POOL_FACTOR = 20  # space_filling: candidates per mixture picked


def accepted_draws(gen: MixtureGenerator, rng: np.random.Generator, size: int) -> np.ndarray:
    """Exactly `size` draws that respect the caps (grid units), no de-duplication."""
    parts, have, drawn = [], 0, 0
    rejected = np.zeros(len(gen.domains), dtype=np.int64)
    while have < size:
        if drawn >= _budget(size):
            raise _caps_bind(gen, drawn, have, rejected, size)
        batch = min(DRAW_BATCH, max(1000, 2 * (size - have)))
        K, rej = gen.draw(rng, batch)
        parts.append(K)
        have, drawn, rejected = have + len(K), drawn + batch, rejected + rej
    return np.concatenate(parts)[:size]


def _budget(n: int) -> int:
    """Draws allowed before giving up; RegMix draws 100x the swarm and keeps a subset."""
    return max(100 * n, 10**6)


def _maximin(pool: np.ndarray, n: int, min_distance: float, rng: np.random.Generator) -> np.ndarray:
    """Greedy maximin design: start anywhere, then repeatedly add the farthest pool point (L1)."""
    pool32 = pool.astype(np.float32)  # halves the memory traffic of the n x pool distance sweeps
    picked = [int(rng.integers(len(pool)))]
    nearest = np.abs(pool32 - pool32[picked[0]]).sum(axis=1)
    for _ in progress(range(n - 1), desc="space filling", unit="mixture", leave=False):
        j = int(nearest.argmax())
        if nearest[j] < min_distance:
            raise UserError(
                f"sample.min_distance binds: only {len(picked)} mixtures of the {len(pool)}-point pool are "
                f"at L1 >= {min_distance} from each other, {n} asked; lower sample.min_distance or sample.n_mixtures"
            )
        picked.append(j)
        np.minimum(nearest, np.abs(pool32 - pool32[j]).sum(axis=1), out=nearest)
    return pool[picked]


def _caps_bind(gen: MixtureGenerator, drawn: int, accepted: int, rejected: np.ndarray, asked: int) -> UserError:
    worst = int(rejected.argmax())
    return UserError(
        f"sample.max_epochs binds: only {accepted} of {drawn} draws keep every domain under "
        f"{gen.max_epochs:g} epochs in the large run, {asked} asked; most rejections from "
        f"{gen.domains[worst]} (cap {gen.caps[worst] / gen.units:.4g}); raise sample.max_epochs, "
        "lower sample.n_mixtures, or bring sample.prior closer to the token share"
    )


def plot_swarm(path: str, domains: Sequence[str], W: np.ndarray, prior: Mapping[str, float]) -> None:
    """Box plot of each domain's weight across the swarm, with the token-share prior marked."""
    from regmix.plots import plt, save

    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(domains) + 2), 4.5))
    x = np.arange(len(domains))
    ax.boxplot(W, positions=x, widths=0.6, showfliers=False)
    jitter = np.random.default_rng(0).uniform(-0.2, 0.2, W.shape)  # fixed: the plot is reproducible
    ax.scatter((x + jitter).ravel(), W.ravel(), s=4, alpha=0.3, color="tab:blue", label="mixtures")
    ax.scatter(x, [prior[d] for d in domains], marker="_", s=300, color="tab:red", label="token share")
    ax.set_xticks(x, domains, rotation=60, ha="right")
    ax.set_ylabel("weight")
    ax.set_title(f"{len(W)} sampled mixtures")
    ax.legend(loc="upper right")
    save(fig, path)
