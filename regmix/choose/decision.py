"""One decision, recorded: the steps from the regression's choice to what the large runs train as `regmix`.

The search rule's choice is the regression's answer. Two steps after it may only propose another
mixture, each on evidence stated in the fit's own resolution (`FittedRegressor.resolution`: the
smallest predicted difference that is real with 95% probability):

  incumbent      a trained proxy whose measured loss, shrunk toward the regression, is estimated below
                 the choice's prediction by more than `search.incumbent_margin` x the resolution
  prior_guard    the prior, where the regression cannot tell the choice from it (`search.min_confidence`)

and a proposal stands only when fresh seeds confirm it:

  verified_pick  a verified mixture (a proposal, `best_proxy`, `prior`, `uniform`) replaces the choice
                 only when its fresh seeds measured it distinguishably lower (Welch, Holm; `verify.choose`)

Otherwise the step warns and the choice stays. Every step records what it says, whether it
changed the answer, and by how much: the L1 distance between the weights before and after, and
the regression's predicted change (nats; negative: predicted lower).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

RULE, INCUMBENT, PRIOR_GUARD, VERIFIED_PICK = "rule", "incumbent", "prior_guard", "verified_pick"
STEPS = (RULE, INCUMBENT, PRIOR_GUARD, VERIFIED_PICK)


def l1(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """L1 distance between two mixtures given as {domain: weight} (a missing domain weighs 0)."""
    return float(sum(abs(a.get(d, 0.0) - b.get(d, 0.0)) for d in {*a, *b}))


def step(
    name: str,
    says: str,
    changed: bool = False,
    proposed: Optional[str] = None,
    l1_change: Optional[float] = None,
    predicted_change: Optional[float] = None,
    **evidence: Any,
) -> dict[str, Any]:
    """One step's record. `proposed`: the mixture it puts forward in the choice's place (to be
    verified), `changed`: whether it replaced the answer."""
    if name not in STEPS:
        raise ValueError(f"unknown decision step {name!r}")
    out: dict[str, Any] = {"step": name, "changed": bool(changed), "says": says}
    if proposed is not None:
        out["proposed"] = proposed
    if l1_change is not None:
        out["l1"] = round(float(l1_change), 6)
    if predicted_change is not None:
        out["predicted_change"] = float(predicted_change)
    return {**out, **evidence}


def decided_by(steps: Sequence[Mapping[str, Any]]) -> str:
    """The last step that changed the answer (`rule` when none did)."""
    return next((s["step"] for s in reversed(steps) if s.get("changed")), RULE)


def record(steps: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The decision as the mixture file and results/verify.json hold it."""
    return {"steps": [dict(s) for s in steps], "decided_by": decided_by(steps)}


def proposals(steps: Sequence[Mapping[str, Any]]) -> list[str]:
    """The steps that proposed a mixture in the choice's place, in order."""
    return [s["step"] for s in steps if s.get("proposed")]


def decision_text(decision: Mapping[str, Any]) -> str:
    """The chain in words: one clause per step, then which step decided."""
    parts = []
    for s in decision.get("steps", []):
        size = ""
        if s.get("l1") is not None:
            size = (
                f" (L1 {s['l1']:.3f}"
                + (f", predicted {s['predicted_change']:+.3f} nats" if s.get("predicted_change") is not None else "")
                + ")"
            )
        parts.append(f"{s['step']}: {s['says']}{size if s.get('changed') or s.get('proposed') else ''}")
    by = decision.get("decided_by", RULE)
    tail = (
        "the regression's own choice is what the large runs train"
        if by == RULE
        else f"`{by}` replaced the regression's choice"
    )
    return "; ".join(parts) + f". Decided by `{by}`: {tail}."


def answer(final: Optional[Mapping[str, float]], search: Mapping[str, Any], decision: Mapping[str, Any]) -> dict:
    """results/answer.yaml, the one file a user takes the mixture from: `mixture` is what the large
    runs train as `regmix` and `regmix export` hands on (None when `regmix` is not compared), with
    the decision beside it; the search's own choice is kept as `search_proposal`, named as such."""
    proposal = dict(search["train"])
    return {
        "mixture": None if final is None else dict(final),
        "decided_by": decision.get("decided_by", RULE),
        "decision": decision_text(decision),
        "search_proposal": proposal,
        "is_search_proposal": final is not None and l1(final, proposal) < 1e-6,
    }
