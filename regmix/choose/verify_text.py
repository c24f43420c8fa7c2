"""results/verify.json in words: the fresh seeds' verdict on the search's choice (`verify_text`, the
README's, the report's and the stage's line) and what they say against spending the large runs on
it (`doubts`). The check itself is regmix.choose.verify's.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from regmix.choose.mixture_files import CHOSEN
from regmix.choose.verify import PRIOR, replaced


def where(result: Mapping[str, Any]) -> str:
    """Where the fresh seeds trained: the proxy scale, or the check's own (`verify.model`, `verify.optim`)."""
    scale = result.get("scale")
    return (
        "at the proxy scale"
        if not scale
        else "at the check's scale (" + ", ".join(f"{k} {v}" for k, v in scale.items()) + ")"
    )


def doubts(result: Mapping[str, Any]) -> list[str]:
    """What the fresh seeds say against spending the large runs on the search's choice: a compared
    mixture that measured distinguishably better (or lower, when it replaced the choice), or a
    gain over the prior they do not confirm."""
    other = replaced(result)
    lines = [
        f"`{n}` measured distinguishably better than `{CHOSEN}` {where(result)} "
        f"({e['vs_regmix']['difference']:+.3f} nats)"
        for n, e in result.get("mixtures", {}).items()
        if e.get("vs_regmix", {}).get("verdict") == "better" and n != other
    ]
    if other:
        vs = result["mixtures"][other]["vs_regmix"]
        lines.insert(
            0,
            f"the large runs train `{other}`'s mixture as `{CHOSEN}`, not the search's choice: it "
            f"measured {vs['difference']:+.3f}{_ci(vs['ci95'])} nats against it {where(result)} "
            f"({vs['verdict']})",
        )
    lowest = result.get("choice", {}).get("lowest", CHOSEN)
    if not other and lowest != CHOSEN and result["mixtures"][lowest]["vs_regmix"]["verdict"] != "better":
        vs = result["mixtures"][lowest]["vs_regmix"]
        lines.append(
            f"`{lowest}` measured lower than `{CHOSEN}` {where(result)} ({vs['difference']:+.3f}"
            f"{_ci(vs['ci95'])} nats, {vs['verdict']}): the search's choice is kept"
        )
    gain = result.get("over_prior")
    if gain and gain["verdict"] == "not distinguishable":
        lines.append(
            f"the gain over `{PRIOR}` predicted ({gain['predicted']:.3f} nats) is not confirmed by "
            f"the fresh seeds {where(result)} ({gain['measured']:.3f}{_ci(gain['ci95'])})"
        )
    if lines and result.get("scale"):
        lines.append(
            "what the proxies found may not hold at a larger scale: more seeds (verify.seeds) settle "
            "this check before the large runs"
        )
    elif lines:
        lines.append(
            "more proxies (sample.n_mixtures, active.rounds) or more seeds (verify.seeds) can settle it "
            "before the large runs"
        )
    return lines


def _signed(v: float) -> str:
    return f"{v:+.3f}"


def _ci(pair: Sequence[float | None]) -> str:
    low, high = pair
    return "" if low is None or high is None else f" [{low:.3f}, {high:.3f}]"


def verify_text(result: Mapping[str, Any]) -> str:
    """results/verify.json in words: the README's, the report's and the stage's line."""
    entries = result.get("mixtures", {})
    if not entries:
        return "The compared mixtures were not measured again at the proxy scale (`verify.seeds: 0`)."
    noise = result["seed_noise"]
    text = f"Measured again {where(result)} ({result['seeds']} fresh seeds each, after the search)"
    chosen = entries.get(CHOSEN)
    if chosen is None:
        return text + ": " + ", ".join(f"`{n}` {e['measured']:.3f}{_ci(e['ci95'])}" for n, e in entries.items()) + "."
    text += f": `{CHOSEN}` {chosen['measured']:.3f}{_ci(chosen['ci95'])} nats"
    if chosen.get("predicted") is not None:
        text += f" (predicted {chosen['predicted']:.3f}{' at the proxy scale' if result.get('scale') else ''})"
    text += "."
    gain = result.get("over_prior")
    if gain:
        said = {
            "real": "real",
            "prior better": "`prior` is distinguishably better",
            "not distinguishable": "not distinguishable from no gain",
        }.get(gain["verdict"], "unknown noise")
        text += (
            f" Its gain over `{PRIOR}`: {gain['measured']:.3f}{_ci(gain['ci95'])} measured against "
            f"{gain['predicted']:.3f} predicted ({said})."
        )
    others = []
    for name, e in entries.items():
        if name in (CHOSEN, PRIOR) or "vs_regmix" not in e:
            continue
        vs = e["vs_regmix"]
        swarm = f"; its swarm loss {e['swarm']:.3f}" if "swarm" in e else ""
        others.append(f"`{name}` {_signed(vs['difference'])}{_ci(vs['ci95'])} ({vs['verdict']}{swarm})")
    if others:
        text += " Others minus `regmix`: " + ", ".join(others) + "."
    other = replaced(result)
    if other:
        text += (
            f" The large runs train `{other}`'s mixture as `{CHOSEN}`: it measured distinguishably lower (chosen "
            f"on these seeds, so its figure here is optimistic; the large runs' own seeds judge it)."
        )
    elif len(entries) > 1:
        text += (
            f" No verified mixture measured distinguishably lower: the large runs train the search's choice as "
            f"`{CHOSEN}`."
        )
    if noise["df"]:
        pairs = f" and {noise['replicate_pairs']} replicate pairs of the swarm" if noise["replicate_pairs"] else ""
        text += (
            f" Pooled seed noise {noise['std']:.3f} nats ({noise['df']} degrees of freedom: these seeds{pairs}), "
            "what a mixture with one seed borrows; 95% intervals on each mixture's own seed noise, Welch's "
            "t-tests, Holm-adjusted."
        )
    else:
        text += " The seed noise is unknown (one seed and no replicates): no difference can be judged."
    return text
