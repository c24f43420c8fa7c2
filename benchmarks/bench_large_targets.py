"""Does the choice hold at the large scale for targets other than the demo's?

For each target, one `dvc exp run -S target=<target>` of the whole pipeline from the committed
run (same corpus, swarm and large settings: only the fit, search, check, the new mixtures' large
runs and the evaluation rerun), whose `results/verify.json`, `results/evaluation.json` and
`results/report.md` are recorded in `benchmarks/results/large_targets/<target>/`; the workspace is
then restored to the committed run. `--table` prints the tables docs/benchmarks.md shows (a test checks
the page against them), from the committed demo run, the `mean` study
(`benchmarks/results/mean_target/`) and the recorded targets: which mixture the large runs trained
as `regmix`, its loss and rank, and each baseline minus it with the evaluation's verdict.

    .venv/bin/python -m benchmarks.bench_large_targets --targets bible,dialogue   # 8 to 10 min a target on 2 cores
    .venv/bin/python -m benchmarks.bench_large_targets --table

Targets with interior optima (their best proxies are broad mixtures: evaluation sets, tasks,
aggregates), where the regression must find a trade-off, are recorded under
`benchmarks/results/interior_targets/<name>/`, and `--table` prints their own table (which step
decided, `regmix` minus `best_proxy`, the best cheap baseline, `uniform` and `prior`, with 95% intervals):

    .venv/bin/python -m benchmarks.bench_large_targets --interior milton_bpb -S target=milton -S target_metric=bpb

Rank transfer where it matters, near the top of the proxies' ranking: the trained proxies with the
2nd to 13th lowest measured target loss (`proxy_<k>`) trained at the large scale beside `best_proxy`,
recorded under `benchmarks/results/near_top_transfer/<name>/`; `--table` prints the Spearman between
the proxies' order and the large runs' over them (and the regression's out-of-fold predictions'):

    .venv/bin/python -m benchmarks.bench_large_targets --near-top demo \
        -S 'large.mixtures=[regmix,best_proxy,prior,uniform,nearest,proxy_2,...,proxy_13]'

The verified pick with another check (more fresh seeds, a scale nearer the large run's) needs no
large run: a run up to `verify`, recorded under `benchmarks/results/verify_only/<name>/`, decides on
the same fit and search as an experiment already measured at the large scale on the same machine,
whose large runs say what its pick would have trained (bench_decision_large):

    .venv/bin/python -m benchmarks.bench_large_targets --verify-only milton_bpb_verify_20 \
        -S target=milton -S target_metric=bpb -S verify.seeds=20

Any other experiment is recorded the same way under `benchmarks/results/held_out_targets/<name>/`
(with its `results/proxy_run.json` and `results/fit.json`, and the seconds it took), e.g. a target held
out of training:

    .venv/bin/python -m benchmarks.bench_large_targets --name news_held_out -S 'data.eval_only=[news]' -S target=news
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from regmix.choose.mixture_files import BEST_PROXY, PROXY_PREFIX
from regmix.choose.verify import replaced
from regmix.files import load_params
from regmix.judge.comparison import resolves
from regmix.statistics import SeedNoise, compare, pooled_noise, spearman_interval

RECORDS = Path("benchmarks/results/large_targets")
MEAN_STUDY = Path("benchmarks/results/mean_target/check_proxy_scale")
HELD_OUT_RECORDS = Path("benchmarks/results/held_out_targets")
INTERIOR_RECORDS = Path("benchmarks/results/interior_targets")
NEAR_TOP_RECORDS = Path("benchmarks/results/near_top_transfer")
VERIFY_RECORDS = Path("benchmarks/results/verify_only")
RECORDED = {
    "verify.json": "results/verify.json",
    "evaluate.json": "results/evaluation.json",
    "report.md": "results/report.md",
}
EXPERIMENT_RECORDED = {
    **RECORDED,
    "proxies.json": "results/proxy_run.json",
    "fit.json": "results/fit.json",
    "mixture.yaml": "results/mixture.yaml",
}
# A run up to `verify` (no large run): the check's evidence, whose consequence an experiment with the same
# fit and search on the same machine measured at the large scale (bench_decision_large)
VERIFY_RECORDED = {key: EXPERIMENT_RECORDED[key] for key in ("verify.json", "proxies.json", "fit.json", "mixture.yaml")}
BASELINES = ("best_proxy", "uniform", "prior")
ROUNDS = "active=rounds"  # the override of a record whose swarm grew by active rounds
ONE_SHOT = "one_shot"  # its human mixture: the one-shot pipeline's choice, trained beside it
# What an experiment rewrites; the committed run's come back from git and the DVC cache.
RUN_OUTPUTS = ("params.yaml", "dvc.lock", "results", "metrics", "plots")


def run_target(target: str) -> Path:
    """One experiment for `target`, its files recorded, the workspace restored: the record's folder."""
    return run_experiment(f"target-{target}", [f"target={target}"], RECORDS / target, RECORDED)


def machine() -> str:
    """The CPU an experiment ran on and its native bf16 kernels. `precision: auto` trains in bf16 where
    the CPU has them, and bf16 runs differ between CPUs with different kernels (AMX or AVX512-BF16):
    records made on different machines are different experiments."""
    import torch

    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
    kernels = [
        kernel
        for kernel, native in (
            ("AMX", torch.cpu._is_amx_tile_supported()),
            ("AVX512-BF16", torch.cpu._is_avx512_bf16_supported()),
        )
        if native
    ]
    return f"{name or platform.processor() or 'unknown CPU'}, native bf16: {' and '.join(kernels) or 'none'}"


def run_experiment(
    name: str, overrides: list[str], folder: Path, recorded: dict[str, str], stage: str | None = None
) -> Path:
    """`dvc exp run [stage] -S <override>...` from the committed run (the whole pipeline, or up to `stage`),
    `recorded` files copied into `folder` (with the experiment's seconds), the workspace restored: the
    record's folder."""
    # The experiment runs the workspace as it is; only the records themselves may differ from HEAD.
    if subprocess.run(
        [
            "git",
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            f":!{RECORDS}",
            f":!{HELD_OUT_RECORDS}",
            f":!{INTERIOR_RECORDS}",
            f":!{NEAR_TOP_RECORDS}",
            f":!{VERIFY_RECORDS}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip():
        raise SystemExit("the workspace has uncommitted changes: commit or stash them (the run restores it after)")
    try:
        start = time.perf_counter()
        targets = [stage] if stage else []
        subprocess.run(
            ["dvc", "exp", "run", *targets, "-n", name, *(a for o in overrides for a in ("-S", o))], check=True
        )
        seconds = time.perf_counter() - start
        folder.mkdir(parents=True, exist_ok=True)
        for file, source in recorded.items():
            shutil.copyfile(source, folder / file)
        if recorded is not RECORDED:
            (folder / "experiment.json").write_text(
                json.dumps({"overrides": overrides, "seconds": round(seconds, 1), "machine": machine()}, indent=2)
                + "\n"
            )
        return folder
    finally:
        # data/'s tracked files too: the .gitignore entries DVC added for a new mixture's runs
        subprocess.run(["git", "checkout", "--", *RUN_OUTPUTS, "data"], check=True)
        subprocess.run(["git", "clean", "-fdq", *RUN_OUTPUTS[2:]], check=True)
        # a cache without the committed run's data (another machine's) cannot restore it: the record stands
        if subprocess.run(["dvc", "checkout", "-q"]).returncode:
            print("warning: dvc checkout could not restore the committed run's data: not in this cache", flush=True)


def row(label: str, verify: dict[str, Any], evaluation: dict[str, Any]) -> str:
    """One target's line of the table."""
    other, summary, regmix = replaced(verify), evaluation["summary"], evaluation["regmix"]
    trained = f"`{other}` (measured lower)" if other else "the search's choice"
    ranked = len(summary["ranking"]) - len(summary["runs_of_regmix"])
    low, high = regmix["target_loss_ci95"]
    noise = summary["seed_noise"]
    cells = [
        label,
        trained,
        f"{regmix['target_loss']:.3f} [{low:.3f}, {high:.3f}], {regmix['seeds']}",
        f"{summary['regmix_rank']} of {ranked}",
        f"{noise['std']:.3f}, {noise['df']}",
    ]
    for name in BASELINES:
        vs = evaluation[name].get("vs_regmix")  # absent where the mixture's runs are regmix's
        cells.append(
            "its mixture" if vs is None else f"{vs['difference']:+.3f} {vs['verdict']}, {evaluation[name]['seeds']}"
        )
    return "| " + " | ".join(cells) + " |"


def sources(root: Path = Path(".")) -> dict[str, tuple[Path, Path]]:
    """Each measured domain target's verify and evaluate metrics, by its label in the table: the `mean`
    study's default experiment (benchmarks/results/mean_target/; a recorded `mean` takes its place)
    and the recorded targets (`wikipedia`: the demo's target until it moved to the task)."""
    mean = root / MEAN_STUDY
    found = {"`mean`": (mean / "verify.json", mean / "evaluate.json")}
    for folder in sorted(p for p in (root / RECORDS).iterdir() if p.is_dir()):
        found[f"`{folder.name}`"] = (folder / "verify.json", folder / "evaluate.json")
    return found


def experiment_records(root: Path = Path(".")) -> dict[str, Path]:
    """The committed demo run's folder (`results/`, as "the demo") and every interior and held-out record's."""
    found = {"the demo": root / "results"}
    for base in (INTERIOR_RECORDS, HELD_OUT_RECORDS):
        found |= {f.name: f for f in sorted((root / base).iterdir()) if (f / "verify.json").exists()}
    return found


def evaluation_file(folder: Path) -> Path:
    return folder / ("evaluation.json" if folder.name == "results" else "evaluate.json")


def _experiment(folder: Path) -> dict[str, Any]:
    """A record's experiment.json: its overrides, seconds and machine ({} for the committed demo run)."""
    path = folder / "experiment.json"
    return json.loads(path.read_text()) if path.exists() else {}


def experiment_key(folder: Path) -> tuple[str, ...]:
    """What a record measured, less how many large-run seeds: its overrides but `large.replicate.*`
    (the committed demo run's: none), and the machine it names (`machine`; a record that names none ran
    on the committed run's)."""
    record = _experiment(folder)
    key = sorted(o for o in record.get("overrides", []) if not o.lstrip("+").startswith("large.replicate."))
    return tuple(key + ([f"machine: {record['machine']}"] if "machine" in record else []))


def most_seeded(records: dict[str, Path]) -> dict[tuple[str, ...], str]:
    """Each experiment's record (by name): one whose fit took the target term by term (the fit since
    `regression.per_term`) first, then the most large-run seeds of `regmix`, then of `prior`."""
    best: dict[tuple[str, ...], tuple[tuple[int, int, int], str]] = {}
    for name, folder in records.items():
        evaluation = json.loads(evaluation_file(folder).read_text())
        by_term = int(_fitted_by_term(folder))
        seeds = (by_term, evaluation["regmix"]["seeds"], evaluation.get("prior", {}).get("seeds", 0))
        key = experiment_key(folder)
        if key not in best or seeds > best[key][0]:
            best[key] = (seeds, name)
    return {key: name for key, (_, name) in best.items()}


def _fitted_by_term(folder: Path) -> bool:
    fit = folder / "fit.json"
    return fit.exists() and bool(json.loads(fit.read_text()).get("per_term"))


def by_term_pairs(records: dict[str, Path]) -> list[tuple[str, str]]:
    """(record fitted term by term, the same experiment's most-seeded record fitted as one number)."""
    whole = most_seeded({name: folder for name, folder in records.items() if not _fitted_by_term(folder)})
    return [
        (name, whole[experiment_key(folder)])
        for name, folder in records.items()
        if _fitted_by_term(folder) and experiment_key(folder) in whole
    ]


def by_term_sentence(target: str, by_term: dict[str, Any], whole: dict[str, Any]) -> str:
    """docs/benchmarks.md's sentence: the choice of a target fitted term by term against the one fitted as
    one number, at the large scale (Welch's test on their seeds)."""
    a, b = by_term["regmix"]["target_loss_per_seed"], whole["regmix"]["target_loss_per_seed"]
    c = compare(a, b, pooled_noise({"by term": a, "whole": b}))
    return (
        f"On `{target}` the choice of the fit term by term measured {by_term['regmix']['target_loss']:.3f} "
        f"({len(a)} seeds) at the large scale, that of the fit of the aggregate {whole['regmix']['target_loss']:.3f} "
        f"({len(b)} seeds): {c.difference:+.3f} [{c.low:+.3f}, {c.high:+.3f}], Welch p {c.p_value:.2g} "
        f"({c.verdict})."
    )


def interior_records(root: Path = Path(".")) -> dict[str, tuple[Path, str]]:
    """name -> (its folder, the name of the same experiment's record with the most large-run seeds): the
    committed demo run ("the demo"), then each record under interior_targets/."""
    records = experiment_records(root)
    chosen = most_seeded(records)
    return {
        name: (folder, chosen[experiment_key(folder)])
        for name, folder in records.items()
        if name == "the demo" or folder.parent == root / INTERIOR_RECORDS
    }


def interior_sources(root: Path = Path(".")) -> dict[str, tuple[Path, Path]]:
    """The targets with interior optima (the committed demo run's, then each under interior_targets/), each
    from its record with the most large-run seeds (a rerun with more seeds is named beside the label)."""
    records = experiment_records(root)
    demo = f"`{load_params(root / 'params.yaml')['target']}` (the demo)"
    found = {}
    for name, (_, record) in interior_records(root).items():
        label = (demo if name == "the demo" else f"`{name}`") + ("" if record == name else f", `{record}`")
        found[label] = (records[record] / "verify.json", evaluation_file(records[record]))
    return found


def machine_sources(root: Path = Path(".")) -> dict[str, tuple[Path, Path]]:
    """Each record of the default pipeline made on a machine it names (`machine`), labelled by its target
    and machine: the same pipeline's answer where bf16 rounds otherwise, so its proxies, fit and choice
    differ from the committed run's. Records with active rounds are `rounds_sources`'."""
    found = {}
    for name, folder in experiment_records(root).items():
        record = _experiment(folder)
        if "machine" in record and ROUNDS not in record["overrides"]:
            target = json.loads((folder / "fit.json").read_text())["target"]
            found[f"`{target}` on {record['machine']}, `{name}`"] = (folder / "verify.json", evaluation_file(folder))
    return found


def rounds_sources(root: Path = Path(".")) -> dict[str, tuple[Path, Path]]:
    """Each experiment whose swarm grew by active rounds (`-S active=rounds`), from its record with the most
    large-run seeds, labelled by its target and proxies: the one-shot pipeline's choice on the same
    machine is trained beside it as `one_shot`."""
    records, found = experiment_records(root), {}
    for name in most_seeded(records).values():
        folder = records[name]
        if ROUNDS in _experiment(folder).get("overrides", []):
            target = json.loads((folder / "fit.json").read_text())["target"]
            proxies = json.loads((folder / "proxies.json").read_text())["proxies"]
            found[f"`{target}`, {proxies} proxies, `{name}`"] = (folder / "verify.json", evaluation_file(folder))
    return found


def versus(evaluation: dict[str, Any], name: str) -> str:
    """`regmix` minus a compared mixture, with its interval and verdict (from `regmix`'s side)."""
    if name not in evaluation:
        return "not compared"
    vs = evaluation[name].get("vs_regmix")
    if vs is None:
        return "its mixture"
    low, high = vs["ci95"]
    said = {"worse": "better", "better": "worse"}.get(vs["verdict"], vs["verdict"])
    interval = "" if low is None else f" [{-high:+.3f}, {-low:+.3f}]"
    holm = "" if vs.get("p_holm") is None else f", Holm p {vs['p_holm']:.2g}"
    return f"{-vs['difference']:+.3f}{interval} {said} ({evaluation[name]['seeds']} seeds{holm})"


def interior_row(label: str, verify: dict[str, Any], evaluation: dict[str, Any]) -> str:
    """One interior target's line: who decided, regmix's rank, regmix minus each rival (95%)."""
    return "| " + " | ".join(interior_cells(label, verify, evaluation)) + " |"


def interior_cells(label: str, verify: dict[str, Any], evaluation: dict[str, Any]) -> list[str]:
    """interior_row's cells."""
    summary, regmix = evaluation["summary"], evaluation["regmix"]
    decided = verify.get("decision", {}).get("decided_by", "unrecorded")
    ranked = len(summary["ranking"]) - len(summary["runs_of_regmix"])
    cheap = summary.get("best_cheap")
    return [
        label,
        f"`{decided}`",
        f"{regmix['target_loss']:.3f} ({regmix['seeds']} seeds), {summary['regmix_rank']} of {ranked}",
        versus(evaluation, "best_proxy"),
        f"`{cheap['mixture']}`: {versus(evaluation, cheap['mixture'])}" if cheap else "none compared",
        versus(evaluation, "uniform"),
        versus(evaluation, "prior"),
        _resolves(evaluation),
    ]


def _resolves(evaluation: dict[str, Any]) -> str:
    """The difference the run's seeds call with 80% power (regmix.judge.comparison.resolves), from its records."""
    noise = evaluation["summary"]["seed_noise"]
    entries = {n: e for n, e in evaluation.items() if n != "summary"}
    found = resolves(entries, SeedNoise(noise["std"], noise["df"]))
    return "unknown" if found is None else f"{found['difference']:.3f} (seed std {noise['std']:.3f})"


def interior_table(measured: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> str:
    """docs/benchmarks.md's table of the targets with interior optima."""
    lines = [
        "| target | decided by | `regmix` loss, rank | minus `best_proxy` | minus the best cheap baseline | "
        "minus `uniform` | minus `prior` | resolves (80% power) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [interior_row(label, verify, evaluation) for label, (verify, evaluation) in measured.items()]
    return "\n".join(lines)


def _counts(measured: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, int]:
    """How many records the regression's own choice decided, a rival beat `regmix`, `regmix` beat both
    `uniform` and `prior`, and `regmix` beat `best_proxy` (the evaluations' verdicts)."""
    evaluations = [e for _, e in measured.values()]

    def regmix_better(e: dict[str, Any], rival: str) -> bool:
        return e.get(rival, {}).get("vs_regmix", {}).get("verdict") == "worse"

    return {
        "n": len(measured),
        "own": sum(v.get("decision", {}).get("decided_by") == "rule" for v, _ in measured.values()),
        "beaten": sum(bool(e["summary"]["verdict"]["better"]) for e in evaluations),
        "both": sum(regmix_better(e, "uniform") and regmix_better(e, "prior") for e in evaluations),
        "over_best": sum(regmix_better(e, "best_proxy") for e in evaluations),
    }


def interior_summary(measured: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> str:
    """docs/benchmarks.md's sentence over the interior targets: how often the regression's own choice was
    trained, and the verdicts against the rivals."""
    c = _counts(measured)
    return (
        f"On the {c['n']} targets with interior optima the large runs trained the regression's own choice on {c['own']}; a compared mixture "
        f"measured distinguishably better than `regmix` on {c['beaten']}; `regmix` measured distinguishably better "
        f"than both `uniform` and `prior` on {c['both']}, and than `best_proxy` on {c['over_best']}."
    )


def machine_summary(measured: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> str:
    """The sentence over the records made on another machine (`machine_sources`)."""
    c = _counts(measured)
    return (
        f"Rerun on another CPU, whose bf16 rounds otherwise (other proxies, another choice), on {c['n']} of these "
        f"targets `regmix` measured distinguishably better than `best_proxy` on {c['over_best']} and than both "
        f"`uniform` and `prior` on {c['both']}; a compared mixture measured distinguishably better than it on "
        f"{c['beaten']}."
    )


def rounds_table(measured: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> str:
    """docs/benchmarks.md's table of the records with active rounds: interior_table's columns and
    `regmix` minus the one-shot choice."""
    lines = [
        "| target, proxies | decided by | `regmix` loss, rank | minus `best_proxy` | minus the best cheap baseline | "
        "minus `uniform` | minus `prior` | resolves (80% power) | minus the one-shot choice |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        "| " + " | ".join([*interior_cells(label, verify, evaluation), versus(evaluation, ONE_SHOT)]) + " |"
        for label, (verify, evaluation) in measured.items()
    ]
    return "\n".join(lines)


def rounds_summary(measured: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> str:
    """The sentence over the records with active rounds: against the one-shot choice, then as _counts."""
    verdicts = [e[ONE_SHOT]["vs_regmix"]["verdict"] for _, e in measured.values()]
    c = _counts(measured)
    return (
        f"With active rounds, on {c['n']} targets `regmix` measured distinguishably lower than the one-shot "
        f"choice on {verdicts.count('worse')} and higher on {verdicts.count('better')}; it measured distinguishably "
        f"better than `best_proxy` on {c['over_best']} and than both `uniform` and `prior` on {c['both']}; a "
        f"compared mixture measured distinguishably better than it on {c['beaten']}."
    )


def near_top(evaluation: dict[str, Any]) -> dict[str, Any]:
    """Proxy -> large rank transfer over the near-top proxies a run trained at the large scale
    (`best_proxy` is rank 1, `proxy_<k>` rank k): Spearman between the proxies' rank and the large
    runs' mean target loss, the same for the regression's out-of-fold predictions, how far apart the
    large losses lie against the large runs' seed noise, and the regret of taking the best proxy."""
    ranks = {1: BEST_PROXY, **{int(n[len(PROXY_PREFIX) :]): n for n in evaluation if n.startswith(PROXY_PREFIX)}}
    ks = sorted(k for k, n in ranks.items() if n in evaluation)
    large = [evaluation[ranks[k]]["target_loss"] for k in ks]
    predicted = [evaluation[ranks[k]]["predicted"] for k in ks]
    rho, low, high, n = spearman_interval(ks, large)
    fit_rho, fit_low, fit_high, _ = spearman_interval(predicted, large)
    return {
        "mixtures": n,
        "ranks": ks,
        "large_loss": large,
        "proxy_rank": {"rho": rho, "ci95": [low, high]},
        "regression": {"rho": fit_rho, "ci95": [fit_low, fit_high]},
        "large_range": max(large) - min(large),
        "seed_std": evaluation["summary"]["seed_noise"]["std"],
        "large_best_rank": ks[large.index(min(large))],
        "regret_of_best_proxy": large[0] - min(large),
    }


def near_top_sentence(label: str, t: dict[str, Any]) -> str:
    """docs/benchmarks.md's sentence on one near-top transfer record."""

    def rho(r: dict[str, Any]) -> str:
        return f"{r['rho']:.2f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]"

    return (
        f"On {label}, over the {t['mixtures']} trained proxies with the lowest measured target loss, the "
        f"proxies' order and the large runs' agree with Spearman {rho(t['proxy_rank'])} (95% bootstrap), "
        f"the regression's out-of-fold predictions with {rho(t['regression'])}; their large losses span "
        f"{t['large_range']:.3f} nats against a large-run seed std of {t['seed_std']:.3f}, the best of them "
        f"at the large scale is the proxies' number {t['large_best_rank']}, and taking the best proxy costs "
        f"{t['regret_of_best_proxy']:.3f} nats there."
    )


def near_top_records(root: Path = Path(".")) -> dict[str, dict[str, Any]]:
    """Each recorded near-top transfer, by label, from its evaluation."""
    folder = root / NEAR_TOP_RECORDS
    return (
        {
            f"`{json.loads((p / 'fit.json').read_text())['target']}` (record `{p.name}`)": near_top(
                json.loads((p / "evaluate.json").read_text())
            )
            for p in sorted(folder.iterdir())
            if p.is_dir()
        }
        if folder.is_dir()
        else {}
    )


def load(found: dict[str, tuple[Path, Path]]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Each label's verify and evaluate metrics."""
    return {label: tuple(json.loads(p.read_text()) for p in paths) for label, paths in found.items()}


def table(measured: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> str:
    """docs/benchmarks.md's table of the targets measured at the large scale: one row per target."""
    lines = [
        "| target | large runs train as `regmix` | `regmix` loss [95%], seeds | rank | seed noise, df | "
        + " | ".join(f"`{n}`, seeds" for n in BASELINES)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(BASELINES),
    ]
    lines += [row(label, verify, evaluation) for label, (verify, evaluation) in measured.items()]
    return "\n".join(lines)


def summary(measured: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> str:
    """docs/benchmarks.md's sentence over the table's targets, by the evaluation's verdicts."""
    evaluations = [evaluation for _, evaluation in measured.values()]
    first = sum(e["summary"]["regmix_rank"] == 1 for e in evaluations)
    beaten = sum(bool(e["summary"]["verdict"]["better"]) for e in evaluations)
    both = sum(
        all(e[n].get("vs_regmix", {}).get("verdict") == "worse" for n in ("uniform", "prior")) for e in evaluations
    )
    return (
        f"Of these {len(evaluations)} targets, `regmix` ranks first on {first}, a compared mixture measured "
        f"distinguishably better than it on {beaten}, and it measured distinguishably better than both "
        f"`uniform` and `prior` on {both}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="", help="comma list of targets to run and record")
    parser.add_argument(
        "--table", action="store_true", help="print docs/benchmarks.md's tables and sentences from the records"
    )
    parser.add_argument("--name", help="record any experiment under benchmarks/results/held_out_targets/<name>")
    parser.add_argument(
        "--interior",
        help="record a target with an interior optimum (its -S overrides) under "
        "benchmarks/results/interior_targets/<name>",
    )
    parser.add_argument(
        "--near-top",
        help="record a run with near-top proxies (`proxy_<k>` in large.mixtures) "
        "under benchmarks/results/near_top_transfer/<name>",
    )
    parser.add_argument(
        "--verify-only",
        help="record a run up to verify (no large run) under benchmarks/results/verify_only/<name>: "
        "e.g. -S verify.seeds=20, whose pick bench_decision_large measures on the same experiment's large runs",
    )
    parser.add_argument("-S", dest="overrides", action="append", default=[], help="the experiment's params (-S k=v)")
    args = parser.parse_args()
    for target in filter(None, args.targets.split(",")):
        print(f"{target}: recorded in {run_target(target)}", flush=True)
    if args.name:
        folder = run_experiment(args.name, args.overrides, HELD_OUT_RECORDS / args.name, EXPERIMENT_RECORDED)
        print(f"{args.name}: recorded in {folder}", flush=True)
    if args.interior:
        folder = run_experiment(args.interior, args.overrides, INTERIOR_RECORDS / args.interior, EXPERIMENT_RECORDED)
        print(f"{args.interior}: recorded in {folder}", flush=True)
    if args.near_top:
        folder = run_experiment(args.near_top, args.overrides, NEAR_TOP_RECORDS / args.near_top, EXPERIMENT_RECORDED)
        print(f"{args.near_top}: recorded in {folder}", flush=True)
    if args.verify_only:
        folder = run_experiment(
            args.verify_only, args.overrides, VERIFY_RECORDS / args.verify_only, VERIFY_RECORDED, stage="verify"
        )
        print(f"{args.verify_only}: recorded in {folder}", flush=True)
    if args.table or not (args.targets or args.name or args.interior or args.near_top or args.verify_only):
        measured = load(sources())
        print(table(measured), summary(measured), sep="\n\n")
        interior = load(interior_sources())
        print("", interior_table(interior), interior_summary(interior), sep="\n\n")
        elsewhere = load(machine_sources())
        if elsewhere:
            print("", interior_table(elsewhere), machine_summary(elsewhere), sep="\n\n")
        rounds = load(rounds_sources())
        if rounds:
            print("", rounds_table(rounds), rounds_summary(rounds), sep="\n\n")
        for label, transfer in near_top_records().items():
            print("", near_top_sentence(label, transfer), sep="\n")


if __name__ == "__main__":
    main()
