"""The whole DAG end to end on the tiny preset, in a temporary copy of the repository.

One `dvc repro` feeds several checks: the outputs exist and agree, a second repro is a
no-op, a regression override reruns only what depends on it, the DVC-cached artefacts
survive a push to and pull from a local remote, a mixture no longer compared leaves no stale
output and one that shares the choice's runs trains nothing, and the README's `dvc exp show` of
the experiments is readable in 200 columns.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO

from regmix.compose import compose
from regmix.judge import headline


def run(cmd: list[str], cwd: Path, **env: str) -> str:
    # The project's own cache (compiled regressors) stays inside the temporary project. The tiny
    # proxies train in-process: a worker pool's start-up would be most of each stage's time here
    # (the pool has its own tests: test_interrupt, test_proxies).
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        REGMIX_CACHE=str(cwd / ".cache"),
        REGMIX_WORKERS="1",
        **env,
    )
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def dvc(*args: str, cwd: Path) -> str:
    return run([sys.executable, "-m", "dvc", *args], cwd)


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return [f for f in out.splitlines() if (REPO / f).is_file()]


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def stages_run(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def new_project(root: Path) -> Path:
    """A fresh git + DVC repository at `root` holding the project's files, the tiny preset composed."""
    for rel in tracked_files():
        if (
            rel == "dvc.lock"
            or rel.startswith(("results/", "metrics/", "plots/"))
            or (rel.startswith("data/") and not rel.startswith(("data/tasks/", "data/eval_sets/")))
        ):
            continue  # outputs (and the lock of the committed demo run) are what the run must make
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, root / rel)
    compose(root / "params.yaml", ["experiment=tiny"], root / "conf")
    run(["git", "init", "-q"], root)
    commit(root, "tiny")
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = new_project(tmp_path_factory.mktemp("project"))
    dvc("repro", cwd=root)
    commit(root, "tiny run")  # as the demo's results are committed: experiments compare against it
    return root


def commit(root: Path, message: str) -> None:
    run(["git", "add", "-A"], root)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], root)


def test_repro_writes_every_output(project):
    domains = json.loads((project / "results/domains.json").read_text())
    assert domains["milton"]["role"] == "held_out" and "train_tokens" not in domains["milton"]
    domains = {n: d for n, d in domains.items() if d["role"] == "train"}  # the held-out set has no weight
    assert domains and all(
        d["train_tokens"] > 0 and d["valid_tokens"] > 0 and d["test_tokens"] > 0 for d in domains.values()
    )
    mixtures = pd.read_csv(project / "results/mixtures.csv")
    proxies = pd.read_csv(project / "results/proxies.csv")
    assert len(mixtures) == len(proxies) == 8
    assert [c for c in proxies.columns if c.startswith("loss.")] == [f"loss.{d}" for d in [*domains, "milton"]]
    assert {"task.true_ending", "acc.true_ending", "bpb.milton"} <= set(proxies.columns)
    chosen = yaml.safe_load((project / "results/mixture.yaml").read_text())["train"]
    assert abs(sum(chosen.values()) - 1) < 1e-6 and set(chosen) == set(domains)
    fit = json.loads((project / "results/fit.json").read_text())
    cv = pd.read_csv(project / "results/fit_predictions.csv").query("set == 'cv'")
    assert fit["cv"]["n"] == len(cv) == 8
    assert fit["cv"]["spearman"] == pytest.approx(cv["true"].corr(cv["predicted"], method="spearman"))
    evaluation = json.loads((project / "results/evaluation.json").read_text())
    mixtures = {n: e for n, e in evaluation.items() if "target_loss" in e}
    assert set(mixtures) == {"regmix", "best_proxy", "uniform", "prior", "nearest", "random_1"}
    assert {n: e["seeds"] for n, e in mixtures.items()} == {
        "regmix": 2,
        "best_proxy": 2,
        "uniform": 2,
        "prior": 2,
        "nearest": 2,
        "random_1": 1,
    }
    for e in mixtures.values():
        low, high = e["target_loss_ci95"]
        assert low < e["target_loss"] < high
    assert set(evaluation) - set(mixtures) == {"summary"}
    # regmix, best_proxy, uniform, prior and nearest train 2 seeds each (1 degree of freedom each); runs
    # shared with regmix count once
    shared = {n for n, e in mixtures.items() if e.get("runs_of")}
    assert evaluation["summary"]["seed_noise"]["df"] == 5 - len(shared & {"best_proxy", "uniform", "prior", "nearest"})
    cheap = evaluation["summary"]["best_cheap"]  # what the proxies bought over the best mixture made without them
    assert cheap["mixture"] in {"uniform", "prior", "nearest"} - shared
    assert cheap["regmix_minus"] == pytest.approx(
        mixtures["regmix"]["target_loss"] - mixtures[cheap["mixture"]]["target_loss"]
    )
    # best_proxy: the swarm row with the lowest measured target (the tiny preset's target is `mean`)
    best = proxies.loc[proxies[[f"loss.{d}" for d in domains]].mean(axis=1).idxmin()]  # mean: the training domains
    stored = json.loads((project / "results/compare/best_proxy.json").read_text())["mixture"]
    assert stored == pytest.approx({d: best[d] for d in domains})
    report = (project / "results/report.md").read_text()
    assert report.startswith("# Large-model comparison\n\n**The pipeline's answer is the mixture `regmix`**")
    # verify: each of its mixtures trained again with fresh seeds, judged, and in the report
    verify = json.loads((project / "results/verify.json").read_text())
    checked = pd.read_csv(project / "results/verify.csv")
    verified = {"best_proxy", "nearest", "prior", "regmix", "uniform"}  # and a step's proposal, when one made it
    assert set(verify["mixtures"]) == set(checked["mixture"].unique()) and verified <= set(verify["mixtures"])
    assert sorted(checked["seed"].unique()) == [2, 3, 4] and len(checked) == 3 * len(verify["mixtures"])
    for name, e in verify["mixtures"].items():
        assert e["measured"] == pytest.approx(checked.query("mixture == @name")["target"].mean())
    assert verify["seed_noise"]["df"] == len(verify["mixtures"]) * 2 + 2  # mixtures x (3 - 1) + 2 replicate pairs
    # the large runs train, as regmix, the search's choice unless a verified mixture measured distinguishably lower
    choice = verify["choice"]["mixture"]
    assert choice == "regmix" or verify["mixtures"][choice]["vs_regmix"]["verdict"] == "better"
    steps = [s["step"] for s in verify["decision"]["steps"]]
    assert steps == ["rule", "incumbent", "prior_guard", "verified_pick"]
    assert verify["decision"]["decided_by"] == ("rule" if choice == "regmix" else "verified_pick")
    candidate = json.loads((project / f"results/candidates/{choice}.json").read_text())["mixture"]
    assert json.loads((project / "results/compare/regmix.json").read_text())["mixture"] == candidate
    # one answer: the file a user takes the mixture from is what trains as regmix and what export hands on
    answer = yaml.safe_load((project / "results/answer.yaml").read_text())
    assert answer["mixture"] == pytest.approx(candidate) and answer["decided_by"] == verify["decision"]["decided_by"]
    assert answer["search_proposal"] == chosen and answer["is_search_proposal"] == (choice == "regmix")
    assert choice == "regmix" or choice in shared  # the mixture whose weights regmix took trains once
    assert "Measured again at the proxy scale (3 fresh seeds each" in report


def test_second_repro_is_a_noop(project):
    out = dvc("repro", cwd=project)
    assert not stages_run(out), out


def test_status_is_clean_after_commit(project):
    out = dvc("status", cwd=project)
    assert "changed" not in out, out


def test_push_pull_round_trip(project, tmp_path):
    """Every DVC-cached artefact comes back bit for bit from a local remote."""
    before = digest(project / "data")
    dvc("remote", "add", "-f", "-d", "local", str(tmp_path / "remote"), cwd=project)
    dvc("push", cwd=project)
    shutil.rmtree(project / ".dvc" / "cache")
    shutil.rmtree(project / "data" / "tokens")
    shutil.rmtree(project / "data" / "regression")
    dvc("pull", cwd=project)
    assert digest(project / "data") == before


def test_regression_override_reruns_only_downstream(project):
    """A new regressor refits and searches; of the compared mixtures only regmix can change, so
    only its model retrains (and only if the chosen mixture moved): never a baseline's."""
    chosen = (project / "results/compare/regmix.json").read_text()
    # Hydra composes from conf/ on every `exp run`, so the preset is named again.
    out = dvc("exp", "run", "-S", "experiment=tiny", "-S", "regression=linear", cwd=project)
    ran = stages_run(out)
    assert {"fit", "search"} <= ran, out
    assert not ran & {"prepare", "sample", "proxies"}, out
    assert not ran & {"train@uniform", "train@prior", "train@random_1"}, out
    moved = (project / "results/compare/regmix.json").read_text() != chosen
    assert ("train@regmix" in ran) == moved, out


def test_compared_mixtures_change_without_stale_output_or_retraining(project):
    """Two changes to what is compared (each `dvc exp run` costs most of a minute).

    Dropping random_1 removes its compared-mixture file and its curves, and the comparison
    charts' data no longer name it; the prior guard, made strict, proposes the prior and does not
    replace the choice (verify's fresh seeds decide). Then a hand-made mixture with `regmix`'s
    weights is compared: its train item trains nothing and evaluate scores it on `regmix`'s runs."""
    assert (project / "results/train/random_1").is_dir()
    out = dvc(
        "exp",
        "run",
        "-S",
        "experiment=tiny",
        "-S",
        "large.mixtures=[regmix,best_proxy,uniform,prior]",
        "-S",
        "+search.min_confidence=0.99",
        cwd=project,
    )
    assert "evaluate" in stages_run(out), out
    kept = ["regmix", "best_proxy", "uniform", "prior"]
    assert sorted(p.name for p in (project / "results/train").iterdir()) == sorted(kept)
    assert not (project / "results/compare/random_1.json").exists()
    for table in (project / "results/comparison/curves").glob("*.csv"):
        assert pd.read_csv(table).columns.tolist() == ["step", *kept], table
    measured = pd.read_csv(project / "results/comparison/predicted_vs_measured.csv")
    assert sorted(measured["mixture"]) == sorted(kept)
    assert pd.read_csv(project / "results/compare/weights.csv").columns.tolist() == ["domain", *kept]
    assert "the prior proposed, to be confirmed on fresh seeds" in out, out
    mixture = yaml.safe_load((project / "results/mixture.yaml").read_text())
    guard = mixture["decision"]["steps"][2]
    assert guard["proposed"] == "prior" and not guard["changed"] and mixture["decision"]["decided_by"] == "rule"
    verify = json.loads((project / "results/verify.json").read_text())
    choice = verify["choice"]["mixture"]
    assert choice == "regmix" or verify["mixtures"][choice]["vs_regmix"]["verdict"] == "better"

    trained = json.loads((project / "results/compare/regmix.json").read_text())["mixture"]
    copy = "{" + ", ".join(f"{d}: {w}" for d, w in trained.items()) + "}"
    out = dvc(
        "exp",
        "run",
        "-S",
        "experiment=tiny",
        "-S",
        "large.mixtures=[regmix,best_proxy,uniform,prior,copy]",
        "-S",
        f"+human_mixtures.copy={copy}",
        cwd=project,
    )
    assert "train@copy" in stages_run(out), out
    shared = [
        n for n in [*kept, "copy"] if "runs_of" in json.loads((project / f"results/compare/{n}.json").read_text())
    ]
    assert "copy" in shared
    evaluation = json.loads((project / "results/evaluation.json").read_text())
    for name in shared:
        seeds = json.loads((project / f"results/compare/{name}.json").read_text())["seeds"]
        for folder in (f"data/large/{name}", f"results/train/{name}"):
            assert [p.name for p in (project / folder).iterdir()] == ["runs_of.json"]
        assert evaluation[name]["runs_of"] == "regmix"
        assert evaluation[name]["target_loss_per_seed"] == evaluation["regmix"]["target_loss_per_seed"][: len(seeds)]
        assert f"| {name} | {len(seeds)} (regmix's runs) |" in (project / "results/report.md").read_text()
    assert "changed" not in dvc("status", cwd=project)


def readme_command(prefix: str) -> list[str]:
    """The README's recommended command line starting with `prefix`, as arguments."""
    line = re.search(rf"^{re.escape(prefix)} .*$", (REPO / "README.md").read_text(), re.M)
    assert line, f"the README recommends no `{prefix}` command"
    return shlex.split(line.group(0), comments=True)


def test_metrics_are_each_stages_headline_within_200_columns(project):
    """metrics/ holds each stage's few headline figures, taken from its full record in results/,
    and `dvc metrics show` prints them all within 200 columns."""
    record = lambda rel: json.loads((project / rel).read_text())  # noqa: E731
    evaluation = record("results/evaluation.json")
    assert record("metrics/proxies.json") == headline.proxies(record("results/proxy_run.json"))
    assert record("metrics/fit.json") == headline.fit(record("results/fit.json"))
    assert record("metrics/verify.json") == headline.verify(record("results/verify.json"))
    assert record("metrics/evaluate.json") == headline.evaluate(evaluation, evaluation["summary"])
    shown = record("metrics/evaluate.json")
    assert shown["regmix_loss"] == evaluation["regmix"]["target_loss"]
    assert shown["baseline_loss"] == evaluation[shown["baseline"]]["target_loss"]
    out = run([sys.executable, "-m", "dvc", "metrics", "show"], project, COLUMNS="200")
    assert max(map(len, out.splitlines())) <= 200 and "…" not in out, out
    assert "regmix_loss" in out.splitlines()[0], out


def test_readme_exp_show_fits_200_columns(project):
    """The README's `dvc exp show` over the committed run and its experiments: every line within
    200 columns and no cell squeezed to `…`, with the headline figures among the columns."""
    assert len(json.loads(dvc("exp", "show", "--json", cwd=project))[-1]["experiments"] or []) >= 1
    command = readme_command("dvc exp show")
    out = run([sys.executable, "-m", *command, "--no-pager"], project, COLUMNS="200")
    lines = out.splitlines()
    assert max(map(len, lines)) <= 200, out
    assert "…" not in out, out
    header = lines[1].split()
    assert {"Experiment", "cv_spearman", "cv_rmse"} <= set(header), out  # regression=linear moves both
    drop = command[command.index("--drop") + 1]
    for figure in ("regmix_loss", "baseline_loss", "regmix_rank", "decided_by", "gain_over_prior", "target"):
        assert not re.search(drop, figure), figure  # shown whenever an experiment moves it
